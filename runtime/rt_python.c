/* rt_python.c: what the runtime knows of the host interpreter, read from the debug offsets
 * that start _PyRuntime (cookie "xdebugpy", PY_VERSION_HEX, free-threaded flag, offsets),
 * without private headers. The layout changes between minor versions, so every use
 * dispatches on the version and unknown versions get "unknown" answers. */
#define _GNU_SOURCE 1
#include "rt_internal.h"
#include "rt_pylayout.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static const char *runtime_addr;   /* written once at init */
static ftsan_pylayout layout;      /* written once at init */
static int layout_ok;              /* written once at init */

void ftsan__python_init(void) {
  const char *rt = dlsym(RTLD_DEFAULT, "_PyRuntime");
  if (!rt || memcmp(rt, "xdebugpy", 8) != 0) return;
  runtime_addr = rt;
  layout_ok = ftsan_pylayout_read(rt, &layout) == 0;
}

uint32_t ftsan__python_version(void) { return layout.version; }
int ftsan__python_free_threaded(void) { return layout.free_threaded; }

int ftsan__python_gil_enabled(void) {
  int st = ftsan__python_gil_state();
  return st < 0 ? -1 : st != 0;
}

/* The raw `enabled` field of the GIL (free-threaded builds): 0 disabled, a small count while
 * an extension's init runs with the GIL enabled transiently, INT_MAX once an import enabled
 * it for good. -1 when unknown. */
int ftsan__python_gil_state(void) {
  if (!runtime_addr) return -1;
  if (!layout.free_threaded) return 1;
  if (!layout_ok) return -1;
  /* 3.13.5 leaves gil_runtime_state_enabled at 0; `enabled` is the first field of the
   * interpreter's struct _gil_runtime_state in free-threaded builds (checked: it becomes
   * INT_MAX when an import enables the GIL permanently). */
  /* gil_runtime_state_enabled is relative to the GIL's struct (offsetof(struct
   * _gil_runtime_state, enabled)), which sits at gil_runtime_state in the interpreter. */
  uint64_t enabled_off = layout.gil_state + layout.gil_enabled;
  const char *interp = *(const char *const *)(runtime_addr + layout.interpreters_head);
  if (!interp || layout.gil_state == 0) return -1;
  int enabled;
  memcpy(&enabled, interp + enabled_off, sizeof enabled);
  return enabled < 0 ? 1 : enabled;
}

/* ---- the running Python line --------------------------------------------------------------
 * Frames are read with the layout of rt_pylayout.c (3.13 and 3.14); other versions get no
 * Python attribution (warned once). */
static void *(*get_tstate)(void);
static int (*addr2line)(void *code, int offset);
static const char *(*unicode_utf8)(void *s);
static uintptr_t code_type;
static void *(*getattr_string)(void *o, const char *name);
static void (*py_decref)(void *o);
static void (*err_clear)(void);
static int frames_ok = -1; /* -1 not set up yet, 0 unsupported, 1 supported */

static int frames_init(void) {
  if (frames_ok >= 0) return frames_ok;
  frames_ok = 0;
  if (!runtime_addr || !layout_ok) {
    if (runtime_addr)
      ftsan__warn(FTSAN_WARN_GENERIC, "python %u.%u%s: Python source lines are not attributed "
                  "(frame layouts are known for 3.13 and 3.14)", layout.version >> 24,
                  (layout.version >> 16) & 0xff, layout.free_threaded ? "t" : "");
    return 0;
  }
  *(void **)&get_tstate = dlsym(RTLD_DEFAULT, "PyThreadState_GetUnchecked");
  *(void **)&addr2line = dlsym(RTLD_DEFAULT, "PyCode_Addr2Line");
  *(void **)&unicode_utf8 = dlsym(RTLD_DEFAULT, "PyUnicode_AsUTF8");
  code_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyCode_Type");
  if (!get_tstate || !addr2line || !unicode_utf8 || !code_type) return 0;
  *(void **)&getattr_string = dlsym(RTLD_DEFAULT, "PyObject_GetAttrString");
  *(void **)&py_decref = dlsym(RTLD_DEFAULT, "Py_DecRef");
  *(void **)&err_clear = dlsym(RTLD_DEFAULT, "PyErr_Clear");
  frames_ok = 1;
  return 1;
}

