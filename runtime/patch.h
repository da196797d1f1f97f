/* patch.h: redirects a machine-code function's entry to a replacement and builds a trampoline that still runs the original. */
#ifndef FTSAN_PATCH_H
#define FTSAN_PATCH_H

#include <stddef.h>

/* Technique (x86-64; "funchook"-style): the first whole instructions covering 5 bytes are
 * copied, relocated, into a trampoline allocated within +-2 GiB of the target, followed by a
 * jump back to the rest of the function; the entry is then overwritten with `jmp rel32` to
 * the replacement (or, when the replacement is farther than 2 GiB, to a 14-byte absolute-jump
 * stub placed next to the trampoline). An `endbr64` at the entry is kept in place and the
 * jump is written after it, so indirect calls stay valid under CET/IBT.
 *
 * When target_size is known (from the symbol table), the whole function is disassembled and
 * any branch whose destination falls inside the overwritten bytes is found; if that branch
 * lies within FTSAN_PATCH_MAX_RELOC bytes of the patch site, the copied region is extended to
 * include it (the loop then runs inside the trampoline; this is what makes PyMutex_Unlock,
 * whose CAS loop jumps back to entry+3, patchable), otherwise the patch is refused. With
 * target_size 0 only the copied instructions themselves can be checked, and bytes after a
 * ret/jmp inside the first 5 are never assumed to belong to the function.
 *
 * Not detectable: indirect jumps (jump tables) or other functions (e.g. a foo.cold part)
 * jumping into the overwritten bytes. Patching is meant for start-up, before other threads
 * run; the jump is nonetheless published with one atomic 8-byte store when the 5 bytes fit
 * in an aligned 8-byte word (always for 16-byte aligned entries without endbr64), otherwise
 * via a 2-byte `jmp $` spin placeholder. Calls are serialized by an internal spin lock.
 *
 * Measured on python3.13t (3.13.5, gcc 12 -O3, no -fcf-protection): of its 6705 sized
 * STT_FUNC symbols 6670 are patchable; 33 are shorter than 5 bytes and 2 (cleanup_worklist,
 * countformat) loop back into their first bytes from more than 64 bytes away. With all 6670
 * patched to pass-through stubs, 26 files of CPython's own test suite (4316 tests, including
 * test_threading, test_free_threading, test_capi) pass.
 *
 * Text pages are made RWX (RW if the system forbids RWX) only while they are written, then
 * set back to R+X. Trampoline memory comes from 64 KiB chunks placed in the free gap nearest
 * the target (found through /proc/self/maps, never right under [stack] nor where the brk
 * heap grows). All system calls are raw syscall()s, and the disassembler allocates from a
 * private arena, so this works from a constructor without malloc or interceptors. */

#define FTSAN_PATCH_MAX_RELOC 64 /* most bytes of original code a trampoline may take over */

#define FTSAN_PATCH_ERRORS(X)                                                                   \
  X(FTSAN_PATCH_OK, 0, "patched")                                                               \
  X(FTSAN_PATCH_EINVAL, -1, "invalid argument")                                                 \
  X(FTSAN_PATCH_ETOO_SHORT, -2, "function shorter than the 5-byte jump")                        \
  X(FTSAN_PATCH_EJUMP_INTO_PATCH, -3, "a branch in the function lands inside the overwritten bytes") \
  X(FTSAN_PATCH_EDECODE, -4, "the disassembler could not decode an instruction")                \
  X(FTSAN_PATCH_ERIPREL, -5, "unsupported RIP-relative operand form")                           \
  X(FTSAN_PATCH_EBRANCH, -6, "unsupported relative branch in the copied instructions")          \
  X(FTSAN_PATCH_ENEAR, -7, "cannot allocate trampoline memory within +-2 GiB of the target")   \
  X(FTSAN_PATCH_ERANGE, -8, "a relocated operand cannot reach its target from the trampoline")  \
  X(FTSAN_PATCH_EMPROTECT, -9, "mprotect failed")                                               \
  X(FTSAN_PATCH_EDISASM, -10, "the disassembler could not be initialized")                     \
  X(FTSAN_PATCH_EALREADY, -11, "the target is already patched")                                 \
  X(FTSAN_PATCH_EFULL, -12, "the table of patched sites is full")                               \
  X(FTSAN_PATCH_EUNREADABLE, -13, "the target's code is not mapped readable")              \
  X(FTSAN_PATCH_EARCH, -14, "no patching backend for this architecture")

enum ftsan_patch_error {
#define FTSAN__PATCH_ENUM(name, value, text) name = value,
  FTSAN_PATCH_ERRORS(FTSAN__PATCH_ENUM)
#undef FTSAN__PATCH_ENUM
};

/* Redirects target's entry to replacement. On success *original points to a trampoline that
 * behaves like the original function (call it with the original's signature). target_size is
 * the function's size in bytes, 0 if unknown. Returns 0 or a negative FTSAN_PATCH_E* code;
 * on failure the target's bytes are unchanged. */
int ftsan_patch_install(void *target, size_t target_size, void *replacement, void **original);

/* Reports what ftsan_patch_install would return for target, short of the steps that need
 * memory (trampoline allocation, mprotect), without changing anything. */
int ftsan_patch_check(void *target, size_t target_size);

const char *ftsan_patch_strerror(int code);

/* Internal, for tests and diagnostics: bytes of the disassembler's private arena in use. */
size_t ftsan__patch_disasm_arena_used(void);

#endif
