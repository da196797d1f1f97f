/* test_symbolize.c: unit tests for the CLI symbolizer, built against fixture shared objects compiled at run time with several optimization levels and DWARF versions. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dlinfo, RTLD_DI_LINKMAP, dladdr1 */
#endif

#include "check.h"
#include "symbolize.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One fixture build: how it was compiled and what the loaded copy reported. */
typedef struct fixture_build {
  const char *tag;
  const char *flags;
  int ok;
  char so[PATH_MAX];
  void *handle;
  uintptr_t bias;
  uint64_t pcs[8];      /* return address - 1, as a module-relative vaddr */
  int lines[8][3];
} fixture_build;

static fixture_build g_builds[] = {
    {"O0_dw4", "-O0 -gdwarf-4", 0, "", NULL, 0, {0}, {{0}}},
    {"O0_dw5", "-O0 -gdwarf-5", 0, "", NULL, 0, {0}, {{0}}},
    {"O2_dw4", "-O2 -gdwarf-4", 0, "", NULL, 0, {0}, {{0}}},
    {"O2_dw5", "-O2 -gdwarf-5", 0, "", NULL, 0, {0}, {{0}}},
    /* separate sections give the CU a DW_AT_ranges list instead of low/high pc */
    {"O2fs_dw4", "-O2 -gdwarf-4 -ffunction-sections", 0, "", NULL, 0, {0}, {{0}}},
    {"O2fs_dw5", "-O2 -gdwarf-5 -ffunction-sections", 0, "", NULL, 0, {0}, {{0}}},
};
#define NBUILDS ((int)(sizeof g_builds / sizeof g_builds[0]))

static char g_fixdir[PATH_MAX]; /* realpath of the fixture dir: the compiler's comp_dir */
static char g_tmpdir[PATH_MAX];
static char g_src_c[PATH_MAX + 32], g_src_h[PATH_MAX + 32];
static const char *g_cc;

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static void dump_frames(const char *what, const ftsan_frame *f, int n) {
  printf("  %s: %d frame(s)\n", what, n);
  for (int i = 0; i < n; i++)
    printf("    #%d %s %s:%d:%d%s\n", i, f[i].function, f[i].file, f[i].line, f[i].column,
           f[i].inlined ? " (inlined)" : "");
}

static int run_cmd(const char *cmd) {
  int rc = system(cmd);
  if (rc != 0) printf("  command failed (%d): %s\n", rc, cmd);
  return rc == 0;
}

static void *sym(fixture_build *b, const char *name) {
  void *p = dlsym(b->handle, name);
  if (!p) printf("  %s: dlsym(%s) failed: %s\n", b->tag, name, dlerror());
  return p;
}

