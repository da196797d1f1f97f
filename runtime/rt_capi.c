/* rt_capi.c: wrappers for the C-API synchronization functions that the pass redirects calls
 * to (FTSAN_CAPI_WRAPPERS in include/ftsan_abi.h). Each records the event and calls the real
 * function, found with dlsym(RTLD_DEFAULT): the definition lives in the python executable
 * (or libpython), which LD_PRELOAD cannot interpose. */
#define _GNU_SOURCE 1
#include "rt_internal.h"

#include <dlfcn.h>

#define CALLER_PC ((uint64_t)(uintptr_t)__builtin_return_address(0))

#define DEFINE_REAL(name, ret, params, args) static ret(*real_##name) params;
FTSAN_CAPI_WRAPPERS(DEFINE_REAL)
#undef DEFINE_REAL

void ftsan__capi_init(void) {
#define RESOLVE(name, ret, params, args) real_##name = (ret(*) params)dlsym(RTLD_DEFAULT, #name);
  FTSAN_CAPI_WRAPPERS(RESOLVE)
#undef RESOLVE
}

static void missing(const char *name) {
  ftsan__warn(FTSAN_WARN_HOOK_FAILED, "%s not found in the process; is this python?", name);
}

static void note_sync(uint64_t pc) {
  if (!ftsan__enabled) return;
  ftsan_thread *t = ftsan__thread();
  if (!t->ignore) ftsan__stats_add(t, pc, FTSAN_EV_SYNC);
}

/* A wrapper per function; the event recorded is what the race detector models for it. */
#define DEFINE_WRAPPER(name, ret, params, args)                                   \
  FTSAN_EXPORT ret __ftsan_##name params {                                        \
    note_sync(CALLER_PC);                                                         \
    if (FTSAN_UNLIKELY(!real_##name)) {                                           \
      real_##name = (ret(*) params)dlsym(RTLD_DEFAULT, #name);                    \
      if (!real_##name) {                                                         \
        missing(#name);                                                           \
        __builtin_trap();                                                         \
      }                                                                           \
    }                                                                             \
    return real_##name args;                                                      \
  }
FTSAN_CAPI_WRAPPERS(DEFINE_WRAPPER)
#undef DEFINE_WRAPPER