static const char *current_frame(void) {
  const char *ts = get_tstate();
  return ts ? *(const char *const *)(ts + layout.ts_current_frame) : NULL;
}

int ftsan__python_stack(uintptr_t *codes, int *offsets, int max) {
  if (frames_ok != 1 && frames_init() != 1) return 0;
  return ftsan_pylayout_walk(&layout, current_frame(), code_type, codes, offsets, max);
}

int ftsan__python_frame(uintptr_t *code, int *offset) {
  return ftsan__python_stack(code, offset, 1);
}

int ftsan__python_is_code(uintptr_t code) {
  if (frames_ok != 1) return 0;
  uintptr_t tp;
  return ftsan__safe_read(&tp, code + layout.ob_type, 8) == 0 && tp == code_type;
}

int ftsan__python_resolve(uintptr_t code, int offset, char *file, size_t file_n, char *func,
                          size_t func_n, int *line) {
  if (frames_ok != 1) return 0;
  const char *fn = unicode_utf8(*(void **)(code + layout.co_filename));
  const char *qn = unicode_utf8(*(void **)(code + layout.co_qualname));
  snprintf(file, file_n, "%s", fn ? fn : "?");
  snprintf(func, func_n, "%s", qn ? qn : "?");
  *line = addr2line((void *)code, offset);
  return 1;
}

/* The runtime calls into the interpreter from hooks that may run while an exception is
 * pending (an import that fails because warnings are errors returns -1 through the GIL
 * check the runtime patches): such calls must neither see nor lose it. Set aside the
 * pending exception, if any, and put it back afterwards. */
void *ftsan__python_err_save(void) {
  static void *(*get_raised)(void);
  if (!get_raised) *(void **)&get_raised = dlsym(RTLD_DEFAULT, "PyErr_GetRaisedException");
  return get_raised ? get_raised() : NULL;
}

void ftsan__python_err_restore(void *exc) {
  static void (*set_raised)(void *);
  static void (*clear)(void);
  if (!set_raised) {
    *(void **)&set_raised = dlsym(RTLD_DEFAULT, "PyErr_SetRaisedException");
    *(void **)&clear = dlsym(RTLD_DEFAULT, "PyErr_Clear");
  }
  if (clear) clear(); /* what the runtime's own calls left behind */
  if (exc && set_raised) set_raised(exc); /* steals the reference */
}

/* threading.Thread.start() is on the calling thread's Python stack when it creates the OS
 * thread: its first local is the Thread, whose _name is the name users gave it. */
int ftsan__python_thread_name(char *name, size_t n) {
  if (frames_ok != 1 && frames_init() != 1) return 0;
  if (!getattr_string || !py_decref || !err_clear) return 0;
  const char *f = current_frame();
  for (int depth = 0; f && depth < 16; depth++, f = ftsan_pylayout_previous(&layout, f)) {
    uintptr_t co = ftsan_pylayout_frame_code(&layout, f, code_type);
    if (!co) continue;
    const char *qn = unicode_utf8(*(void **)(co + layout.co_qualname));
    if (!qn || strcmp(qn, "Thread.start") != 0) continue;
    /* localsplus[0]: a PyObject * in 3.13, a _PyStackRef (tag bits) in 3.14 */
    uintptr_t self_bits = *(const uintptr_t *)(f + layout.if_localsplus);
    void *self = (void *)(layout.executable_tagged ? self_bits & ~(uintptr_t)7 : self_bits);
    if (!self) return 0;
    void *exc = ftsan__python_err_save();
    void *nm = getattr_string(self, "_name");
    const char *s = nm ? unicode_utf8(nm) : NULL;
    if (s) snprintf(name, n, "%s", s);
    if (nm) py_decref(nm);
    ftsan__python_err_restore(exc);
    return s != NULL;
  }
  return 0;
}

