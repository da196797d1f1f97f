/* rt_modules.c: the module map: every object loaded into the process, with its load bias,
 * address range and GNU build-id, written to the trace so the CLI can symbolize raw PCs
 * (possibly on another machine). */
#include "rt_internal.h"

#define _GNU_SOURCE 1
#include <elf.h>
#include <link.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#define MAX_MODULES 1024

struct module { uint64_t bias, start, end; uint32_t flags, written; };

static ftsan_spin modules_lock;
static struct module modules[MAX_MODULES]; /* guarded by modules_lock */
static int nmodules;                       /* guarded by modules_lock */

static struct module *find_locked(uint64_t start) {
  for (int i = 0; i < nmodules; i++)
    if (modules[i].start == start) return &modules[i];
  return NULL;
}

static void write_module(const struct dl_phdr_info *info, const struct module *m, int is_main) {
  const uint8_t *build_id = NULL;
  uint32_t build_id_len = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE) continue;
    const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
    const char *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
      const char *name = p + sizeof *n;
      const char *desc = name + ((n->n_namesz + 3) & ~3u);
      if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
        build_id = (const uint8_t *)desc;
        build_id_len = n->n_descsz;
        break;
      }
      p = desc + ((n->n_descsz + 3) & ~3u);
    }
    if (build_id) break;
  }
  char exe[PATH_MAX];
  const char *path = info->dlpi_name;
  if (is_main || !path || !*path) {
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    path = exe;
  }
  size_t path_len = strlen(path) + 1;
  uint32_t size = (uint32_t)((sizeof(struct ftsan_rec_module) + build_id_len + path_len + 7) & ~7u);
  char buf[sizeof(struct ftsan_rec_module) + 64 + PATH_MAX + 8];
  if (size > sizeof buf) return;
  memset(buf, 0, size);
  struct ftsan_rec_module *r = (struct ftsan_rec_module *)buf;
  r->h.kind = FTSAN_REC_MODULE;
  r->h.size = size;
  r->bias = m->bias;
  r->start = m->start;
  r->end = m->end;
  r->build_id_len = build_id_len;
  r->flags = m->flags | (is_main ? FTSAN_MOD_MAIN : 0);
  memcpy(buf + sizeof *r, build_id, build_id_len);
  memcpy(buf + sizeof *r + build_id_len, path, path_len);
  ftsan__trace_write(buf, size);
}

/* Instrumented modules announce themselves from their constructor (__ftsan_init) with an
 * address inside them; a module's flags are derived from these when it is (re)written. */
static uint64_t instrumented_pcs[MAX_MODULES]; /* guarded by modules_lock */
static int ninstrumented;                      /* guarded by modules_lock */

static void publish_instrumented_locked(void);

static int scan_one(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  int *index = data;
  int is_main = (*index)++ == 0;
  uint64_t lo = UINT64_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uint64_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
    if (s < lo) lo = s;
    if (e > hi) hi = e;
  }
  if (hi == 0) return 0;
  uint32_t flags = 0;
  for (int j = 0; j < ninstrumented; j++)
    if (instrumented_pcs[j] >= lo && instrumented_pcs[j] < hi) flags |= FTSAN_MOD_INSTRUMENTED;
  struct module *m = find_locked(lo);
  if (m && m->written && m->flags == flags) return 0;
  if (!m) {
    if (nmodules == MAX_MODULES) return 0;
    m = &modules[nmodules++];
    m->bias = info->dlpi_addr;
    m->start = lo;
    m->end = hi;
  }
  /* A module written again (now known to be instrumented) replaces its earlier record. */
  m->flags = flags;
  write_module(info, m, is_main);
  m->written = 1;
  return 0;
}

void ftsan__modules_scan(void) {
  ftsan__spin_lock(&modules_lock);
  int index = 0;
  dl_iterate_phdr(scan_one, &index);
  ftsan__spin_unlock(&modules_lock);
}

void ftsan__modules_mark_instrumented(const void *addr) {
  ftsan__spin_lock(&modules_lock);
  if (ninstrumented < MAX_MODULES) instrumented_pcs[ninstrumented++] = (uint64_t)(uintptr_t)addr;
  int index = 0;
  dl_iterate_phdr(scan_one, &index);
  publish_instrumented_locked();
  ftsan__spin_unlock(&modules_lock);
}

/* In a forked child: the new trace file needs the whole map again. */
void ftsan__modules_rewrite_all(void) {
  modules_lock.locked = 0;
  for (int i = 0; i < nmodules; i++) modules[i].written = 0;
  ftsan__modules_scan();
}

/* Instrumented modules' address ranges, for the hot question "was this call made from
 * instrumented code?": published with a release store of the count, read without a lock. */
static uint64_t instr_ranges[64][2]; /* written under modules_lock */
static uint32_t ninstr_ranges;       /* atomic */

static void publish_instrumented_locked(void) {
  uint32_t n = 0;
  for (int i = 0; i < nmodules && n < 64; i++)
    if (modules[i].flags & FTSAN_MOD_INSTRUMENTED) {
      instr_ranges[n][0] = modules[i].start;
      instr_ranges[n][1] = modules[i].end;
      n++;
    }
  __atomic_store_n(&ninstr_ranges, n, __ATOMIC_RELEASE);
}

int ftsan__modules_is_instrumented(uint64_t pc) {
  uint32_t n = __atomic_load_n(&ninstr_ranges, __ATOMIC_ACQUIRE);
  for (uint32_t i = 0; i < n; i++)
    if (pc >= instr_ranges[i][0] && pc < instr_ranges[i][1]) return 1;
  return 0;
}
