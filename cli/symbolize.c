/* symbolize.c: the CLI's offline symbolizer: DWARF (libdwarf) line tables and inline chains, ELF (libelf) symbol fallbacks, per-module and per-address caches. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup */
#endif

#include "symbolize.h"

#include <fcntl.h>
#include <gelf.h>
#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bounds that keep corrupt DWARF (cycles through references, absurd nesting) from looping or
 * exhausting the stack; real code never comes near them. */
#define SYM_MAX_CHAIN 64   /* inline frames kept per address */
#define SYM_MAX_NEST 256   /* DIE tree depth we descend */
#define SYM_MAX_REFS 16    /* abstract_origin/specification/type hops */
#define SYM_MAX_CUS (1u << 22)

/* ---------- interval index ------------------------------------------------------------- */

/* Sorted half-open intervals plus a running max of their ends, so a point query walks back
 * only over intervals that could still contain the point, even when they overlap (discarded
 * sections at address 0, nested ranges, symbol aliases). */
typedef struct sym_ivl {
  uint64_t lo, hi;
  uint32_t idx;  /* payload: index into the owner's array */
  uint32_t prio; /* lower wins among equally small matches */
} sym_ivl;

typedef struct sym_ivl_index {
  sym_ivl *v;
  uint64_t *maxhi;
  size_t n, cap;
} sym_ivl_index;

static int ivl_add(sym_ivl_index *ix, uint64_t lo, uint64_t hi, uint32_t idx, uint32_t prio) {
  if (hi <= lo) return 0;
  if (ix->n == ix->cap) {
    size_t ncap = ix->cap ? ix->cap * 2 : 16;
    sym_ivl *nv = realloc(ix->v, ncap * sizeof *nv);
    if (!nv) return -1;
    ix->v = nv;
    ix->cap = ncap;
  }
  ix->v[ix->n].lo = lo;
  ix->v[ix->n].hi = hi;
  ix->v[ix->n].idx = idx;
  ix->v[ix->n].prio = prio;
  ix->n++;
  return 0;
}

static int ivl_cmp(const void *a, const void *b) {
  const sym_ivl *x = a, *y = b;
  if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
  if (x->prio != y->prio) return x->prio < y->prio ? -1 : 1;
  if (x->idx != y->idx) return x->idx < y->idx ? -1 : 1;
  return 0;
}

static int ivl_finish(sym_ivl_index *ix) {
  free(ix->maxhi);
  ix->maxhi = NULL;
  if (!ix->n) return 0;
  qsort(ix->v, ix->n, sizeof *ix->v, ivl_cmp);
  ix->maxhi = malloc(ix->n * sizeof *ix->maxhi);
  if (!ix->maxhi) return -1;
  uint64_t m = 0;
  for (size_t i = 0; i < ix->n; i++) {
    if (ix->v[i].hi > m) m = ix->v[i].hi;
    ix->maxhi[i] = m;
  }
  return 0;
}

static void ivl_free(sym_ivl_index *ix) {
  free(ix->v);
  free(ix->maxhi);
  memset(ix, 0, sizeof *ix);
}

static int ivl_better(const sym_ivl *a, const sym_ivl *b) {
  uint64_t sa = a->hi - a->lo, sb = b->hi - b->lo;
  if (sa != sb) return sa < sb;
  if (a->prio != b->prio) return a->prio < b->prio;
  return a->idx < b->idx;
}

/* Up to max intervals containing addr, best (smallest, then lowest prio) first. */
static int ivl_find_all(const sym_ivl_index *ix, uint64_t addr, const sym_ivl **out, int max) {
  if (!ix->n || !ix->maxhi || max <= 0) return 0;
  size_t lo = 0, hi = ix->n; /* first index with v.lo > addr */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ix->v[mid].lo <= addr) lo = mid + 1;
    else hi = mid;
  }
  int n = 0;
  for (size_t i = lo; i-- > 0;) {
    if (ix->maxhi[i] <= addr) break;
    const sym_ivl *c = &ix->v[i];
    if (c->hi <= addr) continue;
    /* insertion sort into out, dropping the worst when full */
    int pos = n;
    while (pos > 0 && ivl_better(c, out[pos - 1])) pos--;
    if (pos >= max) continue;
    int last = n < max ? n : max - 1;
    for (int k = last; k > pos; k--) out[k] = out[k - 1];
    out[pos] = c;
    if (n < max) n++;
  }
  return n;
}

static const sym_ivl *ivl_find(const sym_ivl_index *ix, uint64_t addr) {
  const sym_ivl *best = NULL;
  return ivl_find_all(ix, addr, &best, 1) ? best : NULL;
}

/* ---------- module state --------------------------------------------------------------- */

typedef struct sym_row {
  uint64_t addr;
  uint32_t line;
  uint32_t column;
  uint32_t file; /* raw file register value */
} sym_row;

typedef struct sym_cu {
  Dwarf_Off die_off;
  Dwarf_Half version;
  uint64_t base;        /* DW_AT_low_pc of the CU DIE: base for DWARF 2-4 range lists */
  int loaded;           /* 0 not yet, 1 loaded (possibly partially), -1 failed */
  sym_row *rows;        /* all rows, end_sequence rows dropped; sequences index into it */
  size_t nrows;
  sym_ivl_index seqs;   /* [first addr, end addr) -> index into seq */
  struct sym_seq { size_t first, end; } *seq; /* row span of each sequence */
  size_t nseq;
  char **files;         /* full paths, indexed by file number - file_base */
  size_t nfiles;
  uint64_t file_base;   /* number of files[0]: 1 in DWARF 2-4 (0 = no file), 0 in DWARF 5 */
  sym_ivl_index subs;   /* subprogram ranges -> index into sub_offs */
  Dwarf_Off *sub_offs;
  size_t nsubs;
} sym_cu;

typedef struct sym_var {
  uint64_t start, size;
  char *name;
  const char *file; /* owned by the CU's files array */
  int line;
} sym_var;

typedef struct sym_elfsym {
  char *name;
  uint64_t start, size;
} sym_elfsym;

typedef struct sym_sec {
  unsigned char *p;
  size_t n;
} sym_sec;

typedef struct sym_module {
  char *path;
  int ok;            /* the file is readable ELF */
  Dwarf_Debug dbg;   /* NULL when the file has no usable DWARF */
  sym_cu *cus;
  size_t ncus;
  sym_ivl_index cu_ix;
  sym_elfsym *syms;  /* FUNC and OBJECT symbols, names owned */
  size_t nsyms, capsyms;
  sym_ivl_index func_ix, obj_ix;
  int vars_built;
  sym_var *vars;
  size_t nvars, capvars;
  sym_ivl_index var_ix;
  /* Copies of the sections decode_lines reads itself: .debug_line, and the string sections
   * its DWARF 5 headers point into. */
  sym_sec line_sec, line_str_sec, str_sec;
  char build_id[129];
} sym_module;

typedef struct sym_cache_ent {
  sym_module *m; /* NULL: empty slot */
  uint64_t addr;
  int n;
  ftsan_frame *frames;
} sym_cache_ent;

struct ftsan_symbolizer {
  sym_module **mods;
  size_t nmods, capmods;
  sym_module *last;
  sym_cache_ent *cache;
  size_t cache_cap, cache_n;
};

/* ---------- small helpers -------------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src) {
  if (!cap) return;
  if (!src) src = "";
  size_t n = strlen(src);
  if (n >= cap) n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = 0;
}

/* libdwarf allocates an error object for every failed call when given an error pointer, and
 * with no handler and no pointer it aborts; so every call site passes one and releases it
 * here. */
static void drop_err(Dwarf_Debug dbg, Dwarf_Error *err) {
  if (*err) {
    dwarf_dealloc_error(dbg, *err);
    *err = NULL;
  }
}