/* The calling thread's current frame and its instruction pointer, without walking: a cheap
 * key under which callers memoize what the frame resolves to. (The thread state is asked
 * for each time: a thread's state can be deleted and made again, e.g. by PyGILState_*.) */
int ftsan__python_frame_key(uintptr_t *frame, uintptr_t *ip) {
  if (frames_ok != 1 && frames_init() != 1) return 0;
  const char *f = current_frame();
  if (!f) return 0;
  *frame = (uintptr_t)f;
  *ip = *(const uintptr_t *)(f + layout.if_instr_ptr);
  return 1;
}

uint64_t ftsan__python_code_ident(uintptr_t code) {
  if (frames_ok != 1) return 0;
  uint64_t f = *(const uint64_t *)(code + layout.co_filename), q = *(const uint64_t *)(code + layout.co_qualname);
  return f * 0x9E3779B97F4A7C15ull ^ q;
}

/* The frame's own code and instruction offset, without walking; 0 when it is not a Python
 * frame of its own (a C-stack or interpreter entry frame). ip is the key the caller read. */
int ftsan__python_frame_code(uintptr_t frame, uintptr_t ip, uintptr_t *code, int *offset) {
  (void)ip;
  if (frames_ok != 1 || !frame) return 0;
  uintptr_t co = ftsan_pylayout_frame_code(&layout, (const char *)frame, code_type);
  if (!co) return 0;
  int off = ftsan_pylayout_frame_offset(&layout, (const char *)frame, co);
  if (off < 0) return 0;
  *code = co;
  *offset = off;
  return 1;
}

int ftsan__python_frame_from(uintptr_t frame, uintptr_t *code, int *offset) {
  if (frames_ok != 1) return 0;
  return ftsan_pylayout_walk(&layout, (const char *)frame, code_type, code, offset, 1);
}

/* Whether a code object belongs to the import machinery (<frozen importlib...>), memoized
 * per code object and its filename object: the question is asked for each new object the
 * interpreter creates (the _Py_NewReference patch). Racy slots are harmless: a torn or
 * stale entry only costs a recomputation, since both words must match. */
#define IMPORT_MEMO 1024
static uintptr_t import_memo[IMPORT_MEMO][2]; /* code, filename | is_import bit */

static int is_import_code(uintptr_t code) {
  uintptr_t fname = *(const uintptr_t *)(code + layout.co_filename);
  uintptr_t *slot = import_memo[((uint64_t)code * 0x9E3779B97F4A7C15ull) >> (64 - 10)];
  uintptr_t c = __atomic_load_n(&slot[0], __ATOMIC_RELAXED), v = __atomic_load_n(&slot[1], __ATOMIC_RELAXED);
  if (c == code && (v & ~(uintptr_t)1) == fname) return (int)(v & 1);
  const char *fn = unicode_utf8((void *)fname);
  int imp = fn && (!strncmp(fn, "<frozen importlib", 17) || strstr(fn, "/importlib/"));
  __atomic_store_n(&slot[0], 0, __ATOMIC_RELAXED);
  __atomic_store_n(&slot[1], fname | (uintptr_t)imp, __ATOMIC_RELAXED);
  __atomic_store_n(&slot[0], code, __ATOMIC_RELAXED);
  return imp;
}

/* The innermost frame that is not import machinery (<frozen importlib...>): objects a C
 * extension creates while it is imported are created "at" the import statement. */
int ftsan__python_frame_outside_imports(uintptr_t frame, uintptr_t *code, int *offset) {
  if (frames_ok != 1) return 0;
  const char *f = (const char *)frame;
  for (int depth = 0; f && depth < 64; depth++, f = ftsan_pylayout_previous(&layout, f)) {
    uintptr_t co = ftsan_pylayout_frame_code(&layout, f, code_type);
    if (!co || is_import_code(co)) continue;
    int off = ftsan_pylayout_frame_offset(&layout, f, co);
    if (off < 0) return 0;
    *code = co;
    *offset = off;
    return 1;
  }
  return 0;
}
