/* elf_lookup.c: finds functions by name by reading the .symtab/.dynsym of every loaded object from its file on disk. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syscall, dl_iterate_phdr, MAP_ANONYMOUS, RTLD_NEXT under -std=c11 */
#endif
#include "elf_lookup.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* python3.13t after importing ~20 stdlib extension modules (ssl, sqlite3, ctypes, lzma...) maps
 * 36 shared objects (measured); 512 leaves room. */
#define FTSAN__ELF_MAX_OBJECTS 512

/* One symbol table (.symtab or .dynsym) inside a mapped file. */
typedef struct ftsan__elf_table {
  const ElfW(Sym) *syms;
  size_t count;
  const char *strs;
  size_t strsz;
  const ElfW(Half) *versym; /* .gnu.version entries for .dynsym, NULL otherwise */
} ftsan__elf_table;

typedef struct ftsan__elf_image {
  const char *path;   /* file to read: dlpi_name, or /proc/self/exe for the main program */
  const char *dlname; /* dlpi_name, for object-name matching */
  uintptr_t bias;     /* dlpi_addr */
  const ElfW(Phdr) *phdr;
  size_t phnum;
  int state; /* 0 not mapped yet, 1 mapped, -1 unusable (no file, not ELF, stale) */
  void *map;
  size_t len;
  ftsan__elf_table tab[2]; /* [0] .symtab, [1] .dynsym */
} ftsan__elf_image;

static ftsan__elf_image ftsan__elf_images[FTSAN__ELF_MAX_OBJECTS];
static size_t ftsan__elf_nimages;
static int ftsan__elf_depth; /* begin/end nesting; guarded by ftsan__elf_lock */
static atomic_flag ftsan__elf_lock = ATOMIC_FLAG_INIT;

/* A spin lock rather than a pthread mutex: the runtime may intercept pthread_mutex_* and this
 * must work from a constructor before the runtime's own state exists. Contention is nil
 * (lookups happen at start-up), so spinning costs nothing in practice. */
static void ftsan__elf_lock_acquire(void) {
  while (atomic_flag_test_and_set_explicit(&ftsan__elf_lock, memory_order_acquire)) {
  }
}

static void ftsan__elf_lock_release(void) {
  atomic_flag_clear_explicit(&ftsan__elf_lock, memory_order_release);
}

static int ftsan__elf_collect_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  (void)data;
  if (ftsan__elf_nimages >= FTSAN__ELF_MAX_OBJECTS) return 1;
  ftsan__elf_image *img = &ftsan__elf_images[ftsan__elf_nimages];
  memset(img, 0, sizeof *img);
  const char *name = info->dlpi_name ? info->dlpi_name : "";
  /* The first entry is the main program, whose dlpi_name is "". */
  img->dlname = name;
  img->path = (ftsan__elf_nimages == 0 || name[0] == '\0') ? "/proc/self/exe" : name;
  img->bias = (uintptr_t)info->dlpi_addr;
  img->phdr = info->dlpi_phdr;
  img->phnum = info->dlpi_phnum;
  /* Objects without a file (the vDSO is named "linux-vdso.so.1") simply fail to open later. */
  ftsan__elf_nimages++;
  return 0;
}

static void ftsan__elf_collect(void) {
  ftsan__elf_nimages = 0;
  dl_iterate_phdr(ftsan__elf_collect_cb, NULL);
}

static void ftsan__elf_unmap_all(void) {
  for (size_t i = 0; i < ftsan__elf_nimages; i++) {
    ftsan__elf_image *img = &ftsan__elf_images[i];
    if (img->state == 1) syscall(SYS_munmap, img->map, img->len);
    img->state = 0;
    img->map = NULL;
  }
}

/* Bounds-checked "does [off, off+len) lie inside a file of file_len bytes". */
static int ftsan__elf_in_file(uint64_t off, uint64_t len, size_t file_len) {
  return off <= file_len && len <= file_len - off;
}