static int die_tag(Dwarf_Debug dbg, Dwarf_Die die) {
  Dwarf_Half tag = 0;
  Dwarf_Error err = NULL;
  if (dwarf_tag(die, &tag, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    return 0;
  }
  return tag;
}

static Dwarf_Die die_at(Dwarf_Debug dbg, Dwarf_Off off) {
  Dwarf_Die d = NULL;
  Dwarf_Error err = NULL;
  if (dwarf_offdie_b(dbg, off, 1, &d, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    return NULL;
  }
  return d;
}

static Dwarf_Off die_offset(Dwarf_Debug dbg, Dwarf_Die die) {
  Dwarf_Off off = 0;
  Dwarf_Error err = NULL;
  if (dwarf_dieoffset(die, &off, &err) != DW_DLV_OK) drop_err(dbg, &err);
  return off;
}

/* Child and sibling steps that insist on moving forward in .debug_info: a corrupt DW_AT_sibling
 * can point backwards and turn a sibling walk into an endless loop. */
static Dwarf_Die first_child(Dwarf_Debug dbg, Dwarf_Die parent) {
  Dwarf_Die c = NULL;
  Dwarf_Error err = NULL;
  if (dwarf_child(parent, &c, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    return NULL;
  }
  if (die_offset(dbg, c) <= die_offset(dbg, parent)) {
    dwarf_dealloc_die(c);
    return NULL;
  }
  return c;
}

/* Returns the next sibling and releases die. */
static Dwarf_Die next_sibling(Dwarf_Debug dbg, Dwarf_Die die) {
  Dwarf_Die n = NULL;
  Dwarf_Error err = NULL;
  int res = dwarf_siblingof_b(dbg, die, 1, &n, &err);
  if (res != DW_DLV_OK) {
    drop_err(dbg, &err);
    n = NULL;
  } else if (die_offset(dbg, n) <= die_offset(dbg, die)) {
    dwarf_dealloc_die(n);
    n = NULL;
  }
  dwarf_dealloc_die(die);
  return n;
}

static int die_udata(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at, uint64_t *out) {
  Dwarf_Attribute a = NULL;
  Dwarf_Error err = NULL;
  int res = dwarf_attr(die, at, &a, &err);
  if (res != DW_DLV_OK) {
    drop_err(dbg, &err);
    return 0;
  }
  Dwarf_Unsigned u = 0;
  int ok = 0;
  if (dwarf_formudata(a, &u, &err) == DW_DLV_OK) {
    ok = 1;
  } else {
    drop_err(dbg, &err);
    Dwarf_Signed s = 0;
    if (dwarf_formsdata(a, &s, &err) == DW_DLV_OK && s >= 0) {
      u = (Dwarf_Unsigned)s;
      ok = 1;
    }
    drop_err(dbg, &err);
  }
  dwarf_dealloc_attribute(a);
  if (ok) *out = u;
  return ok;
}

/* Follows a reference attribute (abstract_origin, specification, type) to its DIE offset. */
static int die_ref(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at, Dwarf_Off *out) {
  Dwarf_Attribute a = NULL;
  Dwarf_Error err = NULL;
  if (dwarf_attr(die, at, &a, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    return 0;
  }
  Dwarf_Off off = 0;
  int ok = dwarf_global_formref(a, &off, &err) == DW_DLV_OK;
  drop_err(dbg, &err);
  dwarf_dealloc_attribute(a);
  if (ok) *out = off;
  return ok;
}

/* Name from DW_AT_name, else through DW_AT_abstract_origin / DW_AT_specification, because
 * concrete and inlined instances carry no name of their own. */
static int die_name(Dwarf_Debug dbg, Dwarf_Die die, char *buf, size_t cap, int depth) {
  char *name = NULL;
  Dwarf_Error err = NULL;
  int res = dwarf_diename(die, &name, &err);
  if (res == DW_DLV_OK && name && name[0]) {
    copy_str(buf, cap, name);
    return 1;
  }
  drop_err(dbg, &err);
  if (depth >= SYM_MAX_REFS) return 0;
  static const Dwarf_Half refs[] = {DW_AT_abstract_origin, DW_AT_specification};
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
    Dwarf_Off off;
    if (!die_ref(dbg, die, refs[i], &off)) continue;
    Dwarf_Die d = die_at(dbg, off);
    if (!d) continue;
    int ok = die_name(dbg, d, buf, cap, depth + 1);
    dwarf_dealloc_die(d);
    if (ok) return 1;
  }
  return 0;
}

/* ---------- DIE address ranges ---------------------------------------------------------- */

typedef int (*range_cb)(void *ctx, uint64_t lo, uint64_t hi);

static int ranges_dwarf5(Dwarf_Debug dbg, Dwarf_Attribute a, Dwarf_Half form, range_cb cb,
                         void *ctx) {
  Dwarf_Error err = NULL;
  Dwarf_Unsigned val = 0;
  if (form == DW_FORM_rnglistx) {
    if (dwarf_formudata(a, &val, &err) != DW_DLV_OK) {
      drop_err(dbg, &err);
      return 0;
    }
  } else {
    Dwarf_Off off = 0;
    if (dwarf_global_formref(a, &off, &err) == DW_DLV_OK) {
      val = off;
    } else {
      drop_err(dbg, &err);
      if (dwarf_formudata(a, &val, &err) != DW_DLV_OK) {
        drop_err(dbg, &err);
        return 0;
      }
    }
  }
  Dwarf_Rnglists_Head head = NULL;
  Dwarf_Unsigned count = 0, global = 0;
  if (dwarf_rnglists_get_rle_head(a, form, val, &head, &count, &global, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    return 0;
  }
  int n = 0;
  for (Dwarf_Unsigned i = 0; i < count; i++) {
    unsigned len = 0, code = 0;
    Dwarf_Unsigned raw1 = 0, raw2 = 0, c1 = 0, c2 = 0;
    Dwarf_Bool unavail = 0;
    if (dwarf_get_rnglists_entry_fields_a(head, i, &len, &code, &raw1, &raw2, &unavail, &c1,
                                          &c2, &err) != DW_DLV_OK) {
      drop_err(dbg, &err);
      break;
    }
    if (code == DW_RLE_end_of_list) break;
    if (unavail) continue;
    switch (code) {
    case DW_RLE_startx_endx:
    case DW_RLE_startx_length:
    case DW_RLE_offset_pair:
    case DW_RLE_start_end:
    case DW_RLE_start_length:
      n++;
      if (c2 > c1 && cb(ctx, c1, c2)) {
        dwarf_dealloc_rnglists_head(head);
        return n;
      }
      break;
    default:
      break;
    }
  }
  dwarf_dealloc_rnglists_head(head);
  return n;
}

static int ranges_dwarf4(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Attribute a, uint64_t base,
                         range_cb cb, void *ctx) {
  Dwarf_Error err = NULL;
  Dwarf_Off off = 0;
  if (dwarf_global_formref(a, &off, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    Dwarf_Unsigned u = 0;
    if (dwarf_formudata(a, &u, &err) != DW_DLV_OK) {
      drop_err(dbg, &err);
      return 0;
    }
    off = u;
  }
  Dwarf_Ranges *r = NULL;
  Dwarf_Signed cnt = 0;
  Dwarf_Unsigned bytes = 0;
  Dwarf_Off real = 0;
  if (dwarf_get_ranges_b(dbg, off, die, &real, &r, &cnt, &bytes, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    return 0;
  }
  /* .debug_ranges entries are offsets from the CU base address unless re-based by an
   * address-selection entry; libdwarf hands them back raw. */
  int n = 0;
  for (Dwarf_Signed i = 0; i < cnt; i++) {
    if (r[i].dwr_type == DW_RANGES_END) break;
    if (r[i].dwr_type == DW_RANGES_ADDRESS_SELECTION) {
      base = r[i].dwr_addr2;
      continue;
    }
    uint64_t lo = base + r[i].dwr_addr1, hi = base + r[i].dwr_addr2;
    n++;
    if (hi > lo && cb(ctx, lo, hi)) break;
  }
  dwarf_ranges_dealloc(dbg, r, cnt);
  return n;
}

/* Reports every [lo,hi) of the DIE to cb (which returns nonzero to stop). Returns the number
 * of ranges seen, 0 when the DIE has no code address attributes. */
static int die_ranges(Dwarf_Debug dbg, Dwarf_Die die, int version, uint64_t cu_base, range_cb cb,
                      void *ctx) {
  Dwarf_Error err = NULL;
  Dwarf_Addr lo = 0;
  if (dwarf_lowpc(die, &lo, &err) == DW_DLV_OK) {
    Dwarf_Addr hv = 0;
    Dwarf_Half form = 0;
    enum Dwarf_Form_Class cls = DW_FORM_CLASS_UNKNOWN;
    if (dwarf_highpc_b(die, &hv, &form, &cls, &err) == DW_DLV_OK) {
      uint64_t hi = cls == DW_FORM_CLASS_CONSTANT ? lo + hv : hv;
      if (hi > lo) cb(ctx, lo, hi);
      return 1;
    }
    drop_err(dbg, &err);
  } else {
    drop_err(dbg, &err);
  }
  Dwarf_Attribute a = NULL;
  if (dwarf_attr(die, DW_AT_ranges, &a, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    return 0;
  }
  Dwarf_Half form = 0;
  int n = 0;
  if (dwarf_whatform(a, &form, &err) == DW_DLV_OK) {
    if (version >= 5 || form == DW_FORM_rnglistx)
      n = ranges_dwarf5(dbg, a, form, cb, ctx);
    else
      n = ranges_dwarf4(dbg, die, a, cu_base, cb, ctx);
  } else {
    drop_err(dbg, &err);
  }
  dwarf_dealloc_attribute(a);
  return n;
}

typedef struct contains_ctx {
  uint64_t addr;
  int hit;
} contains_ctx;

static int contains_cb(void *p, uint64_t lo, uint64_t hi) {
  contains_ctx *c = p;
  if (c->addr >= lo && c->addr < hi) c->hit = 1;
  return c->hit;
}

/* 1: DIE covers addr; 0: it has ranges that miss; -1: it has no address attributes. */
static int die_contains(Dwarf_Debug dbg, Dwarf_Die die, const sym_cu *cu, uint64_t addr) {
  contains_ctx c = {addr, 0};
  int n = die_ranges(dbg, die, cu->version, cu->base, contains_cb, &c);
  if (c.hit) return 1;
  return n ? 0 : -1;
}

typedef struct add_ctx {
  sym_ivl_index *ix;
  uint32_t idx;
  int failed;
} add_ctx;

static int add_cb(void *p, uint64_t lo, uint64_t hi) {
  add_ctx *c = p;
  if (ivl_add(c->ix, lo, hi, c->idx, 0)) c->failed = 1;
  return c->failed;
}

/* ---------- ELF side: symbols and build-id ---------------------------------------------- */

static int add_elfsym(sym_module *m, const char *name, uint64_t start, uint64_t size, int func,
                      uint32_t prio) {
  if (m->nsyms == m->capsyms) {
    size_t ncap = m->capsyms ? m->capsyms * 2 : 256;
    sym_elfsym *ns = realloc(m->syms, ncap * sizeof *ns);
    if (!ns) return -1;
    m->syms = ns;
    m->capsyms = ncap;
  }
  char *dup = strdup(name);
  if (!dup) return -1;
  if (ivl_add(func ? &m->func_ix : &m->obj_ix, start, start + size, (uint32_t)m->nsyms, prio)) {
    free(dup);
    return -1;
  }
  m->syms[m->nsyms].name = dup;
  m->syms[m->nsyms].start = start;
  m->syms[m->nsyms].size = size;
  m->nsyms++;
  return 0;
}

static void read_build_id(sym_module *m, Elf *e) {
  Elf_Scn *scn = NULL;
  while ((scn = elf_nextscn(e, scn)) != NULL) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE) continue;
    Elf_Data *d = elf_getdata(scn, NULL);
    if (!d || !d->d_buf) continue;
    size_t off = 0, noff, doff;
    GElf_Nhdr nh;
    while ((off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
      if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
          memcmp((const char *)d->d_buf + noff, "GNU", 4) != 0)
        continue;
      const unsigned char *p = (const unsigned char *)d->d_buf + doff;
      size_t n = nh.n_descsz;
      if (n > (sizeof m->build_id - 1) / 2) n = (sizeof m->build_id - 1) / 2;
      for (size_t i = 0; i < n; i++) snprintf(m->build_id + 2 * i, 3, "%02x", p[i]);
      return;
    }
  }
}

typedef struct unsized_fn {
  uint64_t start, sec_end;
  const char *name;
  uint32_t prio;
} unsized_fn;

static int u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Reads .symtab then .dynsym FUNC/OBJECT symbols; returns 1 for a readable ELF file. Among
 * equally small matches .symtab beats .dynsym and global beats weak beats local, so exported
 * names win over local aliases. FUNC symbols without a size (hand-written assembly, crt
 * files) are stretched to the next function start in their section and rank last. */
static int read_elf(sym_module *m, const char *path, int want_build_id) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  Elf *e = elf_begin(fd, ELF_C_READ, NULL);
  if (!e || elf_kind(e) != ELF_K_ELF) {
    if (e) elf_end(e);
    close(fd);
    return 0;
  }
  if (want_build_id) read_build_id(m, e);
  unsized_fn *uf = NULL;
  uint64_t *starts = NULL;
  size_t nuf = 0, capuf = 0, nstarts = 0, capstarts = 0;
  static const unsigned types[] = {SHT_SYMTAB, SHT_DYNSYM};
  for (unsigned t = 0; t < 2; t++) {
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(e, scn)) != NULL) {
      GElf_Shdr sh;
      if (!gelf_getshdr(scn, &sh) || sh.sh_type != types[t] || !sh.sh_entsize) continue;
      Elf_Data *d = elf_getdata(scn, NULL);
      if (!d) continue;
      size_t cnt = sh.sh_size / sh.sh_entsize;
      for (size_t i = 0; i < cnt && i < (size_t)INT32_MAX; i++) {
        GElf_Sym s;
        if (!gelf_getsym(d, (int)i, &s)) break;
        int type = GELF_ST_TYPE(s.st_info);
        int func = type == STT_FUNC || type == STT_GNU_IFUNC;
        if (!func && type != STT_OBJECT) continue;
        if (s.st_shndx == SHN_UNDEF || s.st_shndx >= SHN_LORESERVE) continue;
        const char *name = elf_strptr(e, sh.sh_link, s.st_name);
        if (!name || !name[0]) continue;
        int bind = GELF_ST_BIND(s.st_info);
        uint32_t prio = t * 4 + (bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2);
        if (func) {
          if (nstarts == capstarts) {
            size_t ncap = capstarts ? capstarts * 2 : 256;
            uint64_t *ns = realloc(starts, ncap * sizeof *ns);
            if (!ns) continue;
            starts = ns;
            capstarts = ncap;
          }
          starts[nstarts++] = s.st_value;
        }
        if (s.st_size) {
          add_elfsym(m, name, s.st_value, s.st_size, func, prio);
        } else if (func) {
          GElf_Shdr tsh;
          Elf_Scn *target = elf_getscn(e, s.st_shndx);
          if (!target || !gelf_getshdr(target, &tsh) || s.st_value < tsh.sh_addr ||
              s.st_value >= tsh.sh_addr + tsh.sh_size)
            continue;
          if (nuf == capuf) {
            size_t ncap = capuf ? capuf * 2 : 16;
            unsized_fn *nu = realloc(uf, ncap * sizeof *nu);
            if (!nu) continue;
            uf = nu;
            capuf = ncap;
          }
          uf[nuf].start = s.st_value;
          uf[nuf].sec_end = tsh.sh_addr + tsh.sh_size;
          uf[nuf].name = name;
          uf[nuf].prio = prio + 16;
          nuf++;
        }
      }
    }
  }
  if (nuf && nstarts) {
    qsort(starts, nstarts, sizeof *starts, u64_cmp);
    for (size_t i = 0; i < nuf; i++) {
      size_t lo = 0, hi = nstarts; /* first start > uf[i].start */
      while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (starts[mid] <= uf[i].start) lo = mid + 1;
        else hi = mid;
      }
      uint64_t end = lo < nstarts && starts[lo] < uf[i].sec_end ? starts[lo] : uf[i].sec_end;
      add_elfsym(m, uf[i].name, uf[i].start, end - uf[i].start, 1, uf[i].prio);
    }
  }
  free(uf);
  free(starts);
  elf_end(e); /* names were copied by add_elfsym */
  close(fd);
  return 1;
}

/* libdwarf 20210528 frees its context chain when a .debug_rnglists/.debug_loclists header is
 * bad but then keeps using it (double free on the first .debug_info access). So the file
 * libdwarf will read is vetted here first, with the same header checks it makes; a file that
 * would trip them is symbolized from ELF symbols only. */
static int lists_headers_ok(const unsigned char *p, uint64_t size) {
  uint64_t off = 0;
  while (off < size) {
    uint64_t left = size - off, len = 0, hdr = 4;
    if (left < 4) return 0;
    len = (uint64_t)p[off] | (uint64_t)p[off + 1] << 8 | (uint64_t)p[off + 2] << 16 |
          (uint64_t)p[off + 3] << 24;
    if (len == 0xffffffffu) {
      if (left < 12) return 0;
      len = 0;
      for (int i = 7; i >= 0; i--) len = (len << 8) | p[off + 4 + i];
      hdr = 12;
    }
    if (len > size) return 0;
    if (left < hdr + 8) return 0; /* version(2) address_size(1) seg_size(1) count(4) */
    const unsigned char *h = p + off + hdr;
    unsigned version = h[0] | (unsigned)h[1] << 8, asz = h[2];
    if (version != 5 || (asz != 2 && asz != 4 && asz != 8)) return 0;
    off += hdr + len;
  }
  return 1;
}

static Elf_Data *section_data(Elf_Scn *scn, const GElf_Shdr *sh, int gnu_z) {
  if (sh->sh_type == SHT_NOBITS || !sh->sh_size) return NULL;
  if ((sh->sh_flags & SHF_COMPRESSED) && elf_compress(scn, 0, 0) < 0) return NULL;
  if (gnu_z && elf_compress_gnu(scn, 0, 0) < 0) return NULL;
  Elf_Data *d = elf_getdata(scn, NULL);
  return d && d->d_buf ? d : NULL;
}

/* Vets the file libdwarf will read (see lists_headers_ok) and keeps copies of the sections
 * decode_lines needs. Returns 0 when libdwarf must not be used on it. */
static int prepare_dwarf_file(sym_module *m, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  Elf *e = elf_begin(fd, ELF_C_READ, NULL);
  size_t shstrndx = 0;
  int ok = e && elf_kind(e) == ELF_K_ELF && elf_getshdrstrndx(e, &shstrndx) == 0;
  Elf_Scn *scn = NULL;
  while (ok && (scn = elf_nextscn(e, scn)) != NULL) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    const char *name = elf_strptr(e, shstrndx, sh.sh_name);
    if (!name || name[0] != '.') continue;
    int gnu_z = strncmp(name, ".zdebug_", 8) == 0; /* old GNU compressed naming */
    const char *base = gnu_z ? name + 2 : name + 1;
    if (strcmp(base, "debug_rnglists") == 0 || strcmp(base, "debug_loclists") == 0) {
      Elf_Data *d = section_data(scn, &sh, gnu_z);
      ok = !sh.sh_size || sh.sh_type == SHT_NOBITS || (d && lists_headers_ok(d->d_buf, d->d_size));
    } else {
      sym_sec *dst = strcmp(base, "debug_line") == 0       ? &m->line_sec
                     : strcmp(base, "debug_line_str") == 0 ? &m->line_str_sec
                     : strcmp(base, "debug_str") == 0      ? &m->str_sec
                                                           : NULL;
      Elf_Data *d = dst && !dst->p ? section_data(scn, &sh, gnu_z) : NULL;
      if (d && d->d_size && (dst->p = malloc(d->d_size)) != NULL) {
        memcpy(dst->p, d->d_buf, d->d_size);
        dst->n = d->d_size;
      }
    }
  }
  if (e) elf_end(e);
  close(fd);
  return ok;
}
/* ---------- DWARF: CU index ------------------------------------------------------------- */

