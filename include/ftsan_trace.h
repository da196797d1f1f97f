/* ftsan_trace.h: the trace file format, the one contract between runtime/ (writer) and cli/
 * (reader). docs/trace-format.md describes it in prose; change both in the same commit.
 *
 * A trace is one file per process, ftsan.<pid>.trace in the output directory:
 *   file header (struct ftsan_trace_header), then records until end of file.
 * Every record starts with struct ftsan_rec_header { kind, size }, where size counts the
 * whole record including its header and is a multiple of 8. A reader skips kinds it does not
 * know; it rejects a file whose major version it does not know. Multi-byte integers are in
 * the writer's byte order, announced in the header; pointers are 64-bit fields whatever the
 * writer's pointer size (which the header also records).
 * Strings inside records are NUL-terminated and placed after the fixed part; a record's fixed
 * part may grow in a later minor version (readers use the record's own size and the
 * string-offset fields, never sizeof, to find what follows).
 * A trace whose last record is not FTSAN_REC_END was cut short (crash, kill): readers report
 * what is there and say it is truncated. */
#ifndef FTSAN_TRACE_H
#define FTSAN_TRACE_H

#include <stdint.h>

#define FTSAN_TRACE_MAGIC "FTSANTRC"
#define FTSAN_TRACE_MAJOR 1u
#define FTSAN_TRACE_MINOR 1u
#define FTSAN_TRACE_LITTLE_ENDIAN 1u

struct ftsan_trace_header {
  char magic[8];          /* FTSAN_TRACE_MAGIC, not NUL-terminated */
  uint16_t major;         /* FTSAN_TRACE_MAJOR */
  uint16_t minor;         /* FTSAN_TRACE_MINOR */
  uint8_t pointer_size;   /* sizeof(void*) of the writer */
  uint8_t byte_order;     /* FTSAN_TRACE_LITTLE_ENDIAN, or 2 for big endian */
  uint16_t header_size;   /* sizeof(struct ftsan_trace_header) of the writer */
  uint32_t pid;
  uint32_t abi_version;   /* runtime ABI version (ftsan_abi.h) of the writer */
  uint64_t start_ns;      /* CLOCK_REALTIME at start, nanoseconds */
};

struct ftsan_rec_header {
  uint32_t kind;          /* enum ftsan_rec_kind */
  uint32_t size;          /* whole record in bytes, multiple of 8 */
};

enum ftsan_rec_kind {
  FTSAN_REC_PROCESS = 1,  /* struct ftsan_rec_process + exe path + command line */
  FTSAN_REC_MODULE = 2,   /* struct ftsan_rec_module + build-id bytes + path */
  FTSAN_REC_THREAD = 3,   /* struct ftsan_rec_thread + name + creation stack */
  FTSAN_REC_SITE_STATS = 4, /* struct ftsan_rec_site_stats + entries */
  FTSAN_REC_WARNING = 5,  /* struct ftsan_rec_warning + message */
  FTSAN_REC_RACE = 6,     /* struct ftsan_rec_race + stacks (see below) */
  FTSAN_REC_END = 7,      /* struct ftsan_rec_end: clean end of the trace */
  FTSAN_REC_REFCOUNT = 8, /* struct ftsan_rec_refcount + entries: refcount traffic */
  FTSAN_REC_LOCK = 9,     /* struct ftsan_rec_lock + entries: lock contention */
  FTSAN_REC_TYPE = 10,    /* struct ftsan_rec_type + name: a type object's name */
  FTSAN_REC_PYSITE = 11,  /* struct ftsan_rec_pysite + file + function: a Python line */
  FTSAN_REC_GIL_ENABLED = 12, /* struct ftsan_rec_gil_enabled: an import turned the GIL on */
  FTSAN_REC_OBJECT = 13,  /* struct ftsan_rec_object + entries: where objects were created */
};

