/* rt_internal.h: declarations shared by the runtime's files; private to runtime/.
 *
 * Ground rules of the runtime:
 * - it never crashes or deadlocks its host: errors warn once and turn a feature off;
 * - no lock, no malloc, no syscall on the access fast path; per-thread state lives in
 *   initial-exec TLS and in a per-thread context allocated with mmap;
 * - every mutable global says who owns it (a lock, a thread, or "written once at init");
 * - internal names are ftsan__*, ABI entry points __ftsan_* (include/ftsan_abi.h). */
#ifndef FTSAN_RT_INTERNAL_H
#define FTSAN_RT_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ftsan_abi.h"
#include "ftsan_trace.h"

#define FTSAN_LIKELY(x) __builtin_expect(!!(x), 1)
#define FTSAN_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define FTSAN_ALWAYS_INLINE static inline __attribute__((always_inline))
#define FTSAN_NOINLINE __attribute__((noinline))
#define FTSAN_EXPORT __attribute__((visibility("default")))
#define FTSAN_TLS __thread __attribute__((tls_model("initial-exec")))
/* On declarations of globals the access fast path reads: the library is built with hidden
 * visibility, but a plain extern declaration is still reached through the GOT. */
#define FTSAN_HIDDEN __attribute__((visibility("hidden")))

/* ---- options (rt_options.c) --------------------------------------------------------- */
struct ftsan_options {
#define FTSAN_OPTION_bool int
#define FTSAN_OPTION_int int
#define FTSAN_OPTION_str const char *
#define FTSAN_OPTION(type, name, def, desc) FTSAN_OPTION_##type name;
#include "rt_options.inc"
#undef FTSAN_OPTION
};
extern FTSAN_HIDDEN struct ftsan_options ftsan__opt; /* written once at init, read-only after */
void ftsan__options_init(void);
void ftsan__opt_set_bool(int *dst, const char *v, size_t n);
void ftsan__opt_set_int(int *dst, const char *v, size_t n);
void ftsan__opt_set_str(const char **dst, const char *v, size_t n);

/* ---- spin lock for rare slow paths (trace writes, registries) ----------------------- */
typedef struct { volatile int locked; } ftsan_spin;
void ftsan__spin_lock(ftsan_spin *l);
void ftsan__spin_unlock(ftsan_spin *l);

/* ---- internal memory (rt_alloc.c): mmap-backed, never calls malloc ------------------ */
void *ftsan__alloc(size_t size);          /* zeroed; small blocks are never returned */
void *ftsan__map(size_t size);            /* zeroed, page granular, NULL on failure */
void ftsan__unmap(void *p, size_t size);