/* Compiles, loads and runs one fixture build, capturing the call-site addresses. */
static int prepare_build(fixture_build *b) {
  char cmd[3 * PATH_MAX];
  if (snprintf(b->so, sizeof b->so, "%s/sym_%s.so", g_tmpdir, b->tag) >= (int)sizeof b->so)
    return 0;
  /* cd into the fixture dir and compile a relative name, so the DWARF file names are relative
   * and the symbolizer has to join them with DW_AT_comp_dir. */
  if (snprintf(cmd, sizeof cmd, "cd '%s' && %s -g %s -fPIC -shared -o '%s' sym_fixture.c",
               g_fixdir, g_cc, b->flags, b->so) >= (int)sizeof cmd)
    return 0;
  if (!run_cmd(cmd)) return 0;
  b->handle = dlopen(b->so, RTLD_NOW | RTLD_LOCAL);
  if (!b->handle) {
    printf("  dlopen(%s): %s\n", b->so, dlerror());
    return 0;
  }
  struct link_map *lm = NULL;
  if (dlinfo(b->handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm) return 0;
  b->bias = (uintptr_t)lm->l_addr;
  void (*plain)(void) = (void (*)(void))sym(b, "fixture_plain");
  void (*outer)(int) = (void (*)(int))sym(b, "fixture_outer");
  void **pcs = sym(b, "fixture_pcs");
  int(*lines)[3] = sym(b, "fixture_lines");
  if (!plain || !outer || !pcs || !lines) return 0;
  plain();
  outer(1);
  for (int i = 0; i < 3; i++) {
    if (!pcs[i]) return 0;
    b->pcs[i] = (uint64_t)((uintptr_t)pcs[i] - 1 - b->bias);
    memcpy(b->lines[i], lines[i], sizeof b->lines[i]);
  }
  return 1;
}

static uint64_t vaddr_of(fixture_build *b, const char *name) {
  void *p = sym(b, name);
  return p ? (uint64_t)((uintptr_t)p - b->bias) : 0;
}

static uint64_t data_vaddr(fixture_build *b, const char *getter) {
  void *(*fn)(void) = (void *(*)(void))sym(b, getter);
  return fn ? (uint64_t)((uintptr_t)fn() - b->bias) : 0;
}

static int int_sym(fixture_build *b, const char *name) {
  int *p = sym(b, name);
  return p ? *p : -1;
}

TEST(plain_call_site) {
  ftsan_symbolizer *s = ftsan_symbolizer_new();
  CHECK(s != NULL);
  for (int i = 0; i < NBUILDS && s; i++) {
    fixture_build *b = &g_builds[i];
    if (!b->ok) continue;
    ftsan_frame f[8];
    memset(f, 0, sizeof f);
    int before = check__failed_in_test;
    check__failed_in_test = 0;
    int n = ftsan_symbolize_code(s, b->so, b->pcs[0], f, 8);
    CHECK_EQ(n, 1);
    CHECK_STR(f[0].function, "fixture_plain");
    CHECK_STR(f[0].file, g_src_c);
    CHECK_EQ(f[0].line, b->lines[0][0]);
    CHECK_EQ(f[0].inlined, 0);
    if (check__failed_in_test) dump_frames(b->tag, f, n);
    check__failed_in_test |= before;
  }
  ftsan_symbolizer_free(s);
}

/* slot 1 and 2: fixture_inner (header) inlined into fixture_mid inlined into fixture_outer */
TEST(inline_chain) {
  ftsan_symbolizer *s = ftsan_symbolizer_new();
  CHECK(s != NULL);
  for (int i = 0; i < NBUILDS && s; i++) {
    fixture_build *b = &g_builds[i];
    if (!b->ok) continue;
    for (int slot = 1; slot <= 2; slot++) {
      ftsan_frame f[8];
      memset(f, 0, sizeof f);
      int before = check__failed_in_test;
      check__failed_in_test = 0;
      int n = ftsan_symbolize_code(s, b->so, b->pcs[slot], f, 8);
      CHECK_EQ(n, 3);
      CHECK_STR(f[0].function, "fixture_inner");
      CHECK_STR(f[0].file, g_src_h);
      CHECK_STR(base_name(f[0].file), "sym_fixture.h");
      CHECK_EQ(f[0].line, b->lines[slot][0]);
      CHECK_EQ(f[0].inlined, 1);
      CHECK_STR(f[1].function, "fixture_mid");
      CHECK_STR(f[1].file, g_src_c);
      CHECK_EQ(f[1].line, b->lines[slot][1]);
      CHECK_EQ(f[1].inlined, 1);
      CHECK_STR(f[2].function, "fixture_outer");
      CHECK_STR(f[2].file, g_src_c);
      CHECK_EQ(f[2].line, b->lines[slot][2]);
      CHECK_EQ(f[2].inlined, 0);
      if (check__failed_in_test) {
        printf("  %s slot %d expects lines %d/%d/%d\n", b->tag, slot, b->lines[slot][0],
               b->lines[slot][1], b->lines[slot][2]);
        dump_frames(b->tag, f, n);
      }
      check__failed_in_test |= before;

      /* max truncates from the outside: the innermost frame comes first */
      ftsan_frame one;
      CHECK_EQ(ftsan_symbolize_code(s, b->so, b->pcs[slot], &one, 1), 1);
      CHECK_STR(one.function, "fixture_inner");
      CHECK_EQ(one.line, b->lines[slot][0]);
    }
  }
  ftsan_symbolizer_free(s);
}

/* Every byte of fixture_outer belongs to it (outermost frame), before and after caching. */
TEST(whole_function_and_cache) {
  ftsan_symbolizer *s = ftsan_symbolizer_new();
  CHECK(s != NULL);
  for (int i = 0; i < NBUILDS && s; i++) {
    fixture_build *b = &g_builds[i];
    if (!b->ok) continue;
    void *fn = sym(b, "fixture_outer");
    Dl_info info;
    const ElfW(Sym) *es = NULL;
    if (!fn || !dladdr1(fn, &info, (void **)&es, RTLD_DL_SYMENT) || !es || !es->st_size) {
      CHECK(0);
      continue;
    }
    uint64_t start = vaddr_of(b, "fixture_outer");
    int bad = 0, deep = 0;
    for (int pass = 0; pass < 2; pass++) {
      for (uint64_t a = start; a < start + es->st_size; a++) {
        ftsan_frame f[8];
        int n = ftsan_symbolize_code(s, b->so, a, f, 8);
        if (n < 1 || strcmp(f[n - 1].function, "fixture_outer") != 0 || f[n - 1].inlined ||
            f[n - 1].line <= 0) {
          if (!bad++) dump_frames(b->tag, f, n);
        }
        if (n == 3) deep++;
      }
    }
    CHECK_EQ(bad, 0);
    CHECK(deep > 0);
    /* At -O0 the entry address is the prologue, attributed to the line of the signature,
     * which the fixture places directly above the first call (lines[1][2]). */
    if (strncmp(b->tag, "O0", 2) == 0) {
      ftsan_frame f[8];
      int n = ftsan_symbolize_code(s, b->so, start, f, 8);
      CHECK_EQ(n, 1);
      CHECK_STR(f[0].function, "fixture_outer");
      CHECK_EQ(f[0].line, b->lines[1][2] - 1);
    }
  }
  ftsan_symbolizer_free(s);
}

TEST(data_symbols) {
  ftsan_symbolizer *s = ftsan_symbolizer_new();
  CHECK(s != NULL);
  for (int i = 0; i < NBUILDS && s; i++) {
    fixture_build *b = &g_builds[i];
    if (!b->ok) continue;
    int before = check__failed_in_test;
    check__failed_in_test = 0;
    ftsan_data_sym d;

    uint64_t a = data_vaddr(b, "fixture_addr_counter_static");
    CHECK_EQ(ftsan_symbolize_data(s, b->so, a, &d), 1);
    CHECK_STR(d.name, "counter_static");
    CHECK_EQ(d.start, a);
    CHECK_EQ(d.size, sizeof(int));
    CHECK_STR(d.file, g_src_c);
    CHECK_EQ(d.line, int_sym(b, "fixture_line_counter_static"));

    uint64_t base = data_vaddr(b, "fixture_addr_pairs_static");
    a = data_vaddr(b, "fixture_addr_pairs_static_mid");
    CHECK_EQ(ftsan_symbolize_data(s, b->so, a, &d), 1);
    CHECK_STR(d.name, "pairs_static");
    CHECK_EQ(d.start, base);
    CHECK_EQ(d.size, 3 * 2 * sizeof(long));
    CHECK_EQ(d.line, int_sym(b, "fixture_line_pairs_static"));

    a = vaddr_of(b, "global_array");
    CHECK_EQ(ftsan_symbolize_data(s, b->so, a + 5 * sizeof(int), &d), 1);
    CHECK_STR(d.name, "global_array");
    CHECK_EQ(d.start, a);
    CHECK_EQ(d.size, 16 * sizeof(int));
    CHECK_EQ(d.line, int_sym(b, "fixture_line_global_array"));
    CHECK_EQ(ftsan_symbolize_data(s, b->so, a + 16 * sizeof(int) - 1, &d), 1);
    CHECK_STR(d.name, "global_array");

    long *(*get_local)(void) = (long *(*)(void))sym(b, "fixture_local_static");
    if (get_local) {
      a = (uint64_t)((uintptr_t)get_local() - b->bias);
      CHECK_EQ(ftsan_symbolize_data(s, b->so, a + sizeof(long), &d), 1);
      CHECK_STR(d.name, "local_static");
      CHECK_EQ(d.start, a);
      CHECK_EQ(d.size, 5 * sizeof(long));
      CHECK_EQ(d.line, int_sym(b, "fixture_line_local_static"));
    }

    /* code is not data */
    CHECK_EQ(ftsan_symbolize_data(s, b->so, b->pcs[0], &d), 0);
    if (check__failed_in_test) printf("  (in build %s)\n", b->tag);
    check__failed_in_test |= before;
  }
  ftsan_symbolizer_free(s);
}

/* Without DWARF the ELF symbol tables still give function and variable names. */
TEST(stripped_fallbacks) {
  fixture_build *b = &g_builds[3];
  if (!b->ok) {
    CHECK(0);
    return;
  }
  char nodebug[PATH_MAX + 32], allstripped[PATH_MAX + 32], cmd[4 * PATH_MAX];
  snprintf(nodebug, sizeof nodebug, "%s/nodebug.so", g_tmpdir);
  snprintf(allstripped, sizeof allstripped, "%s/allstripped.so", g_tmpdir);
  if (snprintf(cmd, sizeof cmd,
               "objcopy --strip-debug '%s' '%s' && strip --strip-all -o '%s' '%s'", b->so,
               nodebug, allstripped, b->so) >= (int)sizeof cmd) {
    CHECK(0);
    return;
  }
  if (!run_cmd(cmd)) {
    printf("  (binutils objcopy/strip missing: stripped fallbacks not tested)\n");
    return;
  }
  ftsan_symbolizer *s = ftsan_symbolizer_new();
  ftsan_frame f[4];
  ftsan_data_sym d;
  /* .symtab: local and global names, sizes */
  CHECK_EQ(ftsan_symbolize_code(s, nodebug, b->pcs[0], f, 4), 1);
  CHECK_STR(f[0].function, "fixture_plain");
  CHECK_STR(f[0].file, "");
  CHECK_EQ(f[0].line, 0);
  CHECK_EQ(ftsan_symbolize_code(s, nodebug, b->pcs[1], f, 4), 1);
  CHECK_STR(f[0].function, "fixture_outer");
  uint64_t a = data_vaddr(b, "fixture_addr_counter_static");
  CHECK_EQ(ftsan_symbolize_data(s, nodebug, a, &d), 1);
  CHECK_STR(d.name, "counter_static");
  CHECK_EQ(d.size, sizeof(int));
  CHECK_STR(d.file, "");
  /* .dynsym only: exported names */
  CHECK_EQ(ftsan_symbolize_code(s, allstripped, b->pcs[0], f, 4), 1);
  CHECK_STR(f[0].function, "fixture_plain");
  a = vaddr_of(b, "global_array");
  CHECK_EQ(ftsan_symbolize_data(s, allstripped, a + 8, &d), 1);
  CHECK_STR(d.name, "global_array");
  CHECK_EQ(d.start, a);
  /* a static has no dynamic symbol */
  CHECK_EQ(ftsan_symbolize_data(s, allstripped, data_vaddr(b, "fixture_addr_counter_static"), &d),
           0);
  ftsan_symbolizer_free(s);
}

TEST(build_id) {
  fixture_build *b = &g_builds[0];
  if (!b->ok) return;
  ftsan_symbolizer *s = ftsan_symbolizer_new();
  char id[129];
  int n = ftsan_symbolizer_build_id(s, b->so, id, sizeof id);
  /* the toolchain may or may not pass --build-id by default; when present it is hex */
  CHECK(n == 0 || (n >= 16 && strspn(id, "0123456789abcdef") == (size_t)n));
  CHECK_EQ(ftsan_symbolizer_build_id(s, "/nonexistent/ftsan/none.so", id, sizeof id), 0);
  ftsan_symbolizer_free(s);
}

static int write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  int ok = fwrite(data, 1, len, f) == len;
  return fclose(f) == 0 && ok;
}

