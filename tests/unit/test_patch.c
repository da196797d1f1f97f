/* test_patch.c: unit tests for runtime/patch.c (entry patching, trampolines) and runtime/elf_lookup.c (symbol lookup). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syscall, dl_iterate_phdr, MAP_ANONYMOUS, RTLD_NEXT under -std=c11 */
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "elf_lookup.h"
#include "patch.h"
#include "rt_observe.h"

typedef int (*int_fn)(int);

/* Functions in patch_prologues_x86_64.S; see the comments there for their shapes. */
int pp_plain(int), pp_far(int), pp_riprel(int), pp_riprel_cmp(int), pp_lea(int), pp_sse(int);
int pp_call(int);
int pp_helper(int), pp_jcc(int), pp_jmpfwd(int), pp_backloop(int), pp_extloop(int), pp_endbr(int);
int pp_short(int), pp_loopback(int), pp_undecodable(int), pp_undecodable_after_jmp(int);
int pp_eiprel(int), pp_rel8internal(int);
int pp_rel8ext(int, int, int, long);
extern long long pp_global;

/* The compiler must not assume anything about these calls: go through volatile pointers. */
static int call(int_fn volatile f, int x) {
  return f(x);
}

/* Each patched function gets its own replacement that counts and calls the trampoline. */
#define REPLACEMENT(name, delta)                     \
  static int_fn orig_##name;                         \
  static int hits_##name;                            \
  static int repl_##name(int x) {                    \
    hits_##name++;                                   \
    return orig_##name(x) + (delta);                 \
  }
REPLACEMENT(plain, 1000000)
REPLACEMENT(far, 2000000)
REPLACEMENT(riprel, 1000000)
REPLACEMENT(riprel_cmp, 1000000)
REPLACEMENT(lea, 1000000)
REPLACEMENT(sse, 1000000)
REPLACEMENT(call, 1000000)
REPLACEMENT(jcc, 1000000)
REPLACEMENT(jmpfwd, 1000000)
REPLACEMENT(backloop, 1000000)
REPLACEMENT(extloop, 1000000)
REPLACEMENT(endbr, 1000000)

static int dummy_repl(int x) {
  return x;
}

/* Looks a function up and patches it with its symbol size. */
static int patch_sym(const char *name, void *repl, void **orig) {
  ftsan_elf_sym s;
  int rc = ftsan_elf_lookup(name, &s);
  if (rc != 0) return -1000 + rc;
  return ftsan_patch_install(s.addr, s.size, repl, orig);
}

static size_t sym_size(const char *name) {
  ftsan_elf_sym s;
  return ftsan_elf_lookup(name, &s) == 0 ? s.size : 0;
}

static int starts_with_jmp(const void *p) {
  return *(const unsigned char *)p == 0xe9;
}

TEST(plain_prologue) {
  CHECK_EQ(call(pp_plain, 5), 11);
  CHECK_EQ(ftsan_patch_check((void *)pp_plain, sym_size("pp_plain")), FTSAN_PATCH_OK);
  CHECK_EQ(patch_sym("pp_plain", (void *)repl_plain, (void **)&orig_plain), FTSAN_PATCH_OK);
  CHECK(starts_with_jmp((void *)pp_plain));
  CHECK_EQ(call(pp_plain, 5), 1000011);
  CHECK_EQ(hits_plain, 1);
  CHECK_EQ(call(orig_plain, 7), 15); /* the trampoline alone is the original */
}

TEST(already_patched) {
  void *o = NULL;
  CHECK_EQ(ftsan_patch_install((void *)pp_plain, 0, (void *)dummy_repl, &o), FTSAN_PATCH_EALREADY);
  CHECK_EQ(ftsan_patch_check((void *)pp_plain, 0), FTSAN_PATCH_EALREADY);
  CHECK(o == NULL);
  CHECK_EQ(call(pp_plain, 1), 1000003);
}

TEST(riprel_load) {
  /* Size unknown (0): the region must still be found, and the load must read the live
   * global, not a copy. */
  CHECK_EQ(ftsan_patch_install((void *)pp_riprel, 0, (void *)repl_riprel, (void **)&orig_riprel),
           FTSAN_PATCH_OK);
  CHECK_EQ(call(pp_riprel, 5), 1001005);
  pp_global = 2000;
  CHECK_EQ(call(pp_riprel, 5), 1002005);
  CHECK_EQ(call(orig_riprel, 1), 2001);
  CHECK_EQ(hits_riprel, 2);
  pp_global = 1000;
}