static void ftsan__elf_parse_table(ftsan__elf_image *img, const ElfW(Shdr) *sh, size_t shnum,
                                   size_t idx, ftsan__elf_table *tab) {
  const ElfW(Shdr) *s = &sh[idx];
  const unsigned char *base = img->map;
  if (s->sh_entsize != sizeof(ElfW(Sym)) || !ftsan__elf_in_file(s->sh_offset, s->sh_size, img->len))
    return;
  if (s->sh_offset % _Alignof(ElfW(Sym)) != 0 || s->sh_link >= shnum) return;
  const ElfW(Shdr) *st = &sh[s->sh_link];
  if (st->sh_type != SHT_STRTAB || !ftsan__elf_in_file(st->sh_offset, st->sh_size, img->len)) return;
  tab->syms = (const ElfW(Sym) *)(base + s->sh_offset);
  tab->count = s->sh_size / sizeof(ElfW(Sym));
  tab->strs = (const char *)(base + st->sh_offset);
  tab->strsz = st->sh_size;
  /* .gnu.version tells which of several same-named .dynsym entries is the default (@@). */
  for (size_t i = 0; i < shnum; i++) {
    const ElfW(Shdr) *v = &sh[i];
    if (v->sh_type == SHT_GNU_versym && v->sh_link == idx &&
        ftsan__elf_in_file(v->sh_offset, v->sh_size, img->len) &&
        v->sh_size >= tab->count * sizeof(ElfW(Half)) && v->sh_offset % 2 == 0) {
      tab->versym = (const ElfW(Half) *)(base + v->sh_offset);
      break;
    }
  }
}

/* Maps the object's file and locates its symbol tables; sets state to 1 or -1. */
static void ftsan__elf_open(ftsan__elf_image *img) {
  if (img->state != 0) return;
  img->state = -1;
  long fd = syscall(SYS_openat, AT_FDCWD, img->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  /* lseek(SEEK_END) rather than fstat: no kernel-vs-libc struct stat layout to worry about. */
  long size = syscall(SYS_lseek, fd, 0L, SEEK_END);
  if (size < (long)sizeof(ElfW(Ehdr))) {
    syscall(SYS_close, fd);
    return;
  }
  long m = syscall(SYS_mmap, NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0L);
  syscall(SYS_close, fd);
  if (m == -1) return;
  img->map = (void *)m;
  img->len = (size_t)size;
  img->state = 1; /* from here on unmap_all releases it, even if parsing gives up */

  const ElfW(Ehdr) *eh = img->map;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_shentsize != sizeof(ElfW(Shdr)) || eh->e_phentsize != sizeof(ElfW(Phdr)) ||
      !ftsan__elf_in_file(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(ElfW(Shdr)), img->len) ||
      !ftsan__elf_in_file(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(ElfW(Phdr)), img->len) ||
      eh->e_shoff % _Alignof(ElfW(Shdr)) != 0)
    goto unusable;
  /* The file must be the one that is loaded: its program headers must equal the loaded ones.
   * This catches a binary replaced on disk while running, and "ld.so ./prog" where
   * /proc/self/exe names ld.so rather than the program. */
  if (eh->e_phnum != img->phnum ||
      memcmp((const unsigned char *)img->map + eh->e_phoff, img->phdr,
             img->phnum * sizeof(ElfW(Phdr))) != 0)
    goto unusable;
  const ElfW(Shdr) *sh = (const ElfW(Shdr) *)((const unsigned char *)img->map + eh->e_shoff);
  for (size_t i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type == SHT_SYMTAB && !img->tab[0].syms)
      ftsan__elf_parse_table(img, sh, eh->e_shnum, i, &img->tab[0]);
    else if (sh[i].sh_type == SHT_DYNSYM && !img->tab[1].syms)
      ftsan__elf_parse_table(img, sh, eh->e_shnum, i, &img->tab[1]);
  }
  return;
unusable:
  syscall(SYS_munmap, img->map, img->len);
  img->map = NULL;
  img->state = -1;
}

static int ftsan__elf_object_matches(const char *object, size_t idx, const ftsan__elf_image *img) {
  if (!object) return 1;
  if (object[0] == '\0') return idx == 0;
  const char *base = strrchr(img->dlname, '/');
  base = base ? base + 1 : img->dlname;
  return strncmp(base, object, strlen(object)) == 0;
}

static int ftsan__elf_name_eq(const ftsan__elf_table *t, size_t off, const char *name, size_t nlen) {
  if (off >= t->strsz || t->strsz - off <= nlen) return 0;
  return memcmp(t->strs + off, name, nlen + 1) == 0;
}

static void ftsan__elf_fill(ftsan_elf_sym *out, uintptr_t addr, size_t size, int local,
                            int ambiguous, const ftsan__elf_image *img) {
  out->addr = (void *)addr;
  out->size = size;
  out->is_local = local;
  out->ambiguous = ambiguous;
  out->object = img->path;
}