/* FTSAN_REC_PROCESS: once, right after the header. */
struct ftsan_rec_process {
  struct ftsan_rec_header h;
  uint32_t ppid;
  uint32_t python_version;  /* PY_VERSION_HEX read from _PyRuntime, 0 if not python */
  uint32_t flags;           /* FTSAN_PROC_* */
  uint32_t exe_len;         /* bytes of exe path including NUL; the command line follows */
  /* char exe[exe_len]; char cmdline[] (arguments separated by single spaces) */
};
#define FTSAN_PROC_FREE_THREADED 1u  /* _PyRuntime debug offsets say Py_GIL_DISABLED */
#define FTSAN_PROC_GIL_ENABLED   2u  /* the GIL was enabled when the trace ended */
#define FTSAN_PROC_ANALYSIS_OFF  4u  /* the runtime turned analysis off (see warnings) */

/* FTSAN_REC_MODULE: every object loaded into the process, when first seen. A code address
 * pc lies in this module when start <= pc < end; its ELF virtual address is pc - bias. */
struct ftsan_rec_module {
  struct ftsan_rec_header h;
  uint64_t bias;            /* load bias (dlpi_addr) */
  uint64_t start, end;      /* lowest and highest address of its PT_LOAD segments */
  uint32_t build_id_len;    /* bytes of GNU build-id, 0 if none; the path follows them */
  uint32_t flags;           /* FTSAN_MOD_* */
  /* uint8_t build_id[build_id_len]; char path[] */
};
#define FTSAN_MOD_INSTRUMENTED 1u  /* the module called __ftsan_init */
#define FTSAN_MOD_MAIN 2u          /* the main executable */

/* FTSAN_REC_THREAD: a thread the runtime saw start (tid 0 is the main thread). */
struct ftsan_rec_thread {
  struct ftsan_rec_header h;
  uint32_t tid;             /* ftsan thread id, dense from 0 */
  uint32_t parent_tid;      /* creating thread, UINT32_MAX for the main thread */
  uint64_t os_tid;          /* gettid() */
  uint32_t name_len;        /* bytes of name including NUL: threading.Thread's name if the
                             * thread was started from Python, else the OS thread name */
  uint32_t stack_len;       /* number of creation-stack PCs, innermost first */
  uint32_t py_len;          /* Python stack of the creation (PYSITE ids, innermost first) */
  uint32_t pad;
  /* uint64_t stack[stack_len]; uint64_t py[py_len]; char name[name_len] */
};

/* FTSAN_REC_SITE_STATS: event counts per instrumented code site, from one thread. */
struct ftsan_rec_site_stats {
  struct ftsan_rec_header h;
  uint32_t tid;
  uint32_t count;           /* number of entries that follow */
  uint64_t dropped;         /* events not attributed to a site (table full) */
  /* struct ftsan_site_count entries[count] */
};
struct ftsan_site_count {
  uint64_t pc;              /* return address of the call into the runtime */
  uint32_t kind;            /* FTSAN_EV_* */
  uint32_t pad;
  uint64_t count;
};
enum ftsan_event_kind {
  FTSAN_EV_READ = 0,
  FTSAN_EV_WRITE = 1,
  FTSAN_EV_ATOMIC = 2,
  FTSAN_EV_FUNC_ENTRY = 3,
  FTSAN_EV_SYNC = 4,        /* a redirected C-API synchronization call */
};

/* FTSAN_REC_WARNING: something the runtime turned off or could not do. */
struct ftsan_rec_warning {
  struct ftsan_rec_header h;
  uint32_t code;            /* FTSAN_WARN_* */
  uint32_t msg_len;         /* bytes of message including NUL */
  /* char msg[msg_len] */
};
enum ftsan_warning_code {
  FTSAN_WARN_GENERIC = 0,
  FTSAN_WARN_ABI_MISMATCH = 1,
  FTSAN_WARN_GIL_ENABLED = 2,
  FTSAN_WARN_NOT_PYTHON = 3,
  FTSAN_WARN_HOOK_FAILED = 4,
};

/* FTSAN_REC_RACE: a finding about two accesses: for kind FTSAN_FINDING_DATA_RACE, two
 * conflicting accesses (same bytes, at least one a write, not both atomic) that happens-before
 * does not order. Stacks are return addresses, innermost first (symbolize pc - 1). */