TEST(riprel_cmp_with_imm) {
  CHECK_EQ(patch_sym("pp_riprel_cmp", (void *)repl_riprel_cmp, (void **)&orig_riprel_cmp),
           FTSAN_PATCH_OK);
  CHECK_EQ(call(pp_riprel_cmp, 1), 1000101);
  CHECK_EQ(hits_riprel_cmp, 1);
}

TEST(riprel_lea) {
  CHECK_EQ(patch_sym("pp_lea", (void *)repl_lea, (void **)&orig_lea), FTSAN_PATCH_OK);
  CHECK_EQ(call(pp_lea, 2), 1000030);
  CHECK_EQ(call(orig_lea, 3), 40);
}

TEST(riprel_sse_66_prefix) {
  CHECK_EQ(patch_sym("pp_sse", (void *)repl_sse, (void **)&orig_sse), FTSAN_PATCH_OK);
  CHECK_EQ(call(pp_sse, 1), 1000501);
  CHECK_EQ(call(orig_sse, 2), 502);
}

TEST(call_in_prologue) {
  CHECK_EQ(patch_sym("pp_call", (void *)repl_call, (void **)&orig_call), FTSAN_PATCH_OK);
  CHECK_EQ(call(pp_call, 1), 1000103); /* helper(1) = 102, +1, +1000000 */
  CHECK_EQ(call(orig_call, 2), 105);
  CHECK_EQ(hits_call, 1);
}

TEST(short_jcc_in_prologue) {
  CHECK_EQ(patch_sym("pp_jcc", (void *)repl_jcc, (void **)&orig_jcc), FTSAN_PATCH_OK);
  CHECK_EQ(call(pp_jcc, 4), 1000008);
  CHECK_EQ(call(pp_jcc, -4), 999999); /* the js taken from the trampoline */
  CHECK_EQ(call(orig_jcc, -1), -1);
  CHECK_EQ(hits_jcc, 2);
}

TEST(internal_forward_jmp) {
  CHECK_EQ(patch_sym("pp_jmpfwd", (void *)repl_jmpfwd, (void **)&orig_jmpfwd), FTSAN_PATCH_OK);
  CHECK_EQ(call(pp_jmpfwd, 4), 1000007);
}

TEST(internal_backward_loop) {
  CHECK_EQ(patch_sym("pp_backloop", (void *)repl_backloop, (void **)&orig_backloop),
           FTSAN_PATCH_OK);
  CHECK_EQ(call(pp_backloop, 5), 1000042);
  CHECK_EQ(call(orig_backloop, 3), 42);
}

TEST(loop_back_into_patch_is_relocated) {
  CHECK_EQ(call(pp_extloop, 4), 10);
  CHECK_EQ(patch_sym("pp_extloop", (void *)repl_extloop, (void **)&orig_extloop), FTSAN_PATCH_OK);
  CHECK_EQ(call(pp_extloop, 4), 1000010);
  CHECK_EQ(call(orig_extloop, 100), 5050);
}

static int (*orig_rel8ext)(int, int, int, long);
static int hits_rel8ext;
static int repl_rel8ext(int x, int a, int b, long c) {
  hits_rel8ext++;
  return orig_rel8ext(x, a, b, c) + 1000000;
}

TEST(rel8_only_branch_leaving_the_copy) {
  int (*volatile f)(int, int, int, long) = pp_rel8ext;
  CHECK_EQ(f(1, 0, 0, 0), 8);
  CHECK_EQ(f(1, 0, 0, 5), 9);
  CHECK_EQ(patch_sym("pp_rel8ext", (void *)repl_rel8ext, (void **)&orig_rel8ext), FTSAN_PATCH_OK);
  CHECK_EQ(f(1, 0, 0, 0), 1000008);
  CHECK_EQ(f(1, 0, 0, 5), 1000009);
  CHECK_EQ(hits_rel8ext, 2);
}

TEST(endbr64_kept_in_place) {
  static const unsigned char endbr[4] = {0xf3, 0x0f, 0x1e, 0xfa};
  CHECK_EQ(patch_sym("pp_endbr", (void *)repl_endbr, (void **)&orig_endbr), FTSAN_PATCH_OK);
  CHECK(memcmp((void *)pp_endbr, endbr, 4) == 0);
  CHECK(starts_with_jmp((const unsigned char *)pp_endbr + 4));
  CHECK(memcmp((void *)orig_endbr, endbr, 4) == 0); /* the trampoline starts with one too */
  CHECK_EQ(call(pp_endbr, 3), 1000012);
  CHECK_EQ(call(orig_endbr, 3), 12);
}