static int cu_by_off_cmp(const void *key, const void *elem) {
  Dwarf_Off k = *(const Dwarf_Off *)key, o = ((const sym_cu *)elem)->die_off;
  return k < o ? -1 : k > o;
}

static void build_cu_index(sym_module *m) {
  Dwarf_Debug dbg = m->dbg;
  Dwarf_Error err = NULL;
  size_t cap = 0;
  for (unsigned iter = 0; iter < SYM_MAX_CUS; iter++) {
    Dwarf_Unsigned hlen = 0, typeoff = 0, next = 0;
    Dwarf_Half ver = 0, asz = 0, lsz = 0, esz = 0, utype = 0;
    Dwarf_Off abbr = 0;
    Dwarf_Sig8 sig;
    int res = dwarf_next_cu_header_d(dbg, 1, &hlen, &ver, &abbr, &asz, &lsz, &esz, &sig,
                                     &typeoff, &next, &utype, &err);
    if (res != DW_DLV_OK) {
      drop_err(dbg, &err);
      break;
    }
    Dwarf_Die cudie = NULL;
    if (dwarf_siblingof_b(dbg, NULL, 1, &cudie, &err) != DW_DLV_OK) {
      drop_err(dbg, &err);
      continue;
    }
    int tag = die_tag(dbg, cudie);
    Dwarf_Off off = 0;
    if ((tag != DW_TAG_compile_unit && tag != DW_TAG_partial_unit &&
         tag != DW_TAG_skeleton_unit) ||
        dwarf_dieoffset(cudie, &off, &err) != DW_DLV_OK) {
      drop_err(dbg, &err);
      dwarf_dealloc_die(cudie);
      continue;
    }
    if (m->ncus == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      sym_cu *nc = realloc(m->cus, ncap * sizeof *nc);
      if (!nc) {
        dwarf_dealloc_die(cudie);
        break;
      }
      m->cus = nc;
      cap = ncap;
    }
    sym_cu *cu = &m->cus[m->ncus];
    memset(cu, 0, sizeof *cu);
    cu->die_off = off;
    cu->version = ver;
    Dwarf_Addr base = 0;
    if (dwarf_lowpc(cudie, &base, &err) == DW_DLV_OK) cu->base = base;
    else drop_err(dbg, &err);
    add_ctx ac = {&m->cu_ix, (uint32_t)m->ncus, 0};
    die_ranges(dbg, cudie, ver, cu->base, add_cb, &ac);
    dwarf_dealloc_die(cudie);
    m->ncus++;
  }
  /* .debug_aranges, when present, covers CUs whose DIE lacks pc attributes (some producers
   * and hand-written assembly); duplicates of DIE ranges are harmless. */
  Dwarf_Arange *ar = NULL;
  Dwarf_Signed nar = 0;
  if (m->ncus && dwarf_get_aranges(dbg, &ar, &nar, &err) == DW_DLV_OK) {
    for (Dwarf_Signed i = 0; i < nar; i++) {
      Dwarf_Unsigned seg = 0, segsz = 0, len = 0;
      Dwarf_Addr start = 0;
      Dwarf_Off cuoff = 0;
      if (dwarf_get_arange_info_b(ar[i], &seg, &segsz, &start, &len, &cuoff, &err) ==
          DW_DLV_OK) {
        sym_cu *cu = bsearch(&cuoff, m->cus, m->ncus, sizeof *m->cus, cu_by_off_cmp);
        if (cu) ivl_add(&m->cu_ix, start, start + len, (uint32_t)(cu - m->cus), 1);
      } else {
        drop_err(dbg, &err);
      }
      dwarf_dealloc(dbg, ar[i], DW_DLA_ARANGE);
    }
    dwarf_dealloc(dbg, ar, DW_DLA_LIST);
  } else {
    drop_err(dbg, &err);
  }
  ivl_finish(&m->cu_ix);
}