struct ftsan_race_access {
  uint32_t tid;
  uint8_t size;             /* bytes */
  uint8_t write;
  uint8_t atomic;
  uint8_t stack_full;       /* 1: full C stack (unwound); 0: instrumented frames only */
  uint32_t stack_len;       /* 0 when the stack was no longer in the thread's history */
  uint32_t flags;           /* FTSAN_ACC_* */
  uint64_t epoch;
};
#define FTSAN_ACC_GILSTATE 1u   /* made between PyGILState_Ensure and PyGILState_Release */
struct ftsan_rec_race {
  struct ftsan_rec_header h;
  uint32_t kind;            /* FTSAN_FINDING_* */
  uint32_t mem_kind;        /* FTSAN_MEM_* */
  uint64_t addr;
  struct ftsan_race_access cur, prev;
  uint64_t object_addr;     /* PYOBJECT: start of the object; HEAP: start of the block */
  uint64_t object_size;     /* PYOBJECT: tp_basicsize; HEAP: size of the block */
  uint32_t type_name_len;   /* bytes of the type name including NUL, 0 if none */
  uint32_t alloc_tid;       /* HEAP: thread that allocated the block */
  uint32_t alloc_stack_len; /* HEAP: allocation stack (instrumented frames), 0 if unknown */
  uint32_t cur_py_len;      /* Python frames of the current access (PYSITE ids) */
  uint32_t prev_py_len;     /* Python frame that called into C before the previous access */
  uint32_t borrow_api;      /* USE_AFTER_FREE: the FTSAN_BORROW_APIS id of the borrowing call */
  /* uint64_t cur_stack[cur.stack_len]; uint64_t prev_stack[prev.stack_len];
   * uint64_t alloc_stack[alloc_stack_len]; uint64_t cur_py[cur_py_len] (innermost first);
   * uint64_t prev_py[prev_py_len]; char type_name[type_name_len] */
};
/* USE_AFTER_FREE: cur is the access, prev the free (its full stack, its Python stack), the
 * allocation-stack fields hold the borrowing call, object_* the dead object.
 * CS_INTERRUPTED (minor 1): cur reads a list's or dict's contents inside a critical section
 * on it; prev is another thread's change of them, made while that critical section was
 * suspended (the reading thread blocked inside it). Laid out as a data race. */
enum ftsan_finding_kind {
  FTSAN_FINDING_DATA_RACE = 1,
  FTSAN_FINDING_USE_AFTER_FREE = 2,
  FTSAN_FINDING_CS_INTERRUPTED = 3,
};
enum ftsan_mem_kind {
  FTSAN_MEM_UNKNOWN = 0,    /* the CLI looks the address up in the module map (globals) */
  FTSAN_MEM_PYOBJECT = 1,   /* inside a Python object (type name recorded) */
  FTSAN_MEM_HEAP = 2,       /* inside a block allocated by instrumented code (malloc, PyMem_*) */
};

/* FTSAN_REC_REFCOUNT: reference-count operations of one thread, counted per object, site
 * and class (when the thread ended). The site is a return address in instrumented code, or,
 * with FTSAN_RCF_PYSITE, the id of a PYSITE record (interpreter-side operations, attributed
 * to the Python line that was running). */
struct ftsan_rec_refcount {
  struct ftsan_rec_header h;
  uint32_t tid;
  uint32_t count;
  uint64_t dropped;         /* events not counted (table full) */
  /* struct ftsan_refcount_entry entries[count] */
};
struct ftsan_refcount_entry {
  uint64_t object;
  uint64_t type;            /* the object's type object; its name is in a TYPE record */
  uint64_t site;
  uint32_t flags;           /* FTSAN_RCF_* */
  uint32_t pad;
  uint64_t count;
};
#define FTSAN_RCF_DECREF   0x001u /* decref (else incref) */
#define FTSAN_RCF_OWNER    0x002u /* by the owning thread: a plain local update */
#define FTSAN_RCF_SHARED   0x004u /* by another thread: an atomic on ob_ref_shared */
#define FTSAN_RCF_IMMORTAL 0x008u /* immortal: no refcount write at all */
#define FTSAN_RCF_DEFERRED 0x010u /* the object uses deferred reference counting */
#define FTSAN_RCF_QUEUED   0x020u /* queued to its owner for a merge */
#define FTSAN_RCF_MERGED   0x040u /* local and shared counts merged: owned by nobody */
#define FTSAN_RCF_PYSITE   0x080u /* site is a PYSITE id */
#define FTSAN_RCF_INTERP   0x100u /* seen in the interpreter (_Py_DecRefShared) */