static int ftsan__elf_search(const char *object, const char *name, ftsan_elf_sym *out) {
  size_t nlen = strlen(name);
  int any_object = 0, saw_ifunc = 0, local_found = 0, local_ambiguous = 0;
  uintptr_t local_addr = 0;
  size_t local_size = 0;
  const ftsan__elf_image *local_img = NULL;

  for (size_t i = 0; i < ftsan__elf_nimages; i++) {
    ftsan__elf_image *img = &ftsan__elf_images[i];
    if (!ftsan__elf_object_matches(object, i, img)) continue;
    any_object = 1;
    ftsan__elf_open(img);
    if (img->state != 1) continue;
    int g_found = 0, g_hidden = 0, g_ifunc = 0;
    uintptr_t g_addr = 0;
    size_t g_size = 0;
    for (int t = 0; t < 2; t++) {
      const ftsan__elf_table *tab = &img->tab[t];
      for (size_t j = 1; j < tab->count; j++) {
        const ElfW(Sym) *s = &tab->syms[j];
        int type = ELF64_ST_TYPE(s->st_info), bind = ELF64_ST_BIND(s->st_info);
        if (s->st_shndx == SHN_UNDEF || (type != STT_FUNC && type != STT_GNU_IFUNC)) continue;
        if (!ftsan__elf_name_eq(tab, s->st_name, name, nlen)) continue;
        int ifunc = type == STT_GNU_IFUNC;
        saw_ifunc |= ifunc;
        uintptr_t addr = img->bias + (uintptr_t)s->st_value;
        if (bind == STB_GLOBAL || bind == STB_WEAK) {
          /* 0x8000 in .gnu.version marks a non-default version (foo@VER, not foo@@VER). */
          int hidden = tab->versym ? (tab->versym[j] & 0x8000) != 0 : 0;
          /* IFUNCs compete too: glibc's memcpy@@GLIBC_2.14 is an IFUNC while the old
           * memcpy@GLIBC_2.2.5 is a plain FUNC that calls would not reach. */
          if (!g_found || (g_hidden && !hidden)) {
            g_found = 1;
            g_hidden = hidden;
            g_ifunc = ifunc;
            g_addr = addr;
            g_size = (size_t)s->st_size;
          }
        } else if (bind == STB_LOCAL && !ifunc) {
          if (!local_found) {
            local_found = 1;
            local_addr = addr;
            local_size = (size_t)s->st_size;
            local_img = img;
          } else if (addr != local_addr) {
            local_ambiguous = 1;
          }
        }
      }
    }
    if (g_found && g_ifunc) return FTSAN_ELF_EIFUNC;
    if (g_found) {
      ftsan__elf_fill(out, g_addr, g_size, 0, 0, img);
      return FTSAN_ELF_OK;
    }
  }
  if (local_found) {
    ftsan__elf_fill(out, local_addr, local_size, 1, local_ambiguous, local_img);
    return FTSAN_ELF_OK;
  }
  if (object && !any_object) return FTSAN_ELF_ENOOBJECT;
  return saw_ifunc ? FTSAN_ELF_EIFUNC : FTSAN_ELF_ENOTFOUND;
}

int ftsan_elf_lookup_in(const char *object, const char *name, ftsan_elf_sym *out) {
  if (!name || !name[0] || !out) return FTSAN_ELF_EINVAL;
  ftsan__elf_lock_acquire();
  int batch = ftsan__elf_depth > 0;
  if (!batch) ftsan__elf_collect();
  int rc = ftsan__elf_search(object, name, out);
  if (!batch) ftsan__elf_unmap_all();
  ftsan__elf_lock_release();
  return rc;
}

int ftsan_elf_lookup(const char *name, ftsan_elf_sym *out) {
  return ftsan_elf_lookup_in(NULL, name, out);
}

void ftsan_elf_lookup_begin(void) {
  ftsan__elf_lock_acquire();
  if (ftsan__elf_depth++ == 0) ftsan__elf_collect();
  ftsan__elf_lock_release();
}

void ftsan_elf_lookup_end(void) {
  ftsan__elf_lock_acquire();
  if (ftsan__elf_depth > 0 && --ftsan__elf_depth == 0) ftsan__elf_unmap_all();
  ftsan__elf_lock_release();
}

const char *ftsan_elf_strerror(int code) {
  switch (code) {
#define FTSAN__ELF_STR(name, value, text) \
  case value:                             \
    return text;
    FTSAN_ELF_ERRORS(FTSAN__ELF_STR)
#undef FTSAN__ELF_STR
  }
  return "unknown ftsan_elf error";
}