static unsigned char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = n > 0 ? malloc((size_t)n) : NULL;
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *len = buf ? (size_t)n : 0;
  return buf;
}

TEST(bad_inputs) {
  ftsan_symbolizer *s = ftsan_symbolizer_new();
  ftsan_frame f[4];
  ftsan_data_sym d;
  CHECK_EQ(ftsan_symbolize_code(s, "/nonexistent/ftsan/none.so", 0x1000, f, 4), 0);
  CHECK_EQ(ftsan_symbolize_data(s, "/nonexistent/ftsan/none.so", 0x1000, &d), 0);
  CHECK_EQ(ftsan_symbolize_code(s, g_src_c, 0x10, f, 4), 0); /* a C source, not ELF */
  CHECK_EQ(ftsan_symbolize_data(s, g_src_c, 0x10, &d), 0);
  CHECK_EQ(ftsan_symbolize_code(s, g_tmpdir, 0x10, f, 4), 0); /* a directory */
  char empty[PATH_MAX + 32];
  snprintf(empty, sizeof empty, "%s/empty.so", g_tmpdir);
  CHECK(write_file(empty, "", 0));
  CHECK_EQ(ftsan_symbolize_code(s, empty, 0x10, f, 4), 0);
  CHECK_EQ(ftsan_symbolize_code(NULL, empty, 0x10, f, 4), 0);
  CHECK_EQ(ftsan_symbolize_code(s, NULL, 0x10, f, 4), 0);
  CHECK_EQ(ftsan_symbolize_code(s, empty, 0x10, f, 0), 0);
  /* an address far outside the good module */
  if (g_builds[0].ok) CHECK_EQ(ftsan_symbolize_code(s, g_builds[0].so, 0x7fffffff0ull, f, 4), 0);
  ftsan_symbolizer_free(s);
}