/* ---------- DWARF: per-CU data (line table, files, subprograms) -------------------------- */

/* Drops "." components and doubled slashes that libdwarf's joins leave behind (clang names
 * the CU's own directory "." in the include-directory table, giving "/dir/./x.h"). ".." is
 * kept: resolving it without the file system could be wrong across symlinks. */
static void tidy_path(char *p) {
  char *w = p;
  const char *r = p;
  while (*r) {
    if (r[0] == '/' && w > p && w[-1] == '/') {
      r++;
    } else if (r[0] == '.' && (w == p || w[-1] == '/') && (r[1] == '/' || (r[1] == 0 && w > p))) {
      r += r[1] ? 2 : 1;
    } else {
      *w++ = *r++;
    }
  }
  if (w > p + 1 && w[-1] == '/') w--;
  *w = 0;
}

/* comp_dir/dir/name, each step only when the next part is relative. */
static char *join_file(const char *comp_dir, const char *dir, const char *name) {
  if (!name) return NULL;
  const char *parts[3];
  int n = 0;
  if (name[0] != '/') {
    if ((!dir || dir[0] != '/') && comp_dir && comp_dir[0]) parts[n++] = comp_dir;
    if (dir && dir[0]) parts[n++] = dir;
  }
  parts[n++] = name;
  size_t len = 1;
  for (int i = 0; i < n; i++) len += strlen(parts[i]) + 1;
  char *out = malloc(len);
  if (!out) return NULL;
  out[0] = 0;
  for (int i = 0; i < n; i++) {
    if (i) strcat(out, "/");
    strcat(out, parts[i]);
  }
  tidy_path(out);
  return out;
}

/* Maps a file number (line-table file register, DW_AT_call_file, DW_AT_decl_file) to a name.
 * libdwarf reports where numbering starts: 0 for DWARF 5, 1 for DWARF 2-4 (where 0 means "no
 * file"). */
static const char *cu_file(const sym_cu *cu, uint64_t num) {
  if (num < cu->file_base) return NULL;
  num -= cu->file_base;
  return num < cu->nfiles ? cu->files[num] : NULL;
}

/* ---------- line program decoder -------------------------------------------------------- */

/* libdwarf 20210528 decodes line programs with two bugs that matter here: it starts the DWARF 5
 * file register at 0 instead of 1 (gcc relies on the default, so rows before the first
 * DW_LNS_set_file get the wrong file), and it flags every DW_LNS_set_epilogue_begin row as
 * end_sequence (clang emits one per function). So rows come from this decoder over the raw
 * .debug_line bytes, and libdwarf is used only for the header's file table. */
typedef struct line_rd {
  const unsigned char *p, *end;
  int bad;
} line_rd;

static uint64_t rd_fixed(line_rd *r, unsigned n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return 0;
  }
  uint64_t v = 0;
  for (unsigned i = n; i-- > 0;) v = (v << 8) | r->p[i]; /* little-endian targets */
  r->p += n;
  return v;
}

static uint64_t rd_uleb(line_rd *r) {
  uint64_t v = 0;
  unsigned shift = 0;
  while (!r->bad) {
    if (r->p >= r->end) {
      r->bad = 1;
      break;
    }
    unsigned char b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) return v;
  }
  return 0;
}

static int64_t rd_sleb(line_rd *r) {
  uint64_t v = 0;
  unsigned shift = 0;
  while (!r->bad) {
    if (r->p >= r->end) {
      r->bad = 1;
      break;
    }
    unsigned char b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) {
      if (shift < 64 && (b & 0x40)) v |= ~(uint64_t)0 << shift;
      return (int64_t)v;
    }
  }
  return 0;
}

/* A NUL-terminated string at off inside sec, or NULL when it would run off the end. */
static const char *sec_str(const sym_sec *sec, uint64_t off) {
  if (!sec->p || off >= sec->n) return NULL;
  const char *p = (const char *)sec->p + off;
  return memchr(p, 0, sec->n - off) ? p : NULL;
}

static const char *rd_cstr(line_rd *r) {
  if (r->bad) return NULL;
  const unsigned char *z = memchr(r->p, 0, (size_t)(r->end - r->p));
  if (!z) {
    r->bad = 1;
    return NULL;
  }
  const char *str = (const char *)r->p;
  r->p = z + 1;
  return str;
}

typedef struct line_strs {
  const sym_sec *line_str, *str;
  unsigned offsz;
} line_strs;

/* Reads one DWARF 5 entry field. Strings come back through *str, numbers through *num; forms
 * we cannot resolve here (strx needs the CU's str_offsets base) fail the whole table. */
static void rd_form(line_rd *r, uint64_t form, const line_strs *ls, const char **str,
                    uint64_t *num) {
  *str = NULL;
  *num = 0;
  switch (form) {
  case DW_FORM_string: *str = rd_cstr(r); break;
  case DW_FORM_line_strp: *str = sec_str(ls->line_str, rd_fixed(r, ls->offsz)); break;
  case DW_FORM_strp: *str = sec_str(ls->str, rd_fixed(r, ls->offsz)); break;
  case DW_FORM_udata: *num = rd_uleb(r); break;
  case DW_FORM_sdata: *num = (uint64_t)rd_sleb(r); break;
  case DW_FORM_data1: *num = rd_fixed(r, 1); break;
  case DW_FORM_data2: *num = rd_fixed(r, 2); break;
  case DW_FORM_data4: *num = rd_fixed(r, 4); break;
  case DW_FORM_data8: *num = rd_fixed(r, 8); break;
  case DW_FORM_data16: rd_fixed(r, 8), rd_fixed(r, 8); break;
  case DW_FORM_block: {
    uint64_t n = rd_uleb(r);
    if (n > (uint64_t)(r->end - r->p)) r->bad = 1;
    else r->p += n;
    break;
  }
  case DW_FORM_block1: {
    uint64_t n = rd_fixed(r, 1);
    if (n > (uint64_t)(r->end - r->p)) r->bad = 1;
    else r->p += n;
    break;
  }
  default: r->bad = 1; break;
  }
}

