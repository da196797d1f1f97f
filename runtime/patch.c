/* patch.c: function entry patching for x86-64: relocates the first instructions into a near trampoline and writes a jmp at the entry. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syscall, dl_iterate_phdr, MAP_ANONYMOUS, RTLD_NEXT under -std=c11 */
#endif
#include "patch.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

const char *ftsan_patch_strerror(int code) {
  switch (code) {
#define FTSAN__PATCH_STR(name, value, text) \
  case value:                               \
    return text;
    FTSAN_PATCH_ERRORS(FTSAN__PATCH_STR)
#undef FTSAN__PATCH_STR
  }
  return "unknown ftsan_patch error";
}

#if !defined(__x86_64__)

/* Only the x86-64 backend exists; an aarch64 one would provide ftsan__dis_* and the emitter. */
int ftsan_patch_install(void *target, size_t target_size, void *replacement, void **original) {
  (void)target;
  (void)target_size;
  (void)replacement;
  (void)original;
  return FTSAN_PATCH_EARCH;
}

int ftsan_patch_check(void *target, size_t target_size) {
  (void)target;
  (void)target_size;
  return FTSAN_PATCH_EARCH;
}

size_t ftsan__patch_disasm_arena_used(void) {
  return 0;
}

#else

#include <capstone/capstone.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define FTSAN__JMP_LEN 5                 /* e9 rel32 */
#define FTSAN__ABS_JMP_LEN 14            /* ff 25 00000000 + 8-byte address */
#define FTSAN__MAX_INSNS FTSAN_PATCH_MAX_RELOC
#define FTSAN__PAGE 4096u
/* A rel32 reaches +-2 GiB; keep 1 MiB of slack so a decision made for the start of a
 * trampoline stays true for every instruction in it. */
#define FTSAN__REACH ((int64_t)0x7fffffff - (1 << 20))

/* ---------------------------------------------------------------------------------------- */
/* Disassembler interface: one decoded instruction, described only by what relocation needs.
 * ftsan__dis_init/ftsan__dis_decode are the whole interface; capstone stays behind it. */

enum {
  FTSAN__BR_NONE,  /* not a relative branch */
  FTSAN__BR_JMP,   /* jmp rel8/rel32 */
  FTSAN__BR_JCC,   /* jcc rel8/rel32 */
  FTSAN__BR_CALL,  /* call rel32 */
  FTSAN__BR_REL8,  /* rel8-only conditional forms: loop/loope/loopne/jrcxz/jecxz */
  FTSAN__BR_OTHER, /* xbegin, 16-bit forms: not relocatable */
};

typedef struct ftsan__insn {
  uintptr_t addr;
  uintptr_t dest;     /* branch destination, or the address a RIP-relative operand names */
  uint8_t len;
  uint8_t branch;     /* FTSAN__BR_* */
  uint8_t cc;         /* jcc condition code, low nibble of the opcode */
  uint8_t rip_off;    /* offset of the RIP-relative disp32 in the encoding, 0 if none */
  uint8_t rip_bad;    /* RIP-relative, but not with a disp32 we can rewrite */
  uint8_t terminator; /* never falls through: ret, jmp, ud2, int3, hlt */
  uint8_t endbr;
} ftsan__insn;

static csh ftsan__cs;
static cs_insn *ftsan__cs_insn;
static int ftsan__cs_state; /* 0 not tried, 1 ready, -1 failed */

/* Capstone allocates through CS_OPT_MEM hooks; they point at this bump arena so that patching
 * from a constructor never calls malloc (which the runtime may intercept, or which may not be
 * ready). cs_open for x86 plus one detailed cs_insn took 20176 bytes when measured (capstone
 * 4.0.2, test_patch's disasm_arena_small); cs_disasm_iter allocates nothing. Memory is never freed: the handle lives for the
 * whole process. This makes patch.c the owner of capstone's allocator process-wide. */
static unsigned char ftsan__cs_arena[64 * 1024] __attribute__((aligned(16)));
static size_t ftsan__cs_arena_used;

static void *ftsan__cs_malloc(size_t n) {
  size_t need = ((n + 15) & ~(size_t)15) + 16;
  if (need > sizeof ftsan__cs_arena - ftsan__cs_arena_used) return NULL;
  unsigned char *p = ftsan__cs_arena + ftsan__cs_arena_used;
  ftsan__cs_arena_used += need;
  memcpy(p, &n, sizeof n); /* size header, for realloc */
  return p + 16;
}

static void *ftsan__cs_calloc(size_t k, size_t n) {
  if (n && k > SIZE_MAX / n) return NULL;
  void *p = ftsan__cs_malloc(k * n);
  if (p) memset(p, 0, k * n);
  return p;
}