/* Truncated and byte-corrupted copies of real fixtures: any result is fine, crashing is not. */
TEST(corrupt_inputs_do_not_crash) {
  for (int bi = 2; bi < 4; bi++) {
    fixture_build *b = &g_builds[bi];
    if (!b->ok) continue;
    size_t len = 0;
    unsigned char *orig = read_all(b->so, &len);
    CHECK(orig != NULL);
    if (!orig) continue;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/corrupt.so", g_tmpdir);
    size_t cuts[] = {16, 64, 200, len / 4, len / 2, len - 4096 < len ? len - 4096 : 1, len - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
      CHECK(write_file(path, orig, cuts[c]));
      ftsan_symbolizer *s = ftsan_symbolizer_new();
      ftsan_frame f[8];
      ftsan_data_sym d;
      for (int k = 0; k < 3; k++) CHECK(ftsan_symbolize_code(s, path, b->pcs[k], f, 8) >= 0);
      CHECK(ftsan_symbolize_data(s, path, vaddr_of(b, "global_array"), &d) >= 0);
      ftsan_symbolizer_free(s);
    }
    /* scribble over the DWARF sections (found with libelf) at pseudo-random spots */
    uint64_t spans[16][2];
    int nspans = 0;
    int fd = open(b->so, O_RDONLY);
    Elf *e = fd >= 0 ? elf_begin(fd, ELF_C_READ, NULL) : NULL;
    size_t shstrndx = 0;
    if (e && elf_getshdrstrndx(e, &shstrndx) == 0) {
      Elf_Scn *scn = NULL;
      while ((scn = elf_nextscn(e, scn)) != NULL && nspans < 16) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh)) continue;
        const char *nm = elf_strptr(e, shstrndx, sh.sh_name);
        if (nm && strncmp(nm, ".debug_", 7) == 0 && sh.sh_size > 8 &&
            sh.sh_offset + sh.sh_size <= len) {
          spans[nspans][0] = sh.sh_offset;
          spans[nspans][1] = sh.sh_size;
          nspans++;
        }
      }
    }
    if (e) elf_end(e);
    if (fd >= 0) close(fd);
    CHECK(nspans >= 4);
    unsigned char *buf = malloc(len);
    uint64_t rng = 0x243F6A8885A308D3ull + (uint64_t)bi;
    for (int iter = 0; iter < 150 && buf && nspans; iter++) {
      memcpy(buf, orig, len);
      int hits = 1 + iter % 8;
      for (int h = 0; h < hits; h++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int sp = (int)((rng >> 33) % (uint64_t)nspans);
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t off = spans[sp][0] + (rng >> 20) % spans[sp][1];
        buf[off] = (unsigned char)(rng >> 8);
      }
      CHECK(write_file(path, buf, len));
      ftsan_symbolizer *s = ftsan_symbolizer_new();
      ftsan_frame f[8];
      ftsan_data_sym d;
      for (int k = 0; k < 3; k++) CHECK(ftsan_symbolize_code(s, path, b->pcs[k], f, 8) >= 0);
      CHECK(ftsan_symbolize_data(s, path, vaddr_of(b, "global_array"), &d) >= 0);
      ftsan_symbolizer_free(s);
    }
    free(buf);
    free(orig);
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep progress visible if a crash cuts the run short */
  if (argc < 2) {
    fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
    return 2;
  }
  if (!realpath(argv[1], g_fixdir)) {
    fprintf(stderr, "fixture dir %s: not found\n", argv[1]);
    return 2;
  }
  g_cc = getenv("FTSAN_TEST_CC");
  if (!g_cc || !g_cc[0]) g_cc = "clang-19";
  snprintf(g_src_c, sizeof g_src_c, "%s/sym_fixture.c", g_fixdir);
  snprintf(g_src_h, sizeof g_src_h, "%s/sym_fixture.h", g_fixdir);
  const char *tmp = getenv("TMPDIR");
  snprintf(g_tmpdir, sizeof g_tmpdir, "%s/ftsan_symtest.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  if (strchr(g_fixdir, '\'') || !mkdtemp(g_tmpdir) || strchr(g_tmpdir, '\'')) {
    fprintf(stderr, "cannot set up a scratch directory\n");
    return 2;
  }
  elf_version(EV_CURRENT);
  int built = 0;
  for (int i = 0; i < NBUILDS; i++) {
    g_builds[i].ok = prepare_build(&g_builds[i]);
    if (!g_builds[i].ok) printf("  fixture build %s failed\n", g_builds[i].tag);
    built += g_builds[i].ok;
  }
  check__failed_in_test = built != NBUILDS;
  if (check__failed_in_test) check__failed++, printf("FAIL fixture_builds\n");
  else check__passed++, printf("ok   fixture_builds\n");

  RUN(plain_call_site);
  RUN(inline_chain);
  RUN(whole_function_and_cache);
  RUN(data_symbols);
  RUN(stripped_fallbacks);
  RUN(build_id);
  RUN(bad_inputs);
  RUN(corrupt_inputs_do_not_crash);

  for (int i = 0; i < NBUILDS; i++)
    if (g_builds[i].handle) dlclose(g_builds[i].handle);
  char cmd[PATH_MAX + 32];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
  if (system(cmd) != 0) printf("  (could not remove %s)\n", g_tmpdir);
  return CHECK_DONE();
}