/* Reads a DWARF 5 directory or file-name table: the entry format, then count entries; keeps
 * each entry's DW_LNCT_path and DW_LNCT_directory_index. Returns the count, -1 on error. */
static long rd_v5_table(line_rd *r, const line_strs *ls, const char ***paths, uint64_t **dirs) {
  unsigned nfmt = (unsigned)rd_fixed(r, 1);
  uint64_t fmt[2 * 255];
  for (unsigned i = 0; i < nfmt; i++) {
    fmt[2 * i] = rd_uleb(r);
    fmt[2 * i + 1] = rd_uleb(r);
  }
  uint64_t count = rd_uleb(r);
  if (r->bad || count > (uint64_t)(r->end - r->p)) return -1; /* every entry takes >= 1 byte */
  *paths = calloc(count ? count : 1, sizeof **paths);
  *dirs = calloc(count ? count : 1, sizeof **dirs);
  if (!*paths || !*dirs) return -1;
  for (uint64_t e = 0; e < count && !r->bad; e++) {
    for (unsigned i = 0; i < nfmt && !r->bad; i++) {
      const char *str;
      uint64_t num;
      rd_form(r, fmt[2 * i + 1], ls, &str, &num);
      if (fmt[2 * i] == DW_LNCT_path) (*paths)[e] = str;
      else if (fmt[2 * i] == DW_LNCT_directory_index) (*dirs)[e] = num;
    }
  }
  return r->bad ? -1 : (long)count;
}

/* Fills cu->files from the header's tables; r sits just past standard_opcode_lengths. */
static void read_file_table(line_rd *r, unsigned version, const line_strs *ls,
                            const char *comp_dir, sym_cu *cu) {
  const char **dpaths = NULL, **fpaths = NULL;
  uint64_t *ddirs = NULL, *fdirs = NULL;
  long ndirs = 0, nfiles = 0;
  if (version >= 5) {
    ndirs = rd_v5_table(r, ls, &dpaths, &ddirs);
    if (ndirs >= 0) nfiles = rd_v5_table(r, ls, &fpaths, &fdirs);
    /* DWARF 5 lists the compilation directory itself as directory 0 */
    if (ndirs > 0 && dpaths[0] && (!comp_dir || !comp_dir[0])) comp_dir = dpaths[0];
  } else {
    /* DWARF 2-4: NUL-terminated lists ended by an empty string; directory 0 (implicit) is
     * the compilation directory, so table entry i is directory i + 1. */
    size_t cap = 0;
    for (;;) {
      const char *d = rd_cstr(r);
      if (!d || !d[0]) break;
      if ((size_t)ndirs == cap) {
        cap = cap ? cap * 2 : 16;
        const char **nd = realloc(dpaths, cap * sizeof *nd);
        if (!nd) break;
        dpaths = nd;
      }
      dpaths[ndirs++] = d;
    }
    cap = 0;
    for (;;) {
      const char *f = rd_cstr(r);
      if (!f || !f[0]) break;
      uint64_t dir = rd_uleb(r);
      rd_uleb(r), rd_uleb(r); /* mtime, length */
      if (r->bad) break;
      if ((size_t)nfiles == cap) {
        cap = cap ? cap * 2 : 16;
        const char **nf = realloc(fpaths, cap * sizeof *nf);
        uint64_t *ndr = realloc(fdirs, cap * sizeof *ndr);
        if (nf) fpaths = nf;
        if (ndr) fdirs = ndr;
        if (!nf || !ndr) break;
      }
      fpaths[nfiles] = f;
      fdirs[nfiles] = dir;
      nfiles++;
    }
  }
  if (nfiles > 0 && (cu->files = calloc((size_t)nfiles, sizeof *cu->files)) != NULL) {
    cu->nfiles = (size_t)nfiles;
    cu->file_base = version >= 5 ? 0 : 1;
    for (long i = 0; i < nfiles; i++) {
      uint64_t d = fdirs[i];
      const char *dir = NULL;
      if (version >= 5) dir = d < (uint64_t)ndirs ? dpaths[d] : NULL;
      else if (d > 0) dir = d <= (uint64_t)ndirs ? dpaths[d - 1] : NULL;
      cu->files[i] = join_file(comp_dir, dir, fpaths[i]);
    }
  }
  free(dpaths);
  free(ddirs);
  free(fpaths);
  free(fdirs);
}

typedef struct row_sink {
  sym_cu *cu;
  size_t cap;
  size_t seq_first;
  uint64_t seq_lo;
  int in_seq;
} row_sink;

static void sink_row(row_sink *k, uint64_t addr, uint64_t file, uint64_t line, uint64_t col,
                     int end) {
  sym_cu *cu = k->cu;
  if (k->in_seq && addr < cu->rows[cu->nrows - 1].addr) {
    /* Addresses never go backwards inside a valid sequence: drop the broken one. */
    cu->nrows = k->seq_first;
    k->in_seq = 0;
    if (end) return;
  }
  if (end) {
    if (k->in_seq && addr > k->seq_lo) {
      if (cu->nseq == k->cap) return; /* cap grows with rows, see below */
      if (ivl_add(&cu->seqs, k->seq_lo, addr, (uint32_t)cu->nseq, 0) == 0) {
        cu->seq[cu->nseq].first = k->seq_first;
        cu->seq[cu->nseq].end = cu->nrows;
        cu->nseq++;
      }
    }
    k->in_seq = 0;
    return;
  }
  if (cu->nrows == k->cap) {
    size_t ncap = k->cap ? k->cap * 2 : 256;
    sym_row *nr = realloc(cu->rows, ncap * sizeof *nr);
    if (!nr) return;
    cu->rows = nr;
    struct sym_seq *ns = realloc(cu->seq, ncap * sizeof *ns);
    if (!ns) return;
    cu->seq = ns;
    k->cap = ncap;
  }
  if (!k->in_seq) {
    k->in_seq = 1;
    k->seq_first = cu->nrows;
    k->seq_lo = addr;
  }
  sym_row *r = &cu->rows[cu->nrows++];
  r->addr = addr;
  r->line = line > UINT32_MAX ? 0 : (uint32_t)line;
  r->column = col > UINT32_MAX ? 0 : (uint32_t)col;
  r->file = file > UINT32_MAX ? UINT32_MAX : (uint32_t)file;
}

/* Reads the line table at off (DWARF 2-5, 32/64-bit): its file table into cu->files, then the
 * line-number program into cu->rows / cu->seqs. */
static void decode_lines(const sym_module *m, uint64_t off, const char *comp_dir, sym_cu *cu) {
  const unsigned char *sec = m->line_sec.p;
  size_t len = m->line_sec.n;
  if (!sec || off >= len) return;
  line_rd r = {sec + off, sec + len, 0};
  uint64_t unit_len = rd_fixed(&r, 4);
  unsigned offsz = 4;
  if (unit_len == 0xffffffffu) {
    unit_len = rd_fixed(&r, 8);
    offsz = 8;
  }
  if (r.bad || unit_len > (uint64_t)(r.end - r.p)) return;
  r.end = r.p + unit_len;
  unsigned version = (unsigned)rd_fixed(&r, 2);
  if (version < 2 || version > 5) return;
  if (version >= 5) rd_fixed(&r, 2); /* address_size, segment_selector_size */
  uint64_t hdr_len = rd_fixed(&r, offsz);
  if (r.bad || hdr_len > (uint64_t)(r.end - r.p)) return;
  const unsigned char *prog = r.p + hdr_len;
  unsigned min_inst = (unsigned)rd_fixed(&r, 1);
  unsigned max_ops = version >= 4 ? (unsigned)rd_fixed(&r, 1) : 1;
  int default_stmt = (int)rd_fixed(&r, 1);
  int line_base = (int)(signed char)rd_fixed(&r, 1);
  unsigned line_range = (unsigned)rd_fixed(&r, 1);
  unsigned opcode_base = (unsigned)rd_fixed(&r, 1);
  if (r.bad || !line_range || !opcode_base || (size_t)(prog - r.p) < opcode_base - 1) return;
  const unsigned char *std_lens = r.p;
  (void)default_stmt;
  if (!max_ops) max_ops = 1;
  line_rd hdr = {r.p + opcode_base - 1, prog, 0};
  line_strs ls = {&m->line_str_sec, &m->str_sec, offsz};
  read_file_table(&hdr, version, &ls, comp_dir, cu);
  r.p = prog;

  row_sink k = {cu, 0, 0, 0, 0};
  uint64_t addr = 0, file = 1, line = 1, col = 0, op_index = 0;
  while (!r.bad && r.p < r.end) {
    unsigned op = *r.p++;
    uint64_t adv = 0;
    if (op >= opcode_base) {
      unsigned adj = op - opcode_base;
      adv = adj / line_range;
      line += (int64_t)line_base + (int64_t)(adj % line_range);
      addr += min_inst * ((op_index + adv) / max_ops);
      op_index = (op_index + adv) % max_ops;
      sink_row(&k, addr, file, line, col, 0);
      continue;
    }
    switch (op) {
    case 0: { /* extended */
      uint64_t elen = rd_uleb(&r);
      if (r.bad || elen == 0 || elen > (uint64_t)(r.end - r.p)) {
        r.bad = 1;
        break;
      }
      const unsigned char *next = r.p + elen;
      unsigned sub = *r.p++;
      if (sub == DW_LNE_end_sequence) {
        sink_row(&k, addr, file, line, col, 1);
        addr = 0, file = 1, line = 1, col = 0, op_index = 0;
      } else if (sub == DW_LNE_set_address) {
        unsigned asz = (unsigned)(elen - 1);
        if (asz == 4 || asz == 8) addr = rd_fixed(&r, asz);
        op_index = 0;
      }
      r.p = next; /* define_file, set_discriminator, vendor ops: skipped */
      break;
    }
    case DW_LNS_copy:
      sink_row(&k, addr, file, line, col, 0);
      break;
    case DW_LNS_advance_pc:
      adv = rd_uleb(&r);
      addr += min_inst * ((op_index + adv) / max_ops);
      op_index = (op_index + adv) % max_ops;
      break;
    case DW_LNS_advance_line:
      line += (uint64_t)rd_sleb(&r);
      break;
    case DW_LNS_set_file:
      file = rd_uleb(&r);
      break;
    case DW_LNS_set_column:
      col = rd_uleb(&r);
      break;
    case DW_LNS_negate_stmt:
    case DW_LNS_set_basic_block:
    case DW_LNS_set_prologue_end:
    case DW_LNS_set_epilogue_begin:
      break;
    case DW_LNS_const_add_pc:
      adv = (255 - opcode_base) / line_range;
      addr += min_inst * ((op_index + adv) / max_ops);
      op_index = (op_index + adv) % max_ops;
      break;
    case DW_LNS_fixed_advance_pc:
      addr += rd_fixed(&r, 2);
      op_index = 0;
      break;
    default: /* DW_LNS_set_isa and unknown standard opcodes: skip their ULEB operands */
      for (unsigned i = 0; i < std_lens[op - 1] && !r.bad; i++) rd_uleb(&r);
      break;
    }
  }
  ivl_finish(&cu->seqs);
}