/* A copy of a small forwarding stub ("movabs rax, repl_far; jmp rax") mapped more than
 * 2 GiB from pp_far, so the patch needs its near absolute-jump stub. */
TEST(far_replacement) {
  uintptr_t t = (uintptr_t)pp_far & ~(uintptr_t)0xfff;
  unsigned char *far = MAP_FAILED;
  for (int k = 1; k <= 16 && far == MAP_FAILED; k++) {
    uintptr_t up = t + ((uintptr_t)k << 33), down = t - ((uintptr_t)k << 33);
    far = mmap((void *)up, 4096, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (far == MAP_FAILED && t > ((uintptr_t)k << 33) + 0x100000)
      far = mmap((void *)down, 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  }
  CHECK(far != MAP_FAILED);
  if (far == MAP_FAILED) return;
  uintptr_t d = (uintptr_t)far > t ? (uintptr_t)far - t : t - (uintptr_t)far;
  CHECK(d > ((uintptr_t)1 << 31));
  uint64_t dest = (uint64_t)(uintptr_t)repl_far;
  far[0] = 0x48;
  far[1] = 0xb8;
  memcpy(far + 2, &dest, 8);
  far[10] = 0xff;
  far[11] = 0xe0;
  CHECK_EQ(mprotect(far, 4096, PROT_READ | PROT_EXEC), 0);

  CHECK_EQ(patch_sym("pp_far", far, (void **)&orig_far), FTSAN_PATCH_OK);
  CHECK(starts_with_jmp((void *)pp_far));
  int32_t rel;
  memcpy(&rel, (const unsigned char *)pp_far + 1, 4);
  const unsigned char *stub = (const unsigned char *)pp_far + 5 + rel;
  CHECK(stub != far);
  CHECK_EQ(stub[0], 0xff);
  CHECK_EQ(stub[1], 0x25);
  CHECK_EQ(call(pp_far, 5), 2000011);
  CHECK_EQ(hits_far, 1);
}

/* ---- negatives: specific error, bytes unchanged, function still works ---- */

static void check_refused(const char *name, void *fn, size_t size, int want) {
  unsigned char before[16], after[16];
  memcpy(before, fn, sizeof before);
  CHECK_EQ(ftsan_patch_check(fn, size), want);
  void *o = NULL;
  int rc = ftsan_patch_install(fn, size, (void *)dummy_repl, &o);
  if (rc != want) printf("  %s: got %d (%s), want %d\n", name, rc, ftsan_patch_strerror(rc), want);
  CHECK_EQ(rc, want);
  CHECK(o == NULL);
  memcpy(after, fn, sizeof after);
  CHECK(memcmp(before, after, sizeof before) == 0);
}

TEST(too_short) {
  CHECK_EQ(sym_size("pp_short"), 3);
  check_refused("pp_short", (void *)pp_short, 3, FTSAN_PATCH_ETOO_SHORT);
  check_refused("pp_short", (void *)pp_short, 0, FTSAN_PATCH_ETOO_SHORT);
  CHECK_EQ(call(pp_short, 9), 0);
}

TEST(jump_back_into_patch) {
  check_refused("pp_loopback", (void *)pp_loopback, sym_size("pp_loopback"),
                FTSAN_PATCH_EJUMP_INTO_PATCH);
  CHECK_EQ(call(pp_loopback, 4), 10);
}

TEST(undecodable) {
  check_refused("pp_undecodable", (void *)pp_undecodable, sym_size("pp_undecodable"),
                FTSAN_PATCH_EDECODE);
  check_refused("pp_undecodable", (void *)pp_undecodable, 0, FTSAN_PATCH_EDECODE);
  /* Here the bad byte follows an unconditional jmp: with no size, the bytes after it are
   * not assumed to be the function's, which is reported first. */
  check_refused("pp_undecodable_after_jmp", (void *)pp_undecodable_after_jmp, 0,
                FTSAN_PATCH_ETOO_SHORT);
  check_refused("pp_undecodable_after_jmp", (void *)pp_undecodable_after_jmp,
                sym_size("pp_undecodable_after_jmp"), FTSAN_PATCH_EDECODE);
  CHECK_EQ(call(pp_undecodable_after_jmp, 0), 6);
  CHECK_EQ(call(pp_undecodable, 0), 5);
}

TEST(eip_relative_refused) {
  check_refused("pp_eiprel", (void *)pp_eiprel, sym_size("pp_eiprel"), FTSAN_PATCH_ERIPREL);
  CHECK_EQ(call(pp_eiprel, 1), 10);
}

TEST(internal_rel8_refused) {
  check_refused("pp_rel8internal", (void *)pp_rel8internal, sym_size("pp_rel8internal"),
                FTSAN_PATCH_EBRANCH);
  CHECK_EQ(call(pp_rel8internal, 1), 8);
}

TEST(invalid_args) {
  void *o = NULL;
  CHECK_EQ(ftsan_patch_install(NULL, 0, (void *)dummy_repl, &o), FTSAN_PATCH_EINVAL);
  CHECK_EQ(ftsan_patch_install((void *)pp_short, 0, NULL, &o), FTSAN_PATCH_EINVAL);
  CHECK_STR(ftsan_patch_strerror(FTSAN_PATCH_ENEAR),
            "cannot allocate trampoline memory within +-2 GiB of the target");
  CHECK_STR(ftsan_patch_strerror(12345), "unknown ftsan_patch error");
}

TEST(disasm_arena_small) {
  /* Documents the capstone arena figure quoted in patch.c. */
  printf("  capstone arena in use: %zu bytes\n", ftsan__patch_disasm_arena_used());
  CHECK(ftsan__patch_disasm_arena_used() > 0);
  CHECK(ftsan__patch_disasm_arena_used() < 32 * 1024); /* the arena has 64 KiB */
}

/* ---- ftsan_elf_lookup ---- */

/* noinline+used keeps it a real local symbol under its own name (no .constprop clone). */
__attribute__((noinline, used)) static int local_only(int x) {
  return x * 3;
}

__attribute__((noinline, used)) static int pp_dup(int x) {
  return x;
}

TEST(elf_global_of_test_binary) {
  ftsan_elf_sym s;
  CHECK_EQ(ftsan_elf_lookup("pp_helper", &s), FTSAN_ELF_OK);
  CHECK(s.addr == (void *)pp_helper);
  CHECK_EQ(s.size, 5); /* lea eax,[rdi+rdi+100] (4) + ret (1) */
  CHECK_EQ(s.is_local, 0);
  CHECK_STR(s.object, "/proc/self/exe");
  CHECK_EQ(ftsan_elf_lookup_in("", "main", &s), FTSAN_ELF_OK);
}

TEST(elf_static_function) {
  ftsan_elf_sym s;
  CHECK_EQ(ftsan_elf_lookup("local_only", &s), FTSAN_ELF_OK);
  CHECK(s.addr == (void *)local_only);
  CHECK(s.size > 0);
  CHECK_EQ(s.is_local, 1);
  CHECK_EQ(s.ambiguous, 0);
  CHECK_EQ(call(local_only, 2), 6);
}

TEST(elf_duplicate_locals) {
  ftsan_elf_sym s;
  CHECK_EQ(ftsan_elf_lookup("pp_dup", &s), FTSAN_ELF_OK);
  CHECK_EQ(s.is_local, 1);
  CHECK_EQ(s.ambiguous, 1);
  CHECK(call(pp_dup, 1) == 1);
}

TEST(elf_libc_function) {
  ftsan_elf_sym s;
  CHECK_EQ(ftsan_elf_lookup("getpid", &s), FTSAN_ELF_OK);
  /* RTLD_NEXT, not &getpid: in a non-PIE test binary &getpid is the binary's PLT slot. */
  CHECK(s.addr == dlsym(RTLD_NEXT, "getpid"));
  CHECK(s.size > 0);
  CHECK_EQ(s.is_local, 0);
  CHECK(strstr(s.object, "libc.so") != NULL);
  /* Versioned symbol: the default pthread_cond_wait@@GLIBC_2.3.2, not the old @GLIBC_2.2.5. */
  CHECK_EQ(ftsan_elf_lookup("pthread_cond_wait", &s), FTSAN_ELF_OK);
  CHECK(s.addr == dlsym(RTLD_NEXT, "pthread_cond_wait"));
  CHECK_EQ(ftsan_elf_lookup_in("libc.so", "getpid", &s), FTSAN_ELF_OK);
  CHECK_EQ(ftsan_elf_lookup_in("libc.so", "pp_helper", &s), FTSAN_ELF_ENOTFOUND);
  CHECK_EQ(ftsan_elf_lookup_in("no-such-lib.so", "getpid", &s), FTSAN_ELF_ENOOBJECT);
  /* memcpy@@GLIBC_2.14 is an IFUNC in glibc's x86-64 libc (its value is the resolver), next
   * to a plain-FUNC memcpy@GLIBC_2.2.5. Restricted to libc because a sanitizer runtime
   * earlier in the search order defines its own memcpy. */
  CHECK_EQ(ftsan_elf_lookup_in("libc.so", "memcpy", &s), FTSAN_ELF_EIFUNC);
}

TEST(elf_missing_and_batch) {
  ftsan_elf_sym s;
  CHECK_EQ(ftsan_elf_lookup("ftsan_no_such_function_xyz", &s), FTSAN_ELF_ENOTFOUND);
  CHECK_EQ(ftsan_elf_lookup("", &s), FTSAN_ELF_EINVAL);
  CHECK_EQ(ftsan_elf_lookup(NULL, &s), FTSAN_ELF_EINVAL);
  ftsan_elf_lookup_begin();
  ftsan_elf_lookup_begin(); /* nests */
  CHECK_EQ(ftsan_elf_lookup("pp_plain", &s), FTSAN_ELF_OK);
  CHECK(s.addr == (void *)pp_plain);
  ftsan_elf_lookup_end();
  CHECK_EQ(ftsan_elf_lookup("getpid", &s), FTSAN_ELF_OK);
  ftsan_elf_lookup_end();
  CHECK_EQ(ftsan_elf_lookup("local_only", &s), FTSAN_ELF_OK);
  CHECK_STR(ftsan_elf_strerror(FTSAN_ELF_ENOTFOUND),
            "no defined function of that name in any loaded object");
}

/* ---- observer thunks (rt_observe.h) -------------------------------------------------------- */
__attribute__((noinline, used)) double obs_target(long a, long b, long c, long d, long e, long f, double x0,
                                                  double x1, double x2, double x3, double x4, double x5,
                                                  double x6, double x7) {
  return (double)(a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f) + x0 + 2 * x1 + 3 * x2 + 4 * x3 + 5 * x4 +
         6 * x5 + 7 * x6 + 8 * x7;
}
__attribute__((visibility("hidden"))) void *obs_orig;
static void *obs_seen_object;
static uint64_t obs_seen_caller;
static volatile double obs_sink;
/* Clobbers what it may: integer and SSE scratch registers, a libc call. */
__attribute__((visibility("hidden"), noinline)) void obs_observer(void *object, uint64_t caller) {
  char buf[256];
  memset(buf, 0x5a, sizeof buf);
  double acc = 0;
  for (int i = 0; i < 16; i++) acc += buf[i] * 1.5 + i;
  obs_sink = acc;
  obs_seen_object = object;
  obs_seen_caller = caller;
}
FTSAN_OBSERVER_THUNK(obs_thunk, obs_observer, obs_orig, "rsi");

__attribute__((noinline)) static double call_obs_target(void) {
  double (*volatile fn)(long, long, long, long, long, long, double, double, double, double, double, double,
                        double, double) = obs_target;
  double r = fn(1, 2, 3, 4, 5, 6, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5);
  obs_sink = r; /* not a tail call: the return address stays in this function */
  return r;
}

TEST(observer_thunk_passes_every_argument_through) {
  double expect = call_obs_target();
  CHECK_EQ(patch_sym("obs_target", (void *)obs_thunk, &obs_orig), FTSAN_PATCH_OK);
  double got = call_obs_target();
  CHECK(got == expect);
  CHECK_EQ((uintptr_t)obs_seen_object, 2); /* the second argument, as asked for with "rsi" */
  /* the caller is the instruction after the call in call_obs_target */
  CHECK(obs_seen_caller > (uint64_t)(uintptr_t)call_obs_target &&
        obs_seen_caller < (uint64_t)(uintptr_t)call_obs_target + 256);
}

int main(void) {
  RUN(elf_global_of_test_binary);
  RUN(elf_static_function);
  RUN(elf_duplicate_locals);
  RUN(elf_libc_function);
  RUN(elf_missing_and_batch);
  RUN(plain_prologue);
  RUN(observer_thunk_passes_every_argument_through);
  RUN(already_patched);
  RUN(riprel_load);
  RUN(riprel_cmp_with_imm);
  RUN(riprel_lea);
  RUN(riprel_sse_66_prefix);
  RUN(call_in_prologue);
  RUN(short_jcc_in_prologue);
  RUN(internal_forward_jmp);
  RUN(internal_backward_loop);
  RUN(loop_back_into_patch_is_relocated);
  RUN(rel8_only_branch_leaving_the_copy);
  RUN(endbr64_kept_in_place);
  RUN(far_replacement);
  RUN(too_short);
  RUN(jump_back_into_patch);
  RUN(undecodable);
  RUN(eip_relative_refused);
  RUN(internal_rel8_refused);
  RUN(invalid_args);
  RUN(disasm_arena_small);
  return CHECK_DONE();
}