static void *ftsan__cs_realloc(void *ptr, size_t n) {
  if (!ptr) return ftsan__cs_malloc(n);
  size_t old;
  memcpy(&old, (unsigned char *)ptr - 16, sizeof old);
  if (n <= old) return ptr;
  void *q = ftsan__cs_malloc(n);
  if (q) memcpy(q, ptr, old);
  return q;
}

static void ftsan__cs_free(void *ptr) {
  (void)ptr;
}

size_t ftsan__patch_disasm_arena_used(void) {
  return ftsan__cs_arena_used;
}

static int ftsan__dis_init(void) {
  if (ftsan__cs_state) return ftsan__cs_state > 0 ? 0 : FTSAN_PATCH_EDISASM;
  ftsan__cs_state = -1;
  cs_opt_mem mem = {ftsan__cs_malloc, ftsan__cs_calloc, ftsan__cs_realloc, ftsan__cs_free, vsnprintf};
  if (cs_option(0, CS_OPT_MEM, (size_t)&mem) != CS_ERR_OK) return FTSAN_PATCH_EDISASM;
  if (cs_open(CS_ARCH_X86, CS_MODE_64, &ftsan__cs) != CS_ERR_OK) return FTSAN_PATCH_EDISASM;
  if (cs_option(ftsan__cs, CS_OPT_DETAIL, CS_OPT_ON) != CS_ERR_OK) return FTSAN_PATCH_EDISASM;
  ftsan__cs_insn = cs_malloc(ftsan__cs);
  if (!ftsan__cs_insn) return FTSAN_PATCH_EDISASM;
  ftsan__cs_state = 1;
  return 0;
}