/* DW_AT_stmt_list and DW_AT_comp_dir come from the CU DIE via libdwarf; the table itself is
 * read by decode_lines. */
static void load_lines(sym_module *m, Dwarf_Die cudie, sym_cu *cu) {
  Dwarf_Debug dbg = m->dbg;
  Dwarf_Error err = NULL;
  Dwarf_Attribute a = NULL;
  if (dwarf_attr(cudie, DW_AT_stmt_list, &a, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    return;
  }
  Dwarf_Off off = 0;
  int ok = dwarf_global_formref(a, &off, &err) == DW_DLV_OK;
  if (!ok) {
    drop_err(dbg, &err);
    Dwarf_Unsigned u = 0;
    ok = dwarf_formudata(a, &u, &err) == DW_DLV_OK;
    if (ok) off = u;
    else drop_err(dbg, &err);
  }
  dwarf_dealloc_attribute(a);
  if (!ok) return;
  char *comp_dir = NULL;
  if (dwarf_die_text(cudie, DW_AT_comp_dir, &comp_dir, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    comp_dir = NULL;
  }
  decode_lines(m, off, comp_dir, cu);
}

/* Collects subprogram ranges. Definitions with code sit at CU or namespace level (C++ member
 * functions too, via DW_AT_specification), so type subtrees are not entered. */
static void collect_subs(Dwarf_Debug dbg, Dwarf_Die parent, sym_cu *cu, size_t *cap, int depth) {
  if (depth > SYM_MAX_NEST) return;
  Dwarf_Die child = first_child(dbg, parent);
  while (child) {
    int tag = die_tag(dbg, child);
    if (tag == DW_TAG_subprogram) {
      if (cu->nsubs == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        Dwarf_Off *no = realloc(cu->sub_offs, ncap * sizeof *no);
        if (no) {
          cu->sub_offs = no;
          *cap = ncap;
        }
      }
      if (cu->nsubs < *cap) {
        add_ctx ac = {&cu->subs, (uint32_t)cu->nsubs, 0};
        if (die_ranges(dbg, child, cu->version, cu->base, add_cb, &ac) > 0)
          cu->sub_offs[cu->nsubs++] = die_offset(dbg, child);
      }
    } else if (tag == DW_TAG_namespace || tag == DW_TAG_module) {
      collect_subs(dbg, child, cu, cap, depth + 1);
    }
    child = next_sibling(dbg, child);
  }
}

static sym_cu *load_cu(sym_module *m, size_t i) {
  sym_cu *cu = &m->cus[i];
  if (cu->loaded) return cu->loaded > 0 ? cu : NULL;
  cu->loaded = -1;
  Dwarf_Die cudie = die_at(m->dbg, cu->die_off);
  if (!cudie) return NULL;
  load_lines(m, cudie, cu);
  size_t cap = 0;
  collect_subs(m->dbg, cudie, cu, &cap, 0);
  ivl_finish(&cu->subs);
  dwarf_dealloc_die(cudie);
  cu->loaded = 1;
  return cu;
}

static void free_cu(sym_cu *cu) {
  free(cu->rows);
  free(cu->seq);
  ivl_free(&cu->seqs);
  for (size_t i = 0; i < cu->nfiles; i++) free(cu->files[i]);
  free(cu->files);
  ivl_free(&cu->subs);
  free(cu->sub_offs);
}

/* The row with the greatest address <= addr in the sequence containing addr; among rows at the
 * same address the last one wins, as in llvm-symbolizer. */
static const sym_row *cu_line(const sym_cu *cu, uint64_t addr) {
  const sym_ivl *s = ivl_find(&cu->seqs, addr);
  if (!s) return NULL;
  size_t first = cu->seq[s->idx].first, end = cu->seq[s->idx].end;
  if (first >= end || end > cu->nrows) return NULL;
  size_t lo = first, hi = end; /* first row with address > addr */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cu->rows[mid].addr <= addr) lo = mid + 1;
    else hi = mid;
  }
  return lo > first ? &cu->rows[lo - 1] : NULL;
}

/* ---------- DWARF: inline chain ---------------------------------------------------------- */

typedef struct chain_ent {
  char name[256];
  uint64_t call_file;
  uint64_t call_line, call_column;
} chain_ent;

/* Walks children of parent for the inlined_subroutine containing addr, descending through
 * lexical blocks (which may lack pc attributes at -O0 or list ranges at -O2). */
static int walk_inlines(Dwarf_Debug dbg, Dwarf_Die parent, const sym_cu *cu, uint64_t addr,
                        chain_ent *chain, int *depth, int nest) {
  if (nest > SYM_MAX_NEST || *depth >= SYM_MAX_CHAIN) return 0;
  Dwarf_Die child = first_child(dbg, parent);
  while (child) {
    int tag = die_tag(dbg, child);
    int found = 0;
    if (tag == DW_TAG_inlined_subroutine) {
      if (die_contains(dbg, child, cu, addr) == 1) {
        chain_ent *e = &chain[(*depth)++];
        memset(e, 0, sizeof *e);
        die_name(dbg, child, e->name, sizeof e->name, 0);
        die_udata(dbg, child, DW_AT_call_file, &e->call_file);
        die_udata(dbg, child, DW_AT_call_line, &e->call_line);
        die_udata(dbg, child, DW_AT_call_column, &e->call_column);
        walk_inlines(dbg, child, cu, addr, chain, depth, nest + 1);
        found = 1;
      }
    } else if (tag == DW_TAG_lexical_block || tag == DW_TAG_try_block ||
               tag == DW_TAG_catch_block || tag == DW_TAG_with_stmt) {
      if (die_contains(dbg, child, cu, addr) != 0)
        found = walk_inlines(dbg, child, cu, addr, chain, depth, nest + 1);
    }
    if (found) {
      dwarf_dealloc_die(child);
      return 1;
    }
    child = next_sibling(dbg, child);
  }
  return 0;
}

/* ---------- module open/close ----------------------------------------------------------- */

static void free_module(sym_module *m) {
  if (!m) return;
  for (size_t i = 0; i < m->ncus; i++) free_cu(&m->cus[i]);
  free(m->cus);
  ivl_free(&m->cu_ix);
  for (size_t i = 0; i < m->nsyms; i++) free(m->syms[i].name);
  free(m->syms);
  ivl_free(&m->func_ix);
  ivl_free(&m->obj_ix);
  for (size_t i = 0; i < m->nvars; i++) free(m->vars[i].name);
  free(m->vars);
  ivl_free(&m->var_ix);
  free(m->line_sec.p);
  free(m->line_str_sec.p);
  free(m->str_sec.p);
  if (m->dbg) {
    Dwarf_Error err = NULL;
    if (dwarf_finish(m->dbg, &err) != DW_DLV_OK && err) dwarf_dealloc_error(NULL, err);
  }
  free(m->path);
  free(m);
}

