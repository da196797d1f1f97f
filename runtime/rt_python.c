/* rt_python.c: what the runtime knows of the host interpreter, read from the debug offsets
 * that start _PyRuntime (cookie "xdebugpy", PY_VERSION_HEX, free-threaded flag, offsets),
 * without private headers. The layout changes between minor versions, so every use
 * dispatches on the version and unknown versions get "unknown" answers. */
#define _GNU_SOURCE 1
#include "rt_internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static const char *runtime_addr;   /* written once at init */
static uint32_t py_version;        /* written once at init */
static int py_free_threaded;       /* written once at init */

/* Offsets into _Py_DebugOffsets (3.13: Include/internal/pycore_runtime.h): header is cookie,
 * version, free_threaded; then runtime_state {size, finalizing, interpreters_head}; then
 * interpreter_state {size, id, next, threads_head, gc, imports_modules, sysdict, builtins,
 * ceval_gil, gil_runtime_state, gil_runtime_state_enabled, ...}. */
#define DO_VERSION 8
#define DO_FREE_THREADED 16
#define DO313_INTERPRETERS_HEAD 40
#define DO313_GIL_STATE 120
#define DO313_GIL_ENABLED 128

static uint64_t read_u64(const char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

void ftsan__python_init(void) {
  const char *rt = dlsym(RTLD_DEFAULT, "_PyRuntime");
  if (!rt || memcmp(rt, "xdebugpy", 8) != 0) return;
  runtime_addr = rt;
  py_version = (uint32_t)read_u64(rt + DO_VERSION);
  py_free_threaded = read_u64(rt + DO_FREE_THREADED) != 0;
}

uint32_t ftsan__python_version(void) { return py_version; }
int ftsan__python_free_threaded(void) { return py_free_threaded; }

/* The raw `enabled` field of the GIL (3.13 free-threaded): 0 disabled, a small count while
 * an extension's init runs with the GIL enabled transiently, INT_MAX once an import enabled
 * it for good. -1 when unknown. */
int ftsan__python_gil_state(void);

int ftsan__python_gil_enabled(void) {
  int st = ftsan__python_gil_state();
  return st < 0 ? -1 : st != 0;
}

int ftsan__python_gil_state(void) {
  if (!runtime_addr) return -1;
  if (!py_free_threaded) return 1;
  if ((py_version >> 16) != 0x030d) return -1;
  uint64_t head_off = read_u64(runtime_addr + DO313_INTERPRETERS_HEAD);
  uint64_t enabled_off = read_u64(runtime_addr + DO313_GIL_ENABLED);
  /* 3.13.5 leaves gil_runtime_state_enabled at 0; `enabled` is the first field of the
   * interpreter's struct _gil_runtime_state in free-threaded builds (checked: it becomes
   * INT_MAX when an import enables the GIL permanently). */
  if (enabled_off == 0) enabled_off = read_u64(runtime_addr + DO313_GIL_STATE);
  const char *interp = (const char *)(uintptr_t)read_u64(runtime_addr + head_off);
  if (!interp || enabled_off == 0) return -1;
  int enabled;
  memcpy(&enabled, interp + enabled_off, sizeof enabled);
  return enabled < 0 ? 1 : enabled;
}

/* ---- the running Python line --------------------------------------------------------------
 * 3.13 offsets inside _Py_DebugOffsets: thread_state.current_frame at 184; interpreter_frame
 * {previous 232, executable 240, instr_ptr 248, owner 264}; code_object {filename 280,
 * qualname 296, co_code_adaptive 344}. Other versions: no Python attribution (warned once). */
#define DO313_TS_CURRENT_FRAME 184
#define DO313_IF_PREVIOUS 232
#define DO313_IF_EXECUTABLE 240
#define DO313_IF_INSTR_PTR 248
#define DO313_IF_LOCALSPLUS 256
#define DO313_IF_OWNER 264
#define DO313_CO_FILENAME 280
#define DO313_CO_QUALNAME 296
#define DO313_CO_CODE_ADAPTIVE 344
#define FRAME_OWNED_BY_CSTACK 3

static void *(*get_tstate)(void);
static int (*addr2line)(void *code, int offset);
static const char *(*unicode_utf8)(void *s);
static uintptr_t code_type;
static uint64_t off_cur_frame, off_prev, off_exec, off_instr, off_owner, off_file, off_qual, off_code,
    off_locals;
static void *(*getattr_string)(void *o, const char *name);
static void (*py_decref)(void *o);
static void (*err_clear)(void);
static int frames_ok = -1; /* -1 not set up yet, 0 unsupported, 1 supported */

static int frames_init(void) {
  if (frames_ok >= 0) return frames_ok;
  frames_ok = 0;
  if (!runtime_addr || !py_free_threaded || (py_version >> 16) != 0x030d) {
    if (runtime_addr)
      ftsan__warn(FTSAN_WARN_GENERIC, "python %x.%x: Python source lines are not attributed "
                  "(only 3.13 frame layouts are known)", py_version >> 24, (py_version >> 16) & 0xff);
    return 0;
  }
  *(void **)&get_tstate = dlsym(RTLD_DEFAULT, "PyThreadState_GetUnchecked");
  *(void **)&addr2line = dlsym(RTLD_DEFAULT, "PyCode_Addr2Line");
  *(void **)&unicode_utf8 = dlsym(RTLD_DEFAULT, "PyUnicode_AsUTF8");
  code_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyCode_Type");
  if (!get_tstate || !addr2line || !unicode_utf8 || !code_type) return 0;
  off_cur_frame = read_u64(runtime_addr + DO313_TS_CURRENT_FRAME);
  off_prev = read_u64(runtime_addr + DO313_IF_PREVIOUS);
  off_exec = read_u64(runtime_addr + DO313_IF_EXECUTABLE);
  off_instr = read_u64(runtime_addr + DO313_IF_INSTR_PTR);
  off_owner = read_u64(runtime_addr + DO313_IF_OWNER);
  off_file = read_u64(runtime_addr + DO313_CO_FILENAME);
  off_qual = read_u64(runtime_addr + DO313_CO_QUALNAME);
  off_code = read_u64(runtime_addr + DO313_CO_CODE_ADAPTIVE);
  off_locals = read_u64(runtime_addr + DO313_IF_LOCALSPLUS);
  *(void **)&getattr_string = dlsym(RTLD_DEFAULT, "PyObject_GetAttrString");
  *(void **)&py_decref = dlsym(RTLD_DEFAULT, "Py_DecRef");
  *(void **)&err_clear = dlsym(RTLD_DEFAULT, "PyErr_Clear");
  frames_ok = 1;
  return 1;
}

int ftsan__python_stack(uintptr_t *codes, int *offsets, int max) {
  if (frames_ok != 1 && frames_init() != 1) return 0;
  const char *ts = get_tstate();
  if (!ts) return 0;
  int n = 0;
  const char *f = *(const char *const *)(ts + off_cur_frame);
  for (int depth = 0; f && depth < 256 && n < max; depth++, f = *(const char *const *)(f + off_prev)) {
    if (*(const unsigned char *)(f + off_owner) == FRAME_OWNED_BY_CSTACK) continue;
    uintptr_t co = *(const uintptr_t *)(f + off_exec);
    if (!co || *(const uintptr_t *)(co + 24) != code_type) continue;
    uintptr_t ip = *(const uintptr_t *)(f + off_instr);
    uintptr_t start = co + off_code;
    if (ip < start) break;
    codes[n] = co;
    offsets[n] = (int)(ip - start);
    n++;
  }
  return n;
}

int ftsan__python_frame(uintptr_t *code, int *offset) {
  return ftsan__python_stack(code, offset, 1);
}

int ftsan__python_frame_code(uintptr_t frame, uintptr_t ip, uintptr_t *code, int *offset) {
  if (frames_ok != 1 || !frame) return 0;
  const char *f = (const char *)frame;
  if (*(const unsigned char *)(f + off_owner) == FRAME_OWNED_BY_CSTACK) return 0;
  uintptr_t co = *(const uintptr_t *)(f + off_exec);
  if (!co || *(const uintptr_t *)(co + 24) != code_type) return 0;
  uintptr_t start = co + off_code;
  if (ip < start) return 0;
  *code = co;
  *offset = (int)(ip - start);
  return 1;
}

int ftsan__python_is_code(uintptr_t code) {
  if (frames_ok != 1) return 0;
  uintptr_t tp;
  return ftsan__safe_read(&tp, code + 24, 8) == 0 && tp == code_type;
}

int ftsan__python_resolve(uintptr_t code, int offset, char *file, size_t file_n, char *func,
                          size_t func_n, int *line) {
  if (frames_ok != 1) return 0;
  const char *fn = unicode_utf8(*(void **)(code + off_file));
  const char *qn = unicode_utf8(*(void **)(code + off_qual));
  snprintf(file, file_n, "%s", fn ? fn : "?");
  snprintf(func, func_n, "%s", qn ? qn : "?");
  *line = addr2line((void *)code, offset);
  return 1;
}

/* threading.Thread.start() is on the calling thread's Python stack when it creates the OS
 * thread: its first local is the Thread, whose _name is the name users gave it. */
int ftsan__python_thread_name(char *name, size_t n) {
  if (frames_ok != 1 && frames_init() != 1) return 0;
  if (!getattr_string || !py_decref || !err_clear) return 0;
  const char *ts = get_tstate();
  if (!ts) return 0;
  const char *f = *(const char *const *)(ts + off_cur_frame);
  for (int depth = 0; f && depth < 16; depth++, f = *(const char *const *)(f + off_prev)) {
    if (*(const unsigned char *)(f + off_owner) == FRAME_OWNED_BY_CSTACK) continue;
    uintptr_t co = *(const uintptr_t *)(f + off_exec);
    if (!co || *(const uintptr_t *)(co + 24) != code_type) continue;
    const char *qn = unicode_utf8(*(void **)(co + off_qual));
    if (!qn || strcmp(qn, "Thread.start") != 0) continue;
    void *self = *(void *const *)(f + off_locals);
    if (!self) return 0;
    void *nm = getattr_string(self, "_name");
    if (!nm) {
      err_clear();
      return 0;
    }
    const char *s = unicode_utf8(nm);
    if (s) snprintf(name, n, "%s", s);
    else err_clear();
    py_decref(nm);
    return s != NULL;
  }
  return 0;
}

/* The calling thread's current frame and its instruction pointer, without walking: a cheap
 * key under which callers memoize what the frame resolves to. (The thread state is asked
 * for each time: a thread's state can be deleted and made again, e.g. by PyGILState_*.) */
int ftsan__python_frame_key(uintptr_t *frame, uintptr_t *ip) {
  if (frames_ok != 1 && frames_init() != 1) return 0;
  const char *ts = get_tstate();
  if (!ts) return 0;
  const char *f = *(const char *const *)(ts + off_cur_frame);
  if (!f) return 0;
  *frame = (uintptr_t)f;
  *ip = *(const uintptr_t *)(f + off_instr);
  return 1;
}

/* The innermost frame that is not import machinery (<frozen importlib...>): objects a C
 * extension creates while it is imported are created "at" the import statement. */
/* Code objects the thread found not to be import machinery, direct-mapped; keyed on the
 * file name object too, so that another code object at a reused address is not taken for
 * one of them. Saves a string search per object created. */
#define PLAIN_CODES 16
static FTSAN_TLS struct { uintptr_t code, file; } plain_codes[PLAIN_CODES];

static int is_import_machinery(uintptr_t code) {
  uintptr_t file = *(const uintptr_t *)(code + off_file);
  uint32_t i = (uint32_t)(((uint64_t)code * 0x9E3779B97F4A7C15ull) >> 60) & (PLAIN_CODES - 1);
  if (plain_codes[i].code == code && plain_codes[i].file == file) return 0;
  const char *fn = unicode_utf8((void *)file);
  if (fn && (!strncmp(fn, "<frozen importlib", 17) || strstr(fn, "/importlib/"))) return 1;
  plain_codes[i].code = code;
  plain_codes[i].file = file;
  return 0;
}

int ftsan__python_frame_outside_imports(uintptr_t *code, int *offset) {
  /* Mostly the innermost frame is the answer: only an import walks further (a walk of 16
   * frames for every object created cost more than the rest of the creation hook). */
  uintptr_t codes[16];
  int offsets[16];
  if (ftsan__python_stack(codes, offsets, 1) == 0) return 0;
  int n = is_import_machinery(codes[0]) ? ftsan__python_stack(codes, offsets, 16) : 1;
  for (int i = 0; i < n; i++) {
    if (n > 1 && is_import_machinery(codes[i])) continue;
    *code = codes[i];
    *offset = offsets[i];
    return 1;
  }
  return 0;
}
