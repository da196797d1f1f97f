/* rt_access.c: the memory-access, atomic and function entry/exit entry points of the ABI
 * (include/ftsan_abi.h). The PC of an access is the return address of the entry point. */
#include "rt_internal.h"

#define CALLER_PC ((uint64_t)(uintptr_t)__builtin_return_address(0))

FTSAN_ALWAYS_INLINE void access(uint64_t pc, void *addr, uint32_t size, int is_write) {
  (void)addr;
  (void)size;
  if (FTSAN_UNLIKELY(!ftsan__enabled)) return;
  ftsan_thread *t = ftsan__thread();
  if (FTSAN_UNLIKELY(t->ignore)) return;
  ftsan__stats_add(t, pc, is_write ? FTSAN_EV_WRITE : FTSAN_EV_READ);
}

#define DEFINE_ACCESS(size)                                                                   \
  FTSAN_EXPORT void __ftsan_read##size(void *addr) { access(CALLER_PC, addr, size, 0); }      \
  FTSAN_EXPORT void __ftsan_write##size(void *addr) { access(CALLER_PC, addr, size, 1); }
DEFINE_ACCESS(1)
DEFINE_ACCESS(2)
DEFINE_ACCESS(4)
DEFINE_ACCESS(8)
DEFINE_ACCESS(16)

FTSAN_EXPORT void __ftsan_read_range(void *addr, size_t size) {
  access(CALLER_PC, addr, (uint32_t)size, 0);
}

FTSAN_EXPORT void __ftsan_write_range(void *addr, size_t size) {
  access(CALLER_PC, addr, (uint32_t)size, 1);
}

FTSAN_EXPORT void __ftsan_atomic_pre(void *addr, uint32_t desc) {
  (void)addr;
  (void)desc;
  if (FTSAN_UNLIKELY(!ftsan__enabled)) return;
  ftsan_thread *t = ftsan__thread();
  if (FTSAN_UNLIKELY(t->ignore)) return;
  ftsan__stats_add(t, CALLER_PC, FTSAN_EV_ATOMIC);
}

FTSAN_EXPORT void __ftsan_atomic_post(void *addr, uint32_t desc) {
  (void)addr;
  (void)desc;
}

FTSAN_EXPORT void __ftsan_fence(uint32_t mo) { (void)mo; }

FTSAN_EXPORT void __ftsan_func_entry(void *caller_pc) {
  if (FTSAN_UNLIKELY(!ftsan__enabled)) return;
  ftsan_thread *t = ftsan__thread();
  if (FTSAN_LIKELY(t->depth < FTSAN_SHADOW_STACK)) t->stack[t->depth] = (uint64_t)(uintptr_t)caller_pc;
  t->depth++;
  if (FTSAN_UNLIKELY(t->ignore)) return;
  ftsan__stats_add(t, CALLER_PC, FTSAN_EV_FUNC_ENTRY);
}

FTSAN_EXPORT void __ftsan_func_exit(void) {
  if (FTSAN_UNLIKELY(!ftsan__enabled)) return;
  ftsan_thread *t = ftsan__thread();
  if (FTSAN_LIKELY(t->depth > 0)) t->depth--;
}