static sym_module *open_module(const char *path) {
  sym_module *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->path = strdup(path);
  if (!m->path) {
    free(m);
    return NULL;
  }
  if (elf_version(EV_CURRENT) == EV_NONE) return m;
  /* libelf first: a file it cannot parse as ELF is never handed to libdwarf's own reader. */
  if (!read_elf(m, path, 1)) return m;
  m->ok = 1;
  char truepath[4096];
  truepath[0] = 0;
  Dwarf_Error err = NULL;
  Dwarf_Debug dbg = NULL;
  /* The true-path buffer makes libdwarf follow .gnu_debuglink / build-id to a separate debug
   * file when the module itself is stripped. */
  int res = dwarf_init_path(path, truepath, sizeof truepath, DW_DLC_READ, DW_GROUPNUMBER_ANY,
                            NULL, NULL, &dbg, NULL, 0, NULL, &err);
  if (res == DW_DLV_OK) {
    /* libdwarf reads sections lazily, so vetting after init still precedes any parsing. */
    const char *dwarf_path = truepath[0] ? truepath : path;
    if (prepare_dwarf_file(m, dwarf_path)) {
      m->dbg = dbg;
      if (strcmp(dwarf_path, path) != 0) read_elf(m, dwarf_path, 0);
      build_cu_index(m);
    } else {
      if (dwarf_finish(dbg, &err) != DW_DLV_OK && err) dwarf_dealloc_error(NULL, err);
    }
  } else if (err) {
    dwarf_dealloc_error(NULL, err);
  }
  ivl_finish(&m->func_ix);
  ivl_finish(&m->obj_ix);
  return m;
}

static sym_module *get_module(ftsan_symbolizer *s, const char *path) {
  if (s->last && strcmp(s->last->path, path) == 0) return s->last;
  for (size_t i = 0; i < s->nmods; i++) {
    if (strcmp(s->mods[i]->path, path) == 0) return s->last = s->mods[i];
  }
  if (s->nmods == s->capmods) {
    size_t ncap = s->capmods ? s->capmods * 2 : 8;
    sym_module **nm = realloc(s->mods, ncap * sizeof *nm);
    if (!nm) return NULL;
    s->mods = nm;
    s->capmods = ncap;
  }
  sym_module *m = open_module(path);
  if (!m) return NULL;
  s->mods[s->nmods++] = m;
  return s->last = m;
}

/* ---------- address cache -------------------------------------------------------------- */

static size_t cache_hash(const sym_module *m, uint64_t addr) {
  uint64_t h = addr * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)m * 0xC2B2AE3D27D4EB4Full;
  return (size_t)(h ^ (h >> 29));
}

static sym_cache_ent *cache_find(ftsan_symbolizer *s, const sym_module *m, uint64_t addr) {
  if (!s->cache_cap) return NULL;
  size_t mask = s->cache_cap - 1;
  for (size_t i = cache_hash(m, addr) & mask;; i = (i + 1) & mask) {
    sym_cache_ent *e = &s->cache[i];
    if (!e->m) return NULL;
    if (e->m == m && e->addr == addr) return e;
  }
}

static void cache_put(ftsan_symbolizer *s, sym_module *m, uint64_t addr, const ftsan_frame *f,
                      int n) {
  if ((s->cache_n + 1) * 2 > s->cache_cap) {
    size_t ncap = s->cache_cap ? s->cache_cap * 2 : 1024;
    sym_cache_ent *nc = calloc(ncap, sizeof *nc);
    if (!nc) return; /* caching is an optimization; skip on OOM */
    for (size_t i = 0; i < s->cache_cap; i++) {
      sym_cache_ent *e = &s->cache[i];
      if (!e->m) continue;
      size_t j = cache_hash(e->m, e->addr) & (ncap - 1);
      while (nc[j].m) j = (j + 1) & (ncap - 1);
      nc[j] = *e;
    }
    free(s->cache);
    s->cache = nc;
    s->cache_cap = ncap;
  }
  ftsan_frame *copy = NULL;
  if (n > 0) {
    copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return;
    memcpy(copy, f, (size_t)n * sizeof *copy);
  }
  size_t mask = s->cache_cap - 1;
  size_t i = cache_hash(m, addr) & mask;
  while (s->cache[i].m) i = (i + 1) & mask;
  s->cache[i].m = m;
  s->cache[i].addr = addr;
  s->cache[i].n = n;
  s->cache[i].frames = copy;
  s->cache_n++;
}

/* ---------- public API ----------------------------------------------------------------- */

ftsan_symbolizer *ftsan_symbolizer_new(void) { return calloc(1, sizeof(ftsan_symbolizer)); }

void ftsan_symbolizer_free(ftsan_symbolizer *s) {
  if (!s) return;
  for (size_t i = 0; i < s->cache_cap; i++) free(s->cache[i].frames);
  free(s->cache);
  for (size_t i = 0; i < s->nmods; i++) free_module(s->mods[i]);
  free(s->mods);
  free(s);
}

static void set_loc(ftsan_frame *f, const char *file, uint64_t line, uint64_t col) {
  copy_str(f->file, sizeof f->file, file);
  f->line = line > 0x7fffffff ? 0 : (int)line;
  f->column = col > 0x7fffffff ? 0 : (int)col;
}

/* Fills frames (innermost first) into f[0..SYM_MAX_CHAIN]; returns the count. */
static int symbolize_uncached(sym_module *m, uint64_t addr, ftsan_frame *f) {
  const sym_cu *line_cu = NULL, *sub_cu = NULL;
  const sym_row *row = NULL;
  Dwarf_Off sub_off = 0;
  if (m->dbg) {
    const sym_ivl *cand[8];
    int nc = ivl_find_all(&m->cu_ix, addr, cand, 8);
    for (int i = 0; i < nc && !sub_cu; i++) {
      const sym_cu *cu = load_cu(m, cand[i]->idx);
      if (!cu) continue;
      const sym_row *r = cu_line(cu, addr);
      const sym_ivl *sub = ivl_find(&cu->subs, addr);
      if (sub) {
        sub_cu = cu;
        sub_off = cu->sub_offs[sub->idx];
        if (r || !row) {
          row = r;
          line_cu = cu;
        }
      } else if (r && !row) {
        row = r;
        line_cu = cu;
      }
    }
  }
  chain_ent *chain = NULL;
  int depth = 0;
  if (sub_cu) {
    chain = calloc(SYM_MAX_CHAIN, sizeof *chain);
    Dwarf_Die sub = chain ? die_at(m->dbg, sub_off) : NULL;
    if (sub) {
      die_name(m->dbg, sub, chain[0].name, sizeof chain[0].name, 0);
      depth = 1;
      walk_inlines(m->dbg, sub, sub_cu, addr, chain, &depth, 0);
      dwarf_dealloc_die(sub);
    }
  }
  const sym_ivl *es = ivl_find(&m->func_ix, addr);
  const char *elf_name = es ? m->syms[es->idx].name : NULL;
  int n = 0;
  if (depth > 0) {
    for (int i = 0; i < depth; i++) {
      int d = depth - 1 - i; /* chain index, outermost = 0 */
      ftsan_frame *fr = &f[n++];
      memset(fr, 0, sizeof *fr);
      copy_str(fr->function, sizeof fr->function, chain[d].name);
      fr->inlined = d > 0;
      if (i == 0) {
        if (row) set_loc(fr, cu_file(line_cu, row->file), row->line, row->column);
      } else {
        const chain_ent *inner = &chain[d + 1];
        set_loc(fr, cu_file(sub_cu, inner->call_file), inner->call_line, inner->call_column);
      }
    }
    if (!f[n - 1].function[0] && elf_name)
      copy_str(f[n - 1].function, sizeof f[n - 1].function, elf_name);
  } else if (row || elf_name) {
    ftsan_frame *fr = &f[n++];
    memset(fr, 0, sizeof *fr);
    copy_str(fr->function, sizeof fr->function, elf_name);
    if (row) set_loc(fr, cu_file(line_cu, row->file), row->line, row->column);
  }
  free(chain);
  return n;
}

int ftsan_symbolize_code(ftsan_symbolizer *s, const char *module_path, uint64_t vaddr,
                         ftsan_frame *out, int max) {
  if (!s || !module_path || !out || max <= 0) return 0;
  sym_module *m = get_module(s, module_path);
  if (!m || !m->ok) return 0;
  sym_cache_ent *e = cache_find(s, m, vaddr);
  if (e) {
    int n = e->n < max ? e->n : max;
    if (n > 0) memcpy(out, e->frames, (size_t)n * sizeof *out);
    return n;
  }
  ftsan_frame *tmp = malloc(SYM_MAX_CHAIN * sizeof *tmp);
  if (!tmp) return 0;
  int n = symbolize_uncached(m, vaddr, tmp);
  cache_put(s, m, vaddr, tmp, n);
  int k = n < max ? n : max;
  if (k > 0) memcpy(out, tmp, (size_t)k * sizeof *out);
  free(tmp);
  return k;
}

/* ---------- data symbols ---------------------------------------------------------------- */

static uint64_t uleb(const unsigned char *p, size_t len, size_t *used) {
  uint64_t v = 0;
  unsigned shift = 0;
  size_t i = 0;
  while (i < len) {
    unsigned char b = p[i++];
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) {
      *used = i;
      return v;
    }
  }
  *used = 0;
  return 0;
}

/* A variable's static address: its location must be exactly DW_OP_addr or DW_OP_addrx, which
 * excludes TLS (addr + form_tls_address), registers and stack slots. */
