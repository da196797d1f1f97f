/* rt_access.c: the memory-access, atomic and function entry/exit entry points of the ABI
 * (include/ftsan_abi.h). The PC of an access is the return address of the entry point. */
#include "rt_clock.h"
#include "rt_race.h"

#define CALLER_PC ((uint64_t)(uintptr_t)__builtin_return_address(0))

/* The whole 8-byte granules of [addr, end) (addr 8-aligned), chunk by chunk: one shadow
 * lookup per chunk, then the cells of consecutive granules. Ranges come from memcpy/memset
 * and from the pass, which checks a loop's contiguous accesses as one range before it. */
static void granules(ftsan_thread *t, uintptr_t addr, uintptr_t end, uint64_t cur, uint64_t pc) {
  while (addr < end) {
    uintptr_t next = (addr | ((1ull << FTSAN_CHUNK_SHIFT) - 1)) + 1;
    if (next > end || next == 0) next = end;
    uint64_t *cells = ftsan__shadow_cells(addr);
    if (FTSAN_UNLIKELY(!cells)) { /* not covered: nothing above is either */
      if ((addr >> FTSAN_CHUNK_SHIFT) >= FTSAN_L1_SIZE) return;
      addr = next;
      continue;
    }
    for (; addr < next; addr += 8, cells += FTSAN_CELLS) ftsan__check_cells(t, cells, addr, cur, pc);
  }
}

/* The general path: any size and alignment, first use of a thread or of a shadow chunk,
 * history block boundaries, statistics. Splits an access into granule-sized pieces. */
FTSAN_NOINLINE void ftsan__access(uint64_t pc, uintptr_t addr, size_t size, int is_write,
                                  int is_atomic) {
  if (FTSAN_UNLIKELY(!ftsan__race_on)) return;
  ftsan_thread *t = ftsan__thread();
  if (FTSAN_UNLIKELY(t->ignore)) return;
  ftsan__stats_add(t, pc, is_atomic ? FTSAN_EV_ATOMIC : is_write ? FTSAN_EV_WRITE : FTSAN_EV_READ);
  uint64_t e = ftsan__history_add(t, (pc & FTSAN_EV_PC_MASK) | (FTSAN_EV_TYPE_ACCESS << 62));
  uint64_t base = ftsan__cell_base(t, e, is_write, is_atomic);
  if ((size == 1 || size == 2 || size == 4 || size == 8) && (addr & 7) + size <= 8) {
    uint32_t log = size == 8 ? 3 : size == 4 ? 2 : size == 2 ? 1 : 0;
    ftsan__check_granule(t, addr, ftsan__cell_piece(base, addr, log), pc);
    return;
  }
  uintptr_t end = addr + size;
  while (addr < end) {
    if ((addr & 7) == 0 && end - addr >= 16) { /* the whole granules, then the tail */
      uintptr_t whole = end & ~(uintptr_t)7;
      granules(t, addr, whole, ftsan__cell_piece(base, 0, 3), pc);
      addr = whole;
      continue;
    }
    size_t n = 8 - (addr & 7);
    if (n > end - addr) n = end - addr;
    /* A piece becomes the largest power-of-two access that fits from its offset. */
    uint32_t log = (n >= 8 && (addr & 7) == 0) ? 3 : (n >= 4 && (addr & 3) == 0) ? 2
                   : (n >= 2 && (addr & 1) == 0) ? 1 : 0;
    ftsan__check_granule(t, addr, ftsan__cell_piece(base, addr, log), pc);
    addr += (uintptr_t)1 << log;
  }
}

/* One granule-aligned piece of an access, in the fast path: the shadow chunk exists. */
FTSAN_ALWAYS_INLINE void piece(ftsan_thread *t, uint64_t *chunk, uintptr_t addr, uint32_t log,
                               uint64_t base, uint64_t pc) {
  uint64_t *cells = chunk + ((addr & ((1u << FTSAN_CHUNK_SHIFT) - 1)) >> 3) * FTSAN_CELLS;
  ftsan__check_cells(t, cells, addr, ftsan__cell_piece(base, addr, log), pc);
}

/* The history event of an access at pc. User-space code addresses on x86-64 are below
 * 2^47, so there the PC needs no mask (the access event type is 0). */
#if defined(__x86_64__)
#define ACCESS_EVENT(pc) (pc)
#else
#define ACCESS_EVENT(pc) (((pc) & FTSAN_EV_PC_MASK) | (FTSAN_EV_TYPE_ACCESS << 62))
#endif

