/* rt_observe.h: entry hooks that only look at a function's first arguments before it runs
 * and must leave every register as they found it.
 *
 * A C hook in the place of an interpreter function has to repeat its signature to pass the
 * arguments on, and a static function's signature is not an API: it may gain a parameter in
 * the next release, and a hook that forwards too few arguments corrupts the call. A C hook
 * also clobbers every caller-saved register, which a caller compiled with interprocedural
 * register allocation (GCC's -fipa-ra, on at -O2) may rely on when the callee is in its own
 * translation unit. An observer thunk avoids both: it saves the argument and scratch
 * registers (rdi, rsi, rdx, rcx, r8-r11, rax, xmm0-15), calls
 *     void observer(void *object, uint64_t caller)
 * with the object taken from one argument register and the hooked function's return
 * address, restores them all and jumps to the original through the trampoline pointer. The
 * thunk carries CFI, so stacks captured inside the observer unwind through it. x86-64 only. */
#ifndef FTSAN_RT_OBSERVE_H
#define FTSAN_RT_OBSERVE_H

#include <stdint.h>

#define FTSAN__STR(x) #x
#define FTSAN__PUSH(r) "push %" #r "\n.cfi_adjust_cfa_offset 8\n"
#define FTSAN__POP(r) "pop %" #r "\n.cfi_adjust_cfa_offset -8\n"
#define FTSAN__SAVE_XMM(n) "movdqu %xmm" #n ", " #n "*16(%rsp)\n"
#define FTSAN__LOAD_XMM(n) "movdqu " #n "*16(%rsp), %xmm" #n "\n"

/* Defines `void thunk(void)`: observer(object register objreg, caller), then *original. The
 * observer and original must be non-static (hidden) symbols of this library. */
#define FTSAN_OBSERVER_THUNK(thunk, observer, original, objreg)                                  \
  __attribute__((visibility("hidden"))) void thunk(void);                                      \
  __asm__(".text\n.p2align 4\n.globl " #thunk "\n.hidden " #thunk "\n.type " #thunk ",@function\n" \
          #thunk ":\n.cfi_startproc\nendbr64\n"                                                 \
          FTSAN__PUSH(rdi) FTSAN__PUSH(rsi) FTSAN__PUSH(rdx) FTSAN__PUSH(rcx) FTSAN__PUSH(r8)    \
          FTSAN__PUSH(r9) FTSAN__PUSH(rax) FTSAN__PUSH(r10) FTSAN__PUSH(r11)                     \
          "sub $256, %rsp\n.cfi_adjust_cfa_offset 256\n"                                        \
          FTSAN__SAVE_XMM(0) FTSAN__SAVE_XMM(1) FTSAN__SAVE_XMM(2) FTSAN__SAVE_XMM(3)            \
          FTSAN__SAVE_XMM(4) FTSAN__SAVE_XMM(5) FTSAN__SAVE_XMM(6) FTSAN__SAVE_XMM(7)            \
          FTSAN__SAVE_XMM(8) FTSAN__SAVE_XMM(9) FTSAN__SAVE_XMM(10) FTSAN__SAVE_XMM(11)          \
          FTSAN__SAVE_XMM(12) FTSAN__SAVE_XMM(13) FTSAN__SAVE_XMM(14) FTSAN__SAVE_XMM(15)        \
          "mov %" objreg ", %rdi\n"                                                              \
          "mov 328(%rsp), %rsi\n" /* 256 + 9 * 8: the hooked function's return address */       \
          "call " #observer "\n"                                                                 \
          FTSAN__LOAD_XMM(0) FTSAN__LOAD_XMM(1) FTSAN__LOAD_XMM(2) FTSAN__LOAD_XMM(3)            \
          FTSAN__LOAD_XMM(4) FTSAN__LOAD_XMM(5) FTSAN__LOAD_XMM(6) FTSAN__LOAD_XMM(7)            \
          FTSAN__LOAD_XMM(8) FTSAN__LOAD_XMM(9) FTSAN__LOAD_XMM(10) FTSAN__LOAD_XMM(11)          \
          FTSAN__LOAD_XMM(12) FTSAN__LOAD_XMM(13) FTSAN__LOAD_XMM(14) FTSAN__LOAD_XMM(15)        \
          "add $256, %rsp\n.cfi_adjust_cfa_offset -256\n"                                       \
          FTSAN__POP(r11) FTSAN__POP(r10) FTSAN__POP(rax) FTSAN__POP(r9) FTSAN__POP(r8)          \
          FTSAN__POP(rcx) FTSAN__POP(rdx) FTSAN__POP(rsi) FTSAN__POP(rdi)                        \
          "jmp *" #original "(%rip)\n"                                                           \
          ".cfi_endproc\n.size " #thunk ", .-" #thunk "\n.previous\n")

#endif