/* Decodes one instruction at code (which runs at addr; avail bytes may be read). */
static int ftsan__dis_decode(const uint8_t *code, size_t avail, uintptr_t addr, ftsan__insn *out) {
  memset(out, 0, sizeof *out);
  const uint8_t *p = code;
  size_t n = avail;
  uint64_t a = addr;
  if (!cs_disasm_iter(ftsan__cs, &p, &n, &a, ftsan__cs_insn)) return FTSAN_PATCH_EDECODE;
  const cs_insn *in = ftsan__cs_insn;
  const cs_x86 *x = &in->detail->x86;
  out->addr = addr;
  out->len = (uint8_t)in->size;
  switch (in->id) {
  case X86_INS_RET: case X86_INS_RETF: case X86_INS_RETFQ: case X86_INS_IRET:
  case X86_INS_IRETQ: case X86_INS_UD2: case X86_INS_UD2B: case X86_INS_UD0:
  case X86_INS_INT3: case X86_INS_HLT: case X86_INS_LJMP:
    out->terminator = 1;
    break;
  case X86_INS_ENDBR64:
    out->endbr = 1;
    break;
  default:
    break;
  }
  if (cs_insn_group(ftsan__cs, in, CS_GRP_BRANCH_RELATIVE)) {
    uint8_t imm = x->encoding.imm_size;
    out->dest = (uintptr_t)x->operands[0].imm;
    if (x->op_count != 1 || x->operands[0].type != X86_OP_IMM || (imm != 1 && imm != 4)) {
      out->branch = FTSAN__BR_OTHER;
    } else if (in->id == X86_INS_JMP) {
      out->branch = FTSAN__BR_JMP;
      out->terminator = 1;
    } else if (in->id == X86_INS_CALL) {
      out->branch = FTSAN__BR_CALL;
    } else if (in->id == X86_INS_LOOP || in->id == X86_INS_LOOPE || in->id == X86_INS_LOOPNE ||
               in->id == X86_INS_JRCXZ || in->id == X86_INS_JECXZ || in->id == X86_INS_JCXZ) {
      out->branch = FTSAN__BR_REL8;
    } else if (imm == 1 && (code[in->size - 2] & 0xf0) == 0x70) {
      /* The displacement is the encoding's last bytes; the opcode sits right before it. */
      out->branch = FTSAN__BR_JCC;
      out->cc = code[in->size - 2] & 0x0f;
    } else if (imm == 4 && code[in->size - 6] == 0x0f && (code[in->size - 5] & 0xf0) == 0x80) {
      out->branch = FTSAN__BR_JCC;
      out->cc = code[in->size - 5] & 0x0f;
    } else {
      out->branch = FTSAN__BR_OTHER; /* xbegin and anything unforeseen */
    }
  } else if (in->id == X86_INS_JMP) {
    out->terminator = 1; /* indirect jmp */
  }
  for (int i = 0; i < x->op_count; i++) {
    const cs_x86_op *op = &x->operands[i];
    /* [eip+disp] (addr32 prefix) is IP-relative too but truncates to 32 bits: refused. */
    if (op->type != X86_OP_MEM ||
        (op->mem.base != X86_REG_RIP && op->mem.base != X86_REG_EIP && op->mem.index != X86_REG_RIP))
      continue;
    /* RIP-relative addressing is ModRM mod=00 rm=101 and always carries a disp32 right after
     * the ModRM byte (no SIB). That is checked from the bytes rather than taken from
     * encoding.disp_size: capstone 4.0.2 reports disp_size 2 for 66-prefixed SSE forms
     * (comisd, movdqa, pxor, ucomisd [rip+x]), measured on python3.13t's PyLong_FromDouble. */
    uint8_t m = x->encoding.modrm_offset;
    int32_t disp;
    if (op->mem.base != X86_REG_RIP || m == 0 || m + 5u > in->size || (code[m] & 0xc7) != 0x05) {
      out->rip_bad = 1;
      continue;
    }
    memcpy(&disp, code + m + 1, 4);
    if ((int64_t)disp != op->mem.disp) {
      out->rip_bad = 1;
      continue;
    }
    out->rip_off = (uint8_t)(m + 1);
    out->dest = addr + in->size + (uintptr_t)(int64_t)disp;
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Raw syscalls: the runtime may intercept mmap/mprotect/open, and must not re-enter itself. */

static void *ftsan__mmap(void *addr, size_t len, int prot, int flags) {
  long r = syscall(SYS_mmap, addr, len, prot, flags, -1L, 0L);
  return r == -1 ? MAP_FAILED : (void *)r;
}

static int ftsan__mprotect(uintptr_t start, size_t len, int prot) {
  uintptr_t lo = start & ~(uintptr_t)(FTSAN__PAGE - 1);
  uintptr_t hi = (start + len + FTSAN__PAGE - 1) & ~(uintptr_t)(FTSAN__PAGE - 1);
  return (int)syscall(SYS_mprotect, lo, hi - lo, prot);
}

/* Makes [start, start+len) writable. PROT_EXEC stays on so that other code on the same page
 * (other functions in .text, other trampolines in a chunk, this very file when it patches its
 * own binary in the unit test) keeps running; RW without X is the fallback for W^X systems. */
static int ftsan__unprotect(uintptr_t start, size_t len) {
  if (ftsan__mprotect(start, len, PROT_READ | PROT_WRITE | PROT_EXEC) == 0) return 0;
  if (ftsan__mprotect(start, len, PROT_READ | PROT_WRITE) == 0) return 0;
  return FTSAN_PATCH_EMPROTECT;
}

static void ftsan__reprotect(uintptr_t start, size_t len) {
  /* A failure here leaves the page writable but the code correct; nothing to undo. */
  (void)ftsan__mprotect(start, len, PROT_READ | PROT_EXEC);
}

/* Bytes readable from p, up to want: whole pages that mincore reports as mapped. */
static size_t ftsan__readable_len(uintptr_t p, size_t want) {
  uintptr_t pg = p & ~(uintptr_t)(FTSAN__PAGE - 1);
  size_t n = 0;
  while (n < want) {
    unsigned char vec;
    if (syscall(SYS_mincore, pg, (size_t)FTSAN__PAGE, &vec) != 0) break;
    pg += FTSAN__PAGE;
    n = pg - p;
  }
  return n < want ? n : want;
}

/* ---------------------------------------------------------------------------------------- */
/* Near memory: 64 KiB chunks within +-2 GiB of targets, carved into trampoline slots. */

#define FTSAN__CHUNK_SIZE (64u * 1024u)
#define FTSAN__MAX_CHUNKS 64

typedef struct ftsan__chunk {
  uintptr_t base;
  size_t used;
} ftsan__chunk;

static ftsan__chunk ftsan__chunks[FTSAN__MAX_CHUNKS];
static int ftsan__nchunks;

static uint64_t ftsan__absdiff(uintptr_t a, uintptr_t b) {
  return a > b ? a - b : b - a;
}

/* Distance from target to the farther end of a chunk placed at c. */
static uint64_t ftsan__chunk_dist(uintptr_t c, uintptr_t target) {
  uint64_t d1 = ftsan__absdiff(c, target), d2 = ftsan__absdiff(c + FTSAN__CHUNK_SIZE, target);
  return d1 > d2 ? d1 : d2;
}

typedef struct ftsan__gap_pick {
  uintptr_t target, brk, best;
  uint64_t best_dist;
} ftsan__gap_pick;

static void ftsan__consider(ftsan__gap_pick *g, uintptr_t c) {
  uint64_t d = ftsan__chunk_dist(c, g->target);
  if (d < g->best_dist) {
    g->best_dist = d;
    g->best = c;
  }
}

/* A free gap [gs, ge) of the address space. The chunk goes at the gap's top (right under the
 * next mapping) or bottom (right over the previous one), whichever is nearer the target, with
 * two exclusions: never right under [stack] (it grows down into the gap) and never at the
 * bottom of the gap that holds the program break (brk heap growth goes there). */
static void ftsan__consider_gap(ftsan__gap_pick *g, uintptr_t gs, uintptr_t ge, int next_is_stack) {
  if (gs < 0x10000) gs = 0x10000; /* vm.mmap_min_addr default */
  if (ge <= gs || ge - gs < FTSAN__CHUNK_SIZE) return;
  if (!next_is_stack) ftsan__consider(g, ge - FTSAN__CHUNK_SIZE);
  int holds_brk = g->brk >= gs && g->brk <= ge;
  if (!holds_brk && (!next_is_stack || ge - gs > ((uintptr_t)1 << 30))) ftsan__consider(g, gs);
}

/* Finds the free gap nearest target by reading /proc/self/maps with a byte-wise parser (no
 * allocation, no stdio). Returns 0 or the proposed chunk address. */
static uintptr_t ftsan__pick_near(uintptr_t target) {
  ftsan__gap_pick g = {target, (uintptr_t)syscall(SYS_brk, 0L), 0, UINT64_MAX};
  long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  static char buf[4096];
  uintptr_t start = 0, end = 0, prev_end = 0;
  int field = 0; /* 0: start, 1: end, 2: rest of line */
  char tail[8] = {0};
  long n;
  while ((n = syscall(SYS_read, fd, buf, sizeof buf)) > 0) {
    for (long i = 0; i < n; i++) {
      char c = buf[i];
      if (c == '\n') {
        int is_stack = memcmp(tail + 1, "[stack]", 7) == 0;
        if (start >= prev_end && start < ((uintptr_t)1 << 47))
          ftsan__consider_gap(&g, prev_end, start, is_stack);
        if (end > prev_end && start < ((uintptr_t)1 << 47)) prev_end = end;
        start = end = 0;
        field = 0;
        memset(tail, 0, sizeof tail);
        continue;
      }
      if (field < 2) {
        int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (v >= 0) {
          if (field == 0) start = start * 16 + (uintptr_t)v;
          else end = end * 16 + (uintptr_t)v;
        } else {
          field++;
        }
      } else {
        memmove(tail, tail + 1, sizeof tail - 1);
        tail[sizeof tail - 1] = c;
      }
    }
  }
  syscall(SYS_close, fd);
  /* The space above the last mapping (only vsyscall-like entries beyond 2^47 are skipped). */
  ftsan__consider_gap(&g, prev_end, ((uintptr_t)1 << 47) - FTSAN__PAGE, 0);
  return g.best_dist <= (uint64_t)FTSAN__REACH ? g.best : 0;
}

static int ftsan__map_chunk_at(uintptr_t want, uintptr_t target) {
  void *p = ftsan__mmap((void *)want, FTSAN__CHUNK_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE);
  if (p == MAP_FAILED) return -1;
  /* Kernels before 4.17 treat MAP_FIXED_NOREPLACE as a mere hint. */
  if (ftsan__chunk_dist((uintptr_t)p, target) > (uint64_t)FTSAN__REACH) {
    syscall(SYS_munmap, p, (size_t)FTSAN__CHUNK_SIZE);
    return -1;
  }
  ftsan__chunks[ftsan__nchunks].base = (uintptr_t)p;
  ftsan__chunks[ftsan__nchunks].used = 0;
  return ftsan__nchunks++;
}

static int ftsan__new_chunk(uintptr_t target) {
  if (ftsan__nchunks >= FTSAN__MAX_CHUNKS) return -1;
  uintptr_t c = ftsan__pick_near(target);
  int idx = c ? ftsan__map_chunk_at(c, target) : -1;
  /* Fallback when maps is unreadable or raced: probe 1 MiB steps below, then above. */
  uintptr_t t = target & ~(uintptr_t)0xfffff;
  for (uintptr_t k = 1; idx < 0 && k < 1024; k++) {
    if (t > k * 0x100000 + 0x10000) idx = ftsan__map_chunk_at(t - k * 0x100000, target);
    if (idx < 0) idx = ftsan__map_chunk_at(t + k * 0x100000, target);
  }
  return idx;
}

/* Reserves size bytes (16-aligned) near target; returns the chunk index or -1. Chunks within
 * 256 MiB are reused so that RIP-relative data stays in reach; farther ones only if no new
 * chunk can be mapped. */
static int ftsan__near_alloc(uintptr_t target, size_t size, uintptr_t *slot) {
  size = (size + 15) & ~(size_t)15;
  int best = -1;
  uint64_t best_d = UINT64_MAX;
  for (int i = 0; i < ftsan__nchunks; i++) {
    uint64_t d = ftsan__chunk_dist(ftsan__chunks[i].base, target);
    if (FTSAN__CHUNK_SIZE - ftsan__chunks[i].used >= size && d < best_d) {
      best_d = d;
      best = i;
    }
  }
  if (best < 0 || best_d > ((uint64_t)256 << 20)) {
    int fresh = ftsan__new_chunk(target);
    if (fresh >= 0) best = fresh;
    else if (best >= 0 && best_d > (uint64_t)FTSAN__REACH) best = -1;
  }
  if (best < 0) return -1;
  *slot = ftsan__chunks[best].base + ftsan__chunks[best].used;
  ftsan__chunks[best].used += size;
  return best;
}

/* Gives back the unused end of the slot just allocated from chunk idx. */
static void ftsan__near_trim(int idx, uintptr_t slot, size_t reserved, size_t used) {
  reserved = (reserved + 15) & ~(size_t)15;
  used = (used + 15) & ~(size_t)15;
  if (ftsan__chunks[idx].base + ftsan__chunks[idx].used == slot + reserved)
    ftsan__chunks[idx].used -= reserved - used;
}

/* ---------------------------------------------------------------------------------------- */
/* Relocation: copied region [site, end) of the target -> trampoline code. */

typedef struct ftsan__region {
  uintptr_t entry, site, end; /* entry <= site: site is past an endbr64 kept in place */
  int n;
  ftsan__insn insn[FTSAN__MAX_INSNS];
} ftsan__region;

static int ftsan__fits32(int64_t v) {
  return v >= INT32_MIN && v <= INT32_MAX;
}

static int ftsan__near(uintptr_t a, uintptr_t b) {
  return ftsan__absdiff(a, b) <= (uint64_t)FTSAN__REACH;
}

static void ftsan__put32(uint8_t *p, int32_t v) {
  memcpy(p, &v, 4);
}

static void ftsan__put64(uint8_t *p, uint64_t v) {
  memcpy(p, &v, 8);
}

/* Writes "jmp [rip+0]; .quad dest" (when out is non-NULL); returns its length. */
static size_t ftsan__emit_abs_jmp(uint8_t *out, uintptr_t dest) {
  if (out) {
    static const uint8_t abs_jmp[6] = {0xff, 0x25, 0, 0, 0, 0};
    memcpy(out, abs_jmp, 6);
    ftsan__put64(out + 6, dest);
  }
  return FTSAN__ABS_JMP_LEN;
}

/* Writes "jmp rel32" (out non-NULL) located at address at; returns its length. */
static size_t ftsan__emit_rel_jmp(uint8_t *out, uintptr_t at, uintptr_t dest) {
  if (out) {
    out[0] = 0xe9;
    ftsan__put32(out + 1, (int32_t)(int64_t)(dest - (at + 5)));
  }
  return 5;
}

/* Appends "jmp dest" in the shortest form that reaches; returns its length. */
static size_t ftsan__emit_jmp(uint8_t *out, uintptr_t at, uintptr_t dest) {
  return ftsan__near(at, dest) ? ftsan__emit_rel_jmp(out, at, dest) : ftsan__emit_abs_jmp(out, dest);
}

/* Index of the region instruction starting at addr, or -1. */
static int ftsan__insn_at(const ftsan__region *r, uintptr_t addr) {
  for (int i = 0; i < r->n; i++)
    if (r->insn[i].addr == addr) return i;
  return -1;
}

static int ftsan__internal(const ftsan__region *r, uintptr_t dest) {
  return dest >= r->site && dest < r->end;
}

/* Emits the relocated region at base (out NULL: sizing pass). off[i] receives each
 * instruction's offset in the trampoline; the sizing pass must come first so that internal
 * branches can use the offsets. Returns the length or a negative error. */
static long ftsan__relocate(const ftsan__region *r, uint8_t *out, uintptr_t base, uint16_t *off) {
  size_t pos = 0;
  if (r->site != r->entry) { /* endbr64 kept at the entry: the trampoline starts with one too */
    if (out) memcpy(out, (const void *)r->entry, r->site - r->entry);
    pos += r->site - r->entry;
  }
  for (int i = 0; i < r->n; i++) {
    const ftsan__insn *in = &r->insn[i];
    const uint8_t *src = (const uint8_t *)in->addr;
    uint8_t *o = out ? out + pos : NULL;
    uintptr_t at = base + pos;
    off[i] = (uint16_t)pos;
    int internal = in->branch != FTSAN__BR_NONE && ftsan__internal(r, in->dest);
    uintptr_t dest = internal ? base + off[ftsan__insn_at(r, in->dest)] : in->dest;
    switch (in->branch) {
    case FTSAN__BR_NONE:
      if (o) {
        memcpy(o, src, in->len);
        if (in->rip_off) {
          int64_t disp = (int64_t)(in->dest - (at + in->len));
          if (!ftsan__fits32(disp)) return FTSAN_PATCH_ERANGE;
          ftsan__put32(o + in->rip_off, (int32_t)disp);
        }
      }
      pos += in->len;
      break;
    case FTSAN__BR_JMP:
      /* Internal branches always take the rel32 form, so their size never depends on the
       * offsets the sizing pass is computing. */
      pos += internal ? ftsan__emit_rel_jmp(o, at, dest) : ftsan__emit_jmp(o, at, dest);
      break;
    case FTSAN__BR_JCC:
      if (internal || ftsan__near(at, dest)) {
        if (o) {
          o[0] = 0x0f;
          o[1] = (uint8_t)(0x80 | in->cc);
          ftsan__put32(o + 2, (int32_t)(int64_t)(dest - (at + 6)));
        }
        pos += 6;
      } else { /* j!cc over an absolute jump */
        if (o) {
          o[0] = (uint8_t)(0x70 | (in->cc ^ 1));
          o[1] = FTSAN__ABS_JMP_LEN;
          ftsan__emit_abs_jmp(o + 2, dest);
        }
        pos += 2 + FTSAN__ABS_JMP_LEN;
      }
      break;
    case FTSAN__BR_CALL:
      if (ftsan__near(at, dest)) {
        if (o) {
          o[0] = 0xe8;
          ftsan__put32(o + 1, (int32_t)(int64_t)(dest - (at + 5)));
        }
        pos += 5;
      } else { /* call [rip+2]; jmp +8; .quad dest */
        if (o) {
          static const uint8_t abs_call[8] = {0xff, 0x15, 2, 0, 0, 0, 0xeb, 8};
          memcpy(o, abs_call, 8);
          ftsan__put64(o + 8, dest);
        }
        pos += 16;
      }
      break;
    case FTSAN__BR_REL8: { /* <same insn, rel8=+2>; jmp short over; jmp dest */
      size_t j = ftsan__near(at + in->len + 2, dest) ? 5 : FTSAN__ABS_JMP_LEN;
      if (o) {
        memcpy(o, src, in->len);
        o[in->len - 1] = 2;
        o[in->len] = 0xeb;
        o[in->len + 1] = (uint8_t)j;
        ftsan__emit_jmp(o + in->len + 2, at + in->len + 2, dest);
      }
      pos += in->len + 2 + j;
      break;
    }
    default:
      return FTSAN_PATCH_EBRANCH;
    }
  }
  pos += ftsan__emit_jmp(out ? out + pos : NULL, base + pos, r->end);
  return (long)pos;
}

/* Upper bound of ftsan__relocate's output: every instruction grows by at most 16 bytes. */
static size_t ftsan__relocated_max(const ftsan__region *r) {
  size_t n = (r->site - r->entry) + FTSAN__ABS_JMP_LEN;
  for (int i = 0; i < r->n; i++) n += r->insn[i].len + 16u;
  return n;
}

static int ftsan__decode_at(uintptr_t p, uintptr_t limit, ftsan__insn *in) {
  size_t avail = limit - p < 16 ? limit - p : 16;
  return ftsan__dis_decode((const uint8_t *)p, avail, p, in);
}

static int ftsan__is_branch(const ftsan__insn *in) {
  return in->branch != FTSAN__BR_NONE;
}

/* A destination that would execute the middle of the patch: inside an endbr64 kept at the
 * entry, or inside the 5 overwritten bytes other than their first (which holds the new jmp).
 * Branches to instruction starts at site+5 or later are harmless even inside the copied
 * region: those original bytes stay intact and run the same code as their copy. */
static int ftsan__bad_dest(const ftsan__region *r, uintptr_t d) {
  return d > r->entry && d < r->site + FTSAN__JMP_LEN && d != r->site;
}

/* Extends the region with the instructions up to new_end. */
static int ftsan__extend(ftsan__region *r, uintptr_t new_end, uintptr_t limit) {
  while (r->end < new_end) {
    if (r->n >= FTSAN__MAX_INSNS) return FTSAN_PATCH_EJUMP_INTO_PATCH;
    ftsan__insn *in = &r->insn[r->n];
    if (ftsan__decode_at(r->end, limit, in) != 0) return FTSAN_PATCH_EDECODE;
    if (in->addr + in->len > limit) return FTSAN_PATCH_ETOO_SHORT;
    r->n++;
    r->end += in->len;
  }
  return 0;
}

/* Decides the copied region: whole instructions covering the 5-byte jump, grown over any
 * nearby branch that jumps back into it when the function's extent is known. */
static int ftsan__plan(ftsan__region *r, uintptr_t entry, size_t size) {
  size_t want = size ? size : (size_t)FTSAN_PATCH_MAX_RELOC + 16;
  size_t readable = ftsan__readable_len(entry, want);
  if (readable == 0 || (size && readable < size)) return FTSAN_PATCH_EUNREADABLE;
  uintptr_t limit = entry + readable; /* never decode past this */
  r->entry = r->site = r->end = entry;
  r->n = 0;

  ftsan__insn first;
  if (ftsan__decode_at(entry, limit, &first) != 0) return FTSAN_PATCH_EDECODE;
  if (first.endbr) r->site = r->end = entry + first.len;
  if (size && r->site + FTSAN__JMP_LEN > entry + size) return FTSAN_PATCH_ETOO_SHORT;

  while (r->end - r->site < FTSAN__JMP_LEN) {
    if (r->end >= limit) return FTSAN_PATCH_ETOO_SHORT;
    int rc = ftsan__extend(r, r->end + 1, limit);
    if (rc) return rc;
    /* Without a size, bytes after a ret/jmp may be padding or another function. */
    if (!size && r->insn[r->n - 1].terminator && r->end - r->site < FTSAN__JMP_LEN)
      return FTSAN_PATCH_ETOO_SHORT;
  }

  if (size) {
    uintptr_t fn_end = entry + size;
  rescan:
    for (uintptr_t p = entry; p < fn_end;) {
      if (p == r->site) { /* the region's own branches are checked below */
        p = r->end;
        continue;
      }
      ftsan__insn in;
      if (ftsan__decode_at(p, fn_end, &in) != 0) return FTSAN_PATCH_EDECODE;
      if (ftsan__is_branch(&in) && ftsan__bad_dest(r, in.dest)) {
        uintptr_t new_end = p + in.len;
        if (p < r->site || new_end - r->site > FTSAN_PATCH_MAX_RELOC)
          return FTSAN_PATCH_EJUMP_INTO_PATCH;
        int rc = ftsan__extend(r, new_end, fn_end);
        if (rc) return rc;
        goto rescan;
      }
      p += in.len;
    }
  }

  for (int i = 0; i < r->n; i++) {
    const ftsan__insn *in = &r->insn[i];
    if (in->rip_bad) return FTSAN_PATCH_ERIPREL;
    if (!ftsan__is_branch(in)) continue;
    if (in->branch == FTSAN__BR_OTHER) return FTSAN_PATCH_EBRANCH;
    if (in->dest > r->entry && in->dest < r->site) return FTSAN_PATCH_EJUMP_INTO_PATCH;
    if (ftsan__internal(r, in->dest)) {
      if (ftsan__insn_at(r, in->dest) < 0) return FTSAN_PATCH_EJUMP_INTO_PATCH;
      /* An internal call is a get-PC idiom (it would push a trampoline address); an internal
       * rel8-only branch would need a second relocation scheme. Neither shows up in
       * compiled prologues. */
      if (in->branch == FTSAN__BR_CALL || in->branch == FTSAN__BR_REL8) return FTSAN_PATCH_EBRANCH;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing code. */

/* Publishes "jmp" at site so that a concurrent thread sees either the old or the new
 * instruction. Aligned 8-byte stores are atomic on x86-64; when the 5 bytes straddle an
 * 8-byte boundary (e.g. after an endbr64 at a 16-byte aligned entry) a 2-byte `jmp $`
 * placeholder parks any arriving thread while the tail is written. */
static void ftsan__publish(uint8_t *site, const uint8_t jmp[FTSAN__JMP_LEN]) {
  uintptr_t s = (uintptr_t)site, w = s & ~(uintptr_t)7;
  if (s + FTSAN__JMP_LEN <= w + 8) {
    uint64_t v;
    memcpy(&v, (const void *)w, 8);
    memcpy((uint8_t *)&v + (s - w), jmp, FTSAN__JMP_LEN);
    __atomic_store_n((uint64_t *)w, v, __ATOMIC_SEQ_CST);
    return;
  }
  uint16_t spin = 0xfeeb, head = (uint16_t)(jmp[0] | jmp[1] << 8);
  /* A 2-byte store within one cache line is atomic on x86 even unaligned; written as asm
   * because C would call an unaligned uint16_t store undefined. */
  __asm__ volatile("movw %1, (%0)" : : "r"(site), "r"(spin) : "memory");
  memcpy(site + 2, jmp + 2, FTSAN__JMP_LEN - 2);
  atomic_thread_fence(memory_order_seq_cst);
  __asm__ volatile("movw %1, (%0)" : : "r"(site), "r"(head) : "memory");
}

static int ftsan__write_code(uintptr_t dst, const uint8_t *src, size_t n) {
  if (ftsan__unprotect(dst, n) != 0) return FTSAN_PATCH_EMPROTECT;
  memcpy((void *)dst, src, n);
  ftsan__reprotect(dst, n);
  __builtin___clear_cache((char *)dst, (char *)dst + n);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */

#ifndef FTSAN__MAX_SITES /* overridable for stress experiments that patch every function */
#define FTSAN__MAX_SITES 4096
#endif

typedef struct ftsan__site {
  uintptr_t entry;
  uintptr_t trampoline;
  uint8_t saved[8]; /* original bytes at the patch site, for a future unpatch */
} ftsan__site;

static ftsan__site ftsan__sites[FTSAN__MAX_SITES];
static int ftsan__nsites;
static atomic_flag ftsan__patch_lock = ATOMIC_FLAG_INIT;

static int ftsan__install_locked(uintptr_t entry, size_t size, uintptr_t repl, void **original) {
  int rc = ftsan__dis_init();
  if (rc) return rc;
  for (int i = 0; i < ftsan__nsites; i++)
    if (ftsan__sites[i].entry == entry) return FTSAN_PATCH_EALREADY;
  if (ftsan__nsites >= FTSAN__MAX_SITES) return FTSAN_PATCH_EFULL;

  static ftsan__region r; /* ~1.5 KiB: static rather than on a possibly small stack */
  rc = ftsan__plan(&r, entry, size);
  if (rc) return rc;

  /* Slot layout: [abs-jmp stub to the replacement, only if it is out of rel32 reach]
   *              [trampoline: endbr64?, relocated instructions, jmp back]. */
  static uint8_t code[2048]; /* reserve is at most ~1.2 KiB: 64 insns growing by 16 each */
  uint16_t off[FTSAN__MAX_INSNS] = {0};
  int need_stub = !ftsan__near(r.site + FTSAN__JMP_LEN, repl);
  size_t stub_len = need_stub ? 16 : 0;
  size_t reserve = stub_len + ftsan__relocated_max(&r);
  if (reserve > sizeof code) return FTSAN_PATCH_EBRANCH;
  uintptr_t slot;
  int chunk = ftsan__near_alloc(entry, reserve, &slot);
  if (chunk < 0) return FTSAN_PATCH_ENEAR;

  uintptr_t tramp = slot + stub_len;
  long len = ftsan__relocate(&r, NULL, tramp, off);
  if (len >= 0) len = ftsan__relocate(&r, code + stub_len, tramp, off);
  if (len < 0) {
    ftsan__near_trim(chunk, slot, reserve, 0);
    return (int)len;
  }
  if (need_stub) {
    ftsan__emit_abs_jmp(code, repl);
    memset(code + FTSAN__ABS_JMP_LEN, 0xcc, stub_len - FTSAN__ABS_JMP_LEN);
  }
  size_t total = stub_len + (size_t)len;
  ftsan__near_trim(chunk, slot, reserve, total);
  if (ftsan__write_code(slot, code, total) != 0) {
    ftsan__near_trim(chunk, slot, total, 0);
    return FTSAN_PATCH_EMPROTECT;
  }

  uintptr_t jump_to = need_stub ? slot : repl;
  int64_t rel = (int64_t)(jump_to - (r.site + FTSAN__JMP_LEN));
  if (!ftsan__fits32(rel)) return FTSAN_PATCH_ERANGE;
  uint8_t jmp[FTSAN__JMP_LEN] = {0xe9};
  ftsan__put32(jmp + 1, (int32_t)rel);

  if (ftsan__unprotect(r.site, FTSAN__JMP_LEN) != 0) return FTSAN_PATCH_EMPROTECT;
  ftsan__site *s = &ftsan__sites[ftsan__nsites++];
  s->entry = entry;
  s->trampoline = tramp;
  memcpy(s->saved, (const void *)r.site, sizeof s->saved);
  /* The trampoline must be visible before any thread can take the new jump. */
  *original = (void *)tramp;
  atomic_thread_fence(memory_order_seq_cst);
  ftsan__publish((uint8_t *)r.site, jmp);
  ftsan__reprotect(r.site, FTSAN__JMP_LEN);
  __builtin___clear_cache((char *)r.site, (char *)r.site + FTSAN__JMP_LEN);
  return 0;
}

static int ftsan__check_locked(uintptr_t entry, size_t size) {
  int rc = ftsan__dis_init();
  if (rc) return rc;
  for (int i = 0; i < ftsan__nsites; i++)
    if (ftsan__sites[i].entry == entry) return FTSAN_PATCH_EALREADY;
  static ftsan__region r;
  return ftsan__plan(&r, entry, size);
}

int ftsan_patch_check(void *target, size_t target_size) {
  if (!target) return FTSAN_PATCH_EINVAL;
  while (atomic_flag_test_and_set_explicit(&ftsan__patch_lock, memory_order_acquire)) {
  }
  int rc = ftsan__check_locked((uintptr_t)target, target_size);
  atomic_flag_clear_explicit(&ftsan__patch_lock, memory_order_release);
  return rc;
}

int ftsan_patch_install(void *target, size_t target_size, void *replacement, void **original) {
  if (!target || !replacement || !original) return FTSAN_PATCH_EINVAL;
  /* Spin lock, not pthread: usable from a constructor and never re-entering an interceptor. */
  while (atomic_flag_test_and_set_explicit(&ftsan__patch_lock, memory_order_acquire)) {
  }
  int rc = ftsan__install_locked((uintptr_t)target, target_size, (uintptr_t)replacement, original);
  atomic_flag_clear_explicit(&ftsan__patch_lock, memory_order_release);
  return rc;
}

#endif /* __x86_64__ */
