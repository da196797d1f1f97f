/* rt_observe.h: entry hooks that only look at a function's first arguments before it runs
 * and must leave every register as they found it.
 *
 * A C hook in the place of an interpreter function has to repeat its signature to pass the
 * arguments on, and a static function's signature is not an API: it may gain a parameter in
 * the next release, and a hook that forwards too few arguments corrupts the call. A C hook
 * also clobbers every caller-saved register, which a caller compiled with interprocedural
 * register allocation (GCC's -fipa-ra, on at -O2) may rely on when the callee is in its own
 * translation unit. An observer thunk avoids both: it saves the argument and scratch
 * registers (rdi, rsi, rdx, rcx, r8-r11, rax, xmm0-7), calls
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

/* Defines `void thunk(void)`: observer(object register objreg, caller), then *original. The
 * observer and original must be non-static (hidden) symbols of this library. */
#define FTSAN_OBSERVER_THUNK(thunk, observer, original, objreg)                                  \
  __attribute__((visibility("hidden"))) void thunk(void);                                      \
  __asm__(".text\n.p2align 4\n.globl " #thunk "\n.hidden " #thunk "\n.type " #thunk ",@function\n" \
          #thunk ":\n.cfi_startproc\nendbr64\n"                                                 \
          FTSAN__PUSH(rdi) FTSAN__PUSH(rsi) FTSAN__PUSH(rdx) FTSAN__PUSH(rcx) FTSAN__PUSH(r8)    \
          FTSAN__PUSH(r9) FTSAN__PUSH(rax) FTSAN__PUSH(r10) FTSAN__PUSH(r11)                     \
          "sub $128, %rsp\n.cfi_adjust_cfa_offset 128\n"                                        \
          "movdqu %xmm0, 0(%rsp)\nmovdqu %xmm1, 16(%rsp)\nmovdqu %xmm2, 32(%rsp)\n"             \
          "movdqu %xmm3, 48(%rsp)\nmovdqu %xmm4, 64(%rsp)\nmovdqu %xmm5, 80(%rsp)\n"            \
          "movdqu %xmm6, 96(%rsp)\nmovdqu %xmm7, 112(%rsp)\n"                                   \
          "mov %" objreg ", %rdi\n"                                                              \
          "mov 200(%rsp), %rsi\n" /* 128 + 9 * 8: the hooked function's return address */       \
          "call " #observer "\n"                                                                 \
          "movdqu 0(%rsp), %xmm0\nmovdqu 16(%rsp), %xmm1\nmovdqu 32(%rsp), %xmm2\n"             \
          "movdqu 48(%rsp), %xmm3\nmovdqu 64(%rsp), %xmm4\nmovdqu 80(%rsp), %xmm5\n"            \
          "movdqu 96(%rsp), %xmm6\nmovdqu 112(%rsp), %xmm7\n"                                   \
          "add $128, %rsp\n.cfi_adjust_cfa_offset -128\n"                                       \
          FTSAN__POP(r11) FTSAN__POP(r10) FTSAN__POP(rax) FTSAN__POP(r9) FTSAN__POP(r8)          \
          FTSAN__POP(rcx) FTSAN__POP(rdx) FTSAN__POP(rsi) FTSAN__POP(rdi)                        \
          "jmp *" #original "(%rip)\n"                                                           \
          ".cfi_endproc\n.size " #thunk ", .-" #thunk "\n.previous\n")

#endif