static int var_address(Dwarf_Debug dbg, Dwarf_Die die, uint64_t *out) {
  Dwarf_Error err = NULL;
  Dwarf_Attribute a = NULL;
  if (dwarf_attr(die, DW_AT_location, &a, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
    return 0;
  }
  Dwarf_Half form = 0;
  const unsigned char *p = NULL;
  Dwarf_Unsigned len = 0;
  if (dwarf_whatform(a, &form, &err) != DW_DLV_OK) {
    drop_err(dbg, &err);
  } else if (form == DW_FORM_exprloc) {
    Dwarf_Ptr ptr = NULL;
    if (dwarf_formexprloc(a, &len, &ptr, &err) == DW_DLV_OK) p = ptr;
    else drop_err(dbg, &err);
  } else if (form == DW_FORM_block1 || form == DW_FORM_block2 || form == DW_FORM_block4 ||
             form == DW_FORM_block) {
    Dwarf_Block *b = NULL;
    if (dwarf_formblock(a, &b, &err) == DW_DLV_OK) {
      /* the block points into the section; only the descriptor is allocated */
      p = b->bl_data;
      len = b->bl_len;
      dwarf_dealloc(dbg, b, DW_DLA_BLOCK);
    } else {
      drop_err(dbg, &err);
    }
  }
  int ok = 0;
  if (p && len >= 2) {
    Dwarf_Half asz = 8;
    if (dwarf_get_die_address_size(die, &asz, &err) != DW_DLV_OK) drop_err(dbg, &err);
    if (p[0] == DW_OP_addr && len == 1u + asz && (asz == 4 || asz == 8)) {
      uint64_t v = 0;
      for (int i = asz - 1; i >= 0; i--) v = (v << 8) | p[1 + i]; /* little-endian targets */
      *out = v;
      ok = 1;
    } else if (p[0] == DW_OP_addrx || p[0] == DW_OP_GNU_addr_index) {
      size_t used = 0;
      uint64_t index = uleb(p + 1, len - 1, &used);
      Dwarf_Addr v = 0;
      if (used && 1 + used == len) {
        if (dwarf_debug_addr_index_to_addr(die, index, &v, &err) == DW_DLV_OK) {
          *out = v;
          ok = 1;
        } else {
          drop_err(dbg, &err);
        }
      }
    }
  }
  dwarf_dealloc_attribute(a);
  return ok;
}

/* Byte size of a type DIE: byte_size directly, through qualifiers/typedefs, or element size
 * times the subrange counts for arrays. 0 when unknown (flexible arrays, VLAs). */
static uint64_t type_size(Dwarf_Debug dbg, Dwarf_Off off, int depth) {
  if (depth > SYM_MAX_REFS) return 0;
  Dwarf_Die t = die_at(dbg, off);
  if (!t) return 0;
  uint64_t size = 0;
  int tag = die_tag(dbg, t);
  Dwarf_Off sub = 0;
  if (die_udata(dbg, t, DW_AT_byte_size, &size)) {
    /* done */
  } else if (tag == DW_TAG_pointer_type || tag == DW_TAG_reference_type ||
             tag == DW_TAG_rvalue_reference_type || tag == DW_TAG_ptr_to_member_type) {
    Dwarf_Half asz = 8;
    Dwarf_Error err = NULL;
    if (dwarf_get_die_address_size(t, &asz, &err) != DW_DLV_OK) drop_err(dbg, &err);
    size = asz;
  } else if (tag == DW_TAG_array_type) {
    uint64_t elem = die_ref(dbg, t, DW_AT_type, &sub) ? type_size(dbg, sub, depth + 1) : 0;
    uint64_t count = 1;
    int dims = 0;
    Dwarf_Die c = first_child(dbg, t);
    while (c) {
      int ct = die_tag(dbg, c);
      if (ct == DW_TAG_subrange_type || ct == DW_TAG_enumeration_type) {
        uint64_t cnt = 0, ub = 0, lb = 0;
        if (die_udata(dbg, c, DW_AT_count, &cnt)) {
        } else if (die_udata(dbg, c, DW_AT_upper_bound, &ub)) {
          die_udata(dbg, c, DW_AT_lower_bound, &lb);
          cnt = ub >= lb ? ub - lb + 1 : 0;
        } else {
          count = 0;
        }
        count *= cnt;
        dims++;
      }
      c = next_sibling(dbg, c);
    }
    size = dims ? elem * count : 0;
  } else if (tag == DW_TAG_typedef || tag == DW_TAG_const_type || tag == DW_TAG_volatile_type ||
             tag == DW_TAG_restrict_type || tag == DW_TAG_atomic_type ||
             tag == DW_TAG_packed_type || tag == DW_TAG_shared_type ||
             tag == DW_TAG_immutable_type) {
    if (die_ref(dbg, t, DW_AT_type, &sub)) size = type_size(dbg, sub, depth + 1);
  }
  dwarf_dealloc_die(t);
  return size;
}

static void add_var(sym_module *m, Dwarf_Debug dbg, Dwarf_Die die, const sym_cu *cu) {
  uint64_t addr = 0;
  if (!var_address(dbg, die, &addr)) return;
  sym_var v;
  memset(&v, 0, sizeof v);
  v.start = addr;
  char name[256] = "";
  die_name(dbg, die, name, sizeof name, 0);
  /* A definition may only point at its declaration (DW_AT_specification), which carries the
   * name, type and decl coordinates. */
  Dwarf_Die decl = NULL;
  Dwarf_Off off = 0;
  if (die_ref(dbg, die, DW_AT_specification, &off) ||
      die_ref(dbg, die, DW_AT_abstract_origin, &off))
    decl = die_at(dbg, off);
  uint64_t f = 0, l = 0;
  if (die_udata(dbg, die, DW_AT_decl_file, &f) || (decl && die_udata(dbg, decl, DW_AT_decl_file, &f)))
    v.file = cu_file(cu, f);
  if (die_udata(dbg, die, DW_AT_decl_line, &l) || (decl && die_udata(dbg, decl, DW_AT_decl_line, &l)))
    v.line = l > 0x7fffffff ? 0 : (int)l;
  if (die_ref(dbg, die, DW_AT_type, &off) || (decl && die_ref(dbg, decl, DW_AT_type, &off)))
    v.size = type_size(dbg, off, 0);
  if (decl) dwarf_dealloc_die(decl);
  if (!v.size) {
    /* DWARF lacks the size (incomplete array type, say): borrow the ELF symbol's. */
    const sym_ivl *es = ivl_find(&m->obj_ix, addr);
    if (es && m->syms[es->idx].start == addr) v.size = m->syms[es->idx].size;
  }
  if (!name[0]) return;
  if (m->nvars == m->capvars) {
    size_t ncap = m->capvars ? m->capvars * 2 : 64;
    sym_var *nv = realloc(m->vars, ncap * sizeof *nv);
    if (!nv) return;
    m->vars = nv;
    m->capvars = ncap;
  }
  v.name = strdup(name);
  if (!v.name) return;
  if (ivl_add(&m->var_ix, v.start, v.start + (v.size ? v.size : 1), (uint32_t)m->nvars, 0)) {
    free(v.name);
    return;
  }
  m->vars[m->nvars++] = v;
}

/* Visits variables at CU scope and inside functions/blocks (function-local statics); type
 * subtrees are skipped since they never hold variables with addresses. */
static void collect_vars(sym_module *m, Dwarf_Debug dbg, Dwarf_Die parent, const sym_cu *cu,
                         int nest) {
  if (nest > SYM_MAX_NEST) return;
  Dwarf_Die child = first_child(dbg, parent);
  while (child) {
    int tag = die_tag(dbg, child);
    if (tag == DW_TAG_variable) {
      add_var(m, dbg, child, cu);
    } else if (tag == DW_TAG_subprogram || tag == DW_TAG_lexical_block ||
               tag == DW_TAG_namespace || tag == DW_TAG_module) {
      collect_vars(m, dbg, child, cu, nest + 1);
    }
    child = next_sibling(dbg, child);
  }
}

static void build_vars(sym_module *m) {
  m->vars_built = 1;
  if (!m->dbg) return;
  for (size_t i = 0; i < m->ncus; i++) {
    const sym_cu *cu = load_cu(m, i);
    if (!cu) continue;
    Dwarf_Die cudie = die_at(m->dbg, cu->die_off);
    if (!cudie) continue;
    collect_vars(m, m->dbg, cudie, cu, 0);
    dwarf_dealloc_die(cudie);
  }
  ivl_finish(&m->var_ix);
}

int ftsan_symbolize_data(ftsan_symbolizer *s, const char *module_path, uint64_t vaddr,
                         ftsan_data_sym *out) {
  if (!s || !module_path || !out) return 0;
  sym_module *m = get_module(s, module_path);
  if (!m || !m->ok) return 0;
  if (!m->vars_built) build_vars(m);
  memset(out, 0, sizeof *out);
  const sym_ivl *v = ivl_find(&m->var_ix, vaddr);
  if (v) {
    const sym_var *var = &m->vars[v->idx];
    copy_str(out->name, sizeof out->name, var->name);
    out->start = var->start;
    out->size = var->size;
    copy_str(out->file, sizeof out->file, var->file);
    out->line = var->line;
    return 1;
  }
  const sym_ivl *es = ivl_find(&m->obj_ix, vaddr);
  if (es) {
    copy_str(out->name, sizeof out->name, m->syms[es->idx].name);
    out->start = m->syms[es->idx].start;
    out->size = m->syms[es->idx].size;
    return 1;
  }
  return 0;
}

int ftsan_symbolizer_build_id(ftsan_symbolizer *s, const char *module_path, char *buf,
                              int buflen) {
  if (!s || !module_path || !buf || buflen <= 0) return 0;
  buf[0] = 0;
  sym_module *m = get_module(s, module_path);
  if (!m || !m->build_id[0]) return 0;
  copy_str(buf, (size_t)buflen, m->build_id);
  return (int)strlen(buf);
}