/* The fast path of a plain access of 1, 2, 4, 8 or 16 bytes (size a constant in each entry
 * point) that stays within one shadow chunk: one history event, then its granule pieces.
 * Everything unusual (first use by a thread or of a chunk, history block boundaries,
 * statistics, odd alignment) restarts the access in access_slow, as a tail call where
 * possible (ThreadSanitizer's TraceRestart technique). */
FTSAN_ALWAYS_INLINE void access(uint64_t pc, uintptr_t addr, uint32_t size, int is_write,
                                int is_atomic) {
  if (FTSAN_UNLIKELY(!ftsan__race_on)) return; /* contention mode: nothing to do */
  ftsan_thread *t = ftsan__cur;
  if (FTSAN_UNLIKELY(!t || t->ignore || ftsan__opt.stats))
    return ftsan__access(pc, addr, size, is_write, is_atomic);
  uint64_t e = t->epoch + 1;
  uintptr_t i1 = addr >> FTSAN_CHUNK_SHIFT;
  /* A naturally aligned access of up to 8 bytes stays within one granule, hence one chunk
   * (a misaligned one, rare, takes the general path); 16 bytes may cross into the next
   * chunk. t->hist is not checked: a thread without history is ignored (rt_thread.c). */
  int fits = size <= 8 ? (addr & (size - 1)) == 0
                       : (addr & 3) == 0 && ((addr + size - 1) >> FTSAN_CHUNK_SHIFT) == i1;
  if (FTSAN_UNLIKELY((e & (FTSAN_HIST_BLOCK - 1)) == 0 || !fits || i1 >= FTSAN_L1_SIZE))
    return ftsan__access(pc, addr, size, is_write, is_atomic);
  uint64_t *chunk = __atomic_load_n(&ftsan__shadow_l1[i1], __ATOMIC_ACQUIRE);
  if (FTSAN_UNLIKELY(!chunk)) return ftsan__access(pc, addr, size, is_write, is_atomic);
  t->epoch = e;
  t->hist[e & t->hist_mask] = ACCESS_EVENT(pc);
  uint64_t base = ftsan__cell_base(t, e, is_write, is_atomic);
  if (size <= 8) {
    piece(t, chunk, addr, size == 8 ? 3 : size == 4 ? 2 : size == 2 ? 1 : 0, base, pc);
  } else if ((addr & 7) == 0) { /* 16 bytes, as vectorized loops make them */
    piece(t, chunk, addr, 3, base, pc);
    piece(t, chunk, addr + 8, 3, base, pc);
  } else { /* 16 bytes at 4 mod 8: 4 + 8 + 4 */
    piece(t, chunk, addr, 2, base, pc);
    piece(t, chunk, addr + 4, 3, base, pc);
    piece(t, chunk, addr + 12, 2, base, pc);
  }
}

#define DEFINE_ACCESS(size)                                                                   \
  FTSAN_EXPORT void __ftsan_read##size(void *addr) { access(CALLER_PC, (uintptr_t)addr, size, 0, 0); } \
  FTSAN_EXPORT void __ftsan_write##size(void *addr) { access(CALLER_PC, (uintptr_t)addr, size, 1, 0); }
DEFINE_ACCESS(1)
DEFINE_ACCESS(2)
DEFINE_ACCESS(4)
DEFINE_ACCESS(8)
DEFINE_ACCESS(16)

FTSAN_EXPORT void __ftsan_read_range(void *addr, size_t size) {
  if (size) ftsan__access(CALLER_PC, (uintptr_t)addr, size, 0, 0);
}

FTSAN_EXPORT void __ftsan_write_range(void *addr, size_t size) {
  if (size) ftsan__access(CALLER_PC, (uintptr_t)addr, size, 1, 0);
}

static int has_release(uint32_t mo) {
  return mo == FTSAN_MO_RELEASE || mo == FTSAN_MO_ACQ_REL || mo == FTSAN_MO_SEQ_CST;
}

static int has_acquire(uint32_t mo) {
  return mo == FTSAN_MO_ACQUIRE || mo == FTSAN_MO_CONSUME || mo == FTSAN_MO_ACQ_REL ||
         mo == FTSAN_MO_SEQ_CST;
}

/* The access of an atomic instruction, through the same fast path as plain accesses (locks
 * are compare-and-swaps: the general path made each one cost twice as much). */
static void atomic_access(uint64_t pc, uintptr_t addr, uint32_t log, int is_write) {
  switch (log) {
  case 0: return access(pc, addr, 1, is_write, 1);
  case 1: return access(pc, addr, 2, is_write, 1);
  case 2: return access(pc, addr, 4, is_write, 1);
  case 3: return access(pc, addr, 8, is_write, 1);
  default: return ftsan__access(pc, addr, (size_t)1 << log, is_write, 1);
  }
}

