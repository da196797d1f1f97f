/* rt_python.c: what the runtime knows of the host interpreter, read from the debug offsets
 * that start _PyRuntime (cookie "xdebugpy", PY_VERSION_HEX, free-threaded flag, offsets),
 * without private headers. The layout changes between minor versions, so every use
 * dispatches on the version and unknown versions get "unknown" answers. */
#define _GNU_SOURCE 1
#include "rt_internal.h"

#include <dlfcn.h>
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

int ftsan__python_gil_enabled(void) {
  if (!runtime_addr) return -1;
  if (!py_free_threaded) return 1;
  if ((py_version >> 16) != 0x030d) return -1;
  uint64_t head_off = read_u64(runtime_addr + DO313_INTERPRETERS_HEAD);
  uint64_t enabled_off = read_u64(runtime_addr + DO313_GIL_ENABLED);
  const char *interp = (const char *)(uintptr_t)read_u64(runtime_addr + head_off);
  if (!interp || enabled_off == 0) return -1;
  int enabled;
  memcpy(&enabled, interp + enabled_off, sizeof enabled);
  return enabled != 0;
}