/* FTSAN_REC_LOCK: contended lock acquisitions of one thread, per lock and site. */
struct ftsan_rec_lock {
  struct ftsan_rec_header h;
  uint32_t tid;
  uint32_t count;
  uint64_t dropped;
  /* struct ftsan_lock_entry entries[count] */
};
struct ftsan_lock_entry {
  uint64_t lock;            /* address of the mutex */
  uint64_t object;          /* the Python object whose ob_mutex it is, or 0 */
  uint64_t type;            /* that object's type, or 0 */
  uint64_t site;            /* return address, or PYSITE id with FTSAN_LKF_PYSITE */
  uint32_t flags;           /* FTSAN_LKF_* */
  uint32_t pad;
  uint64_t waits;           /* acquisitions that had to wait */
  uint64_t wait_ns;         /* total time waited */
  uint64_t max_wait_ns;
};
#define FTSAN_LKF_CRITICAL_SECTION 0x01u
#define FTSAN_LKF_PYMUTEX 0x02u
#define FTSAN_LKF_PTHREAD 0x04u
#define FTSAN_LKF_THREADING_LOCK 0x08u
#define FTSAN_LKF_PYSITE 0x80u

/* FTSAN_REC_TYPE: the name of a type object seen in REFCOUNT or LOCK entries. */
struct ftsan_rec_type {
  struct ftsan_rec_header h;
  uint64_t type;
  uint32_t flags;           /* 1: a static (non-heap) type */
  uint32_t name_len;
  /* char name[name_len] */
};

/* FTSAN_REC_PYSITE: a Python source line, named by an id that REFCOUNT/LOCK entries use. */
struct ftsan_rec_pysite {
  struct ftsan_rec_header h;
  uint64_t id;
  uint32_t line;
  uint32_t file_len;
  uint32_t func_len;
  uint32_t pad;
  /* char file[file_len]; char func[func_len] (qualified name) */
};

/* FTSAN_REC_GIL_ENABLED: importing a module without Py_mod_gil = Py_MOD_GIL_NOT_USED
 * enabled the GIL for the rest of the process (a finding: races may be hidden from then on). */
struct ftsan_rec_gil_enabled {
  struct ftsan_rec_header h;
  uint32_t tid;
  uint32_t py_len;          /* Python stack of the import (PYSITE ids, innermost first) */
  uint32_t name_len;        /* module name including NUL */
  uint32_t file_len;        /* module file including NUL ("" if unknown) */
  /* uint64_t py[py_len]; char name[name_len]; char file[file_len] */
};

/* FTSAN_REC_OBJECT: the Python line that created objects seen in REFCOUNT or LOCK entries
 * (written when a thread ends, for the objects in its tables that the runtime saw created). */
struct ftsan_rec_object {
  struct ftsan_rec_header h;
  uint32_t count;
  uint32_t pad;
  /* struct ftsan_object_entry entries[count] */
};
struct ftsan_object_entry {
  uint64_t object;
  uint64_t site;            /* PYSITE id of the line running when it was created */
};

/* FTSAN_REC_END: the runtime shut down cleanly. */
struct ftsan_rec_end {
  struct ftsan_rec_header h;
  uint64_t end_ns;          /* CLOCK_REALTIME at the end */
  uint32_t threads;         /* threads seen */
  uint32_t findings;        /* findings written (races, ...) */
};

#endif