/* Whether the location of a compare-and-swap holds the value it expects. */
static int cas_may_succeed(const void *addr, uint32_t log, uint64_t expected) {
  switch (log) {
  case 0: return __atomic_load_n((const uint8_t *)addr, __ATOMIC_RELAXED) == (uint8_t)expected;
  case 1: return __atomic_load_n((const uint16_t *)addr, __ATOMIC_RELAXED) == (uint16_t)expected;
  case 2: return __atomic_load_n((const uint32_t *)addr, __ATOMIC_RELAXED) == (uint32_t)expected;
  case 3: return __atomic_load_n((const uint64_t *)addr, __ATOMIC_RELAXED) == expected;
  default: return 1; /* 16 bytes: the expected value does not fit; publish as before */
  }
}

/* Before an atomic instruction: record the access (atomics never race with each other, but
 * do with plain accesses) and publish release semantics at the address; for a
 * compare-and-swap (expected not NULL) only when it is about to succeed. */
static void atomic_pre(uint64_t pc, void *addr, uint32_t desc, const uint64_t *expected) {
  if (FTSAN_UNLIKELY(!ftsan__race_on)) return;
  ftsan_thread *t = ftsan__thread();
  if (FTSAN_UNLIKELY(t->ignore)) return;
  uint32_t op = FTSAN_ATOMIC_OP(desc), log = FTSAN_ATOMIC_LOG2SIZE(desc);
  atomic_access(pc, (uintptr_t)addr, log, op != FTSAN_AOP_LOAD);
  if (op != FTSAN_AOP_LOAD && has_release(FTSAN_ATOMIC_MO(desc)) &&
      (!expected || cas_may_succeed(addr, log, *expected)))
    ftsan__release(t, (uintptr_t)addr);
}

FTSAN_EXPORT void __ftsan_atomic_pre(void *addr, uint32_t desc) { atomic_pre(CALLER_PC, addr, desc, NULL); }

FTSAN_EXPORT void __ftsan_atomic_pre_cas(void *addr, uint32_t desc, uint64_t expected) {
  atomic_pre(CALLER_PC, addr, desc, &expected);
}

/* After an atomic instruction: take acquire semantics at the address. */
FTSAN_EXPORT void __ftsan_atomic_post(void *addr, uint32_t desc) {
  if (FTSAN_UNLIKELY(!ftsan__race_on)) return;
  ftsan_thread *t = ftsan__thread();
  if (FTSAN_UNLIKELY(t->ignore)) return;
  uint32_t op = FTSAN_ATOMIC_OP(desc), mo = FTSAN_ATOMIC_MO(desc);
  if (op == FTSAN_AOP_CAS && !(desc & FTSAN_ATOMIC_CAS_OK)) return; /* failed: nothing read-acquired */
  if (op != FTSAN_AOP_STORE && has_acquire(mo)) ftsan__acquire(t, (uintptr_t)addr);
}

/* Fences are not modelled as synchronization (an atomic's own order is); a fence next to a
 * relaxed atomic therefore creates no edge, which can only produce a report, never hide one. */
FTSAN_EXPORT void __ftsan_fence(uint32_t mo) { (void)mo; }

FTSAN_EXPORT void __ftsan_func_entry(void *caller_pc) {
  if (FTSAN_UNLIKELY(!ftsan__race_on)) return;
  ftsan_thread *t = ftsan__thread();
  uint64_t pc = (uint64_t)(uintptr_t)caller_pc;
  ftsan__history_add(t, (pc & FTSAN_EV_PC_MASK) | (FTSAN_EV_TYPE_ENTRY << 62));
  /* Entering instrumented code from outside (from Python): remember the Python line, so
   * that a later report on an access made now can say where in Python it came from. */
  if (t->depth == 0 && !t->ignore) ftsan__history_python_entry(t);
  if (FTSAN_LIKELY(t->depth < FTSAN_SHADOW_STACK)) {
    t->stack[t->depth] = pc;
    t->frame_serial[t->depth] = ++t->next_serial;
  }
  t->depth++;
  if (FTSAN_UNLIKELY(t->ignore)) return;
  ftsan__stats_add(t, CALLER_PC, FTSAN_EV_FUNC_ENTRY);
}

FTSAN_EXPORT void __ftsan_func_exit(void) {
  if (FTSAN_UNLIKELY(!ftsan__race_on)) return;
  ftsan_thread *t = ftsan__thread();
  ftsan__history_add(t, FTSAN_EV_TYPE_EXIT << 62);
  if (FTSAN_LIKELY(t->depth > 0)) t->depth--;
}