/* ---- warnings and state (rt_main.c) -------------------------------------------------- */
extern volatile int ftsan__enabled;       /* analysis on; cleared once, never set again */
extern FTSAN_HIDDEN int ftsan__race_on;   /* race detection on (mode=race); written at init */
extern int ftsan__initialized;            /* written once by ftsan__init_once */
void ftsan__init_once(void);
void ftsan__warn(uint32_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ftsan__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ftsan__format(char *buf, size_t n, const char *fmt, va_list ap);

/* ---- trace writer (rt_trace.c) ------------------------------------------------------- */
int ftsan__trace_open(void);              /* 0 ok; no-op when no out dir is set */
void ftsan__trace_write(const void *rec, uint32_t size);   /* size: multiple of 8 */
void ftsan__trace_flush(void);            /* async-signal-safe */
void ftsan__trace_close(void);
void ftsan__trace_forget(void);        /* in a forked child: drop the parent's file */
int ftsan__trace_active(void);

/* ---- module map (rt_modules.c) ------------------------------------------------------- */
void ftsan__modules_scan(void);           /* writes MODULE records for objects not yet seen */
void ftsan__modules_mark_instrumented(const void *addr_in_module);
void ftsan__modules_rewrite_all(void);   /* in a forked child */
int ftsan__modules_is_instrumented(uint64_t pc); /* pc lies in an instrumented module */

/* ---- threads (rt_thread.c) ----------------------------------------------------------- */
#define FTSAN_MAX_THREADS 4096
#define FTSAN_SHADOW_STACK 256
#define FTSAN_SITE_TABLE 4096             /* entries, power of two */

struct ftsan_site_slot { uint64_t key; uint64_t count; }; /* key: pc << 3 | kind */

typedef struct ftsan_hist_snap {
  uint64_t epoch;                         /* first epoch of the block, 0 while unused */
  uint32_t depth;                         /* shadow stack depth at that point */
  uint32_t pad;
  uint64_t py;                            /* the last FTSAN_EV_TYPE_PY event before it */
  uint64_t frames[FTSAN_SHADOW_STACK];
} ftsan_hist_snap;

typedef struct ftsan_thread {
  /* hot: first cache line */
  uint32_t tid;
  uint32_t ignore;                        /* > 0: inside the runtime, record nothing */
  uint64_t epoch;                         /* events of this thread so far: its own clock */
  uint64_t *vc;                           /* vector clock, FTSAN_MAX_THREADS entries */
  uint64_t *hist;                         /* event history ring (rt_history.c) */
  uint64_t hist_mask;
  ftsan_hist_snap *snaps;                 /* one per history block */
  uint32_t depth;                         /* shadow stack depth (may exceed the array) */
  uint32_t gilstate;                      /* PyGILState_Ensure calls not yet released */
  uint32_t sites_used;
  struct ftsan_site_slot *sites;          /* FTSAN_SITE_TABLE entries, or NULL */
  /* warm */
  uint64_t stats_dropped;
  uint32_t snaps_mask;
  uint32_t finished;
  uint32_t ignore_sync;                   /* > 0: do not create happens-before (reserved) */
  void *contention;                       /* contention tables (rt_contention.c), or NULL */
  uint32_t parent_tid;
  uint32_t creation_depth;
  uint32_t pad1;
  uint64_t os_tid;
  uint64_t last_py;                       /* the last FTSAN_EV_TYPE_PY event */
  uint64_t pthread;                       /* pthread_self() of the thread */
  uint64_t creation_stack[32];
  uint64_t creation_py[16];               /* PYSITE ids of the Python stack that started it */
  uint32_t creation_py_len;
  char pyname[64];                        /* threading.Thread name, "" if unknown */
  uint64_t stack[FTSAN_SHADOW_STACK];     /* return addresses, outermost first */
  uint32_t frame_serial[FTSAN_SHADOW_STACK]; /* serial of each live frame (rt_borrow.c) */
  uint32_t next_serial;
  uint32_t nborrows;
  struct ftsan_borrow {
    uintptr_t op;                         /* the borrowed object */
    uint64_t pc;                          /* the borrowing call (return address) */
    uint64_t pyev;                        /* Python line at the time (history PY event) */
    uint32_t api, depth, serial, pad;     /* valid while that frame is live */
  } borrows[16];                          /* ring of recent borrowed references */
} ftsan_thread;

extern FTSAN_TLS ftsan_thread *ftsan__cur;
extern ftsan_thread *ftsan__threads[FTSAN_MAX_THREADS]; /* slots written once, atomically */
extern uint32_t ftsan__thread_count;                     /* atomic */
ftsan_thread *ftsan__thread_adopt(void);  /* context for a thread we did not see start */
void ftsan__thread_finish(ftsan_thread *t);
void ftsan__threads_init(void);
void ftsan__threads_flush_all(void);      /* at exit: stats of threads still running */

FTSAN_ALWAYS_INLINE ftsan_thread *ftsan__thread(void) {
  ftsan_thread *t = ftsan__cur;
  if (FTSAN_UNLIKELY(!t)) t = ftsan__thread_adopt();
  return t;
}

/* ---- event history (rt_history.c) ---------------------------------------------------- */
#define FTSAN_HIST_BLOCK_LOG 10
#define FTSAN_HIST_BLOCK (1u << FTSAN_HIST_BLOCK_LOG)
#define FTSAN_EV_TYPE_ACCESS 0ull
#define FTSAN_EV_TYPE_ENTRY 1ull
#define FTSAN_EV_TYPE_EXIT 2ull
#define FTSAN_EV_TYPE_PY 3ull   /* the Python frame that called into instrumented code:
                                 * code object in bits 0..47, bytecode offset in 48..61 */
#define FTSAN_EV_PC_MASK ((1ull << 48) - 1)
int ftsan__history_alloc(ftsan_thread *t);
void ftsan__history_snapshot(ftsan_thread *t, uint64_t epoch);
void ftsan__history_python_entry(ftsan_thread *t);
/* Rebuilds the stack of thread t's access at epoch: writes up to max PCs (innermost first:
 * the access PC, then the return addresses of its callers) and returns how many, or 0 when
 * the history no longer holds that epoch. */
int ftsan__history_restore(ftsan_thread *t, uint64_t epoch, uint64_t *out, int max, uint64_t *py);

/* Appends an event; returns its epoch. A new block starts with a snapshot of the shadow
 * stack as it was before the event. */
FTSAN_ALWAYS_INLINE uint64_t ftsan__history_add(ftsan_thread *t, uint64_t ev) {
  uint64_t e = ++t->epoch;
  if (FTSAN_UNLIKELY((e & (FTSAN_HIST_BLOCK - 1)) == 0)) ftsan__history_snapshot(t, e);
  if (FTSAN_LIKELY(t->hist != NULL)) t->hist[e & t->hist_mask] = ev;
  return e;
}

/* ---- per-site statistics (rt_stats.c) ------------------------------------------------ */
void ftsan__stats_add_slow(ftsan_thread *t, uint64_t pc, uint32_t kind);
void ftsan__stats_flush(ftsan_thread *t);

FTSAN_ALWAYS_INLINE void ftsan__stats_add(ftsan_thread *t, uint64_t pc, uint32_t kind) {

  if (ftsan__opt.stats) ftsan__stats_add_slow(t, pc, kind);
}

/* ---- python (rt_python.c) ------------------------------------------------------------ */
/* PyTypeObject on free-threaded 64-bit builds (3.13 and 3.14; checked with offsetof against
 * the 3.13 headers): tp_name, tp_basicsize, tp_itemsize, tp_flags. */
#define FTSAN_PY_TP_NAME 40
#define FTSAN_PY_TP_BASICSIZE 48
#define FTSAN_PY_TP_ITEMSIZE 56
#define FTSAN_PY_TP_FLAGS 184
#define FTSAN_PY_TPFLAGS_HEAPTYPE (1ull << 9)
#define FTSAN_PY_TPFLAGS_READY (1ull << 12)
#define FTSAN_PY_TPFLAGS_TYPE_SUBCLASS (1ull << 31)
#define FTSAN_PY_TPFLAGS_LIST_SUBCLASS (1ull << 25)
#define FTSAN_PY_TPFLAGS_DICT_SUBCLASS (1ull << 29)
/* PyObject: ob_mutex, the mutex of the object's critical section, is the sync object the
 * runtime orders critical sections by. The field standing for a container's contents
 * (container hooks, PyDict_Next, interrupted sections): a dict's ma_used, a list's ob_item. */
#define FTSAN_PY_OB_MUTEX 10
#define FTSAN_PY_DICT_CONTENTS 32
#define FTSAN_PY_LIST_CONTENTS 40
uint32_t ftsan__python_version(void);     /* PY_VERSION_HEX, 0 if not python */
int ftsan__python_free_threaded(void);
int ftsan__python_gil_enabled(void);      /* -1 unknown */
int ftsan__python_gil_state(void);        /* raw: 0, a transient count, INT_MAX (permanent) */
void ftsan__python_init(void);
/* The innermost Python frame of the calling thread: its code object and byte offset. */
int ftsan__python_frame(uintptr_t *code, int *offset);
/* The current frame and instruction pointer of the calling thread (a memo key). */
int ftsan__python_frame_key(uintptr_t *frame, uintptr_t *ip);
/* The innermost Python frame at or outside frame (from ftsan__python_frame_key). */
int ftsan__python_frame_from(uintptr_t frame, uintptr_t *code, int *offset);
/* The code object and byte offset of that frame when it is a Python frame of its own (as
 * ftsan__python_frame finds it, without walking); 0 for a C-stack frame. */
int ftsan__python_frame_code(uintptr_t frame, uintptr_t ip, uintptr_t *code, int *offset);
/* The innermost frame outside the import machinery, from frame outwards. */
int ftsan__python_frame_outside_imports(uintptr_t frame, uintptr_t *code, int *offset);
/* The calling thread's Python frames, innermost first; returns how many. */
int ftsan__python_stack(uintptr_t *codes, int *offsets, int max);
/* What tells a code object from a later one at the same address (its filename and
 * qualified-name objects); the code object must be alive. */
uint64_t ftsan__python_code_ident(uintptr_t code);
/* The id of a Python line (rt_pysite.c), written to the trace the first time. */
uint64_t ftsan__pysite(uintptr_t code, int offset);
/* The calling thread's Python stack as PYSITE ids, innermost first; returns how many. */
uint32_t ftsan__python_stack_ids(uint64_t *ids, uint32_t max);
/* Around the runtime's own calls into the interpreter: the pending exception set aside and
 * put back (any exception those calls raised is dropped). */
void *ftsan__python_err_save(void);
void ftsan__python_err_restore(void *exc);
/* Called in the thread that runs Thread.start(): the started Thread's name. */
int ftsan__python_thread_name(char *name, size_t n);
/* code still looks like a live code object (checked with safe reads). */
int ftsan__python_is_code(uintptr_t code);
/* File, qualified name and line of (code, offset); the thread must be attached. */
int ftsan__python_resolve(uintptr_t code, int offset, char *file, size_t file_n, char *func,
                          size_t func_n, int *line);

/* ---- C-API wrappers (rt_capi.c) ------------------------------------------------------ */
void ftsan__capi_init(void);
void ftsan__cs_suspend(struct ftsan_thread *t); /* the thread's critical sections are suspended */
void ftsan__cs_resume(struct ftsan_thread *t);  /* ... and resumed */
/* The mutex whose real PyMutex_Lock/Unlock a C-API wrapper is running, or 0:
 * the interpreter's lock functions reached for that mutex (patched in rt_hooks.c) leave the
 * happens-before edge to the wrapper instead of making it two or three times. Only that
 * mutex: while the thread waits, the interpreter suspends and resumes its critical
 * sections through the same functions, and those edges must stay. */
extern FTSAN_TLS uintptr_t ftsan__wrapped_mutex;

uint64_t ftsan__now_ns(void);
/* In a forked child: release the spin locks threads that no longer exist may have held. */
void ftsan__clock_after_fork(void);
void ftsan__heap_after_fork(void);
void ftsan__alloc_after_fork(void);
void ftsan__contention_after_fork(void);
void ftsan__stats_after_fork(void);
void ftsan__pysite_after_fork(void);
/* Reads memory that may be unmapped: 0, or -1 instead of a fault. */
int ftsan__safe_read(void *dst, uintptr_t src, size_t n);
/* The type object of the PyObject at addr if addr really starts one (checked with safe
 * reads: its type's metatype is `type` or derives from it), else 0. */
uint64_t ftsan__pyobject_type(uintptr_t addr);
uint32_t ftsan__findings(void);          /* findings reported so far */
/* Importing `module` (name: a str object) just enabled the GIL: write the finding. */
void ftsan__report_gil_enabled(void *module, void *name);
void ftsan__halt(int code) __attribute__((noreturn)); /* end the trace and _exit */
void ftsan__hooks_init(void);
/* Records an access as if instrumented code at pc had made it (wrappers and hooks that
 * stand for accesses the interpreter makes). */
void ftsan__access(uint64_t pc, uintptr_t addr, size_t size, int is_write, int is_atomic);              /* entry patches into the interpreter */

#endif
