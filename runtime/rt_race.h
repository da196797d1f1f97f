/* rt_race.h: the happens-before check of one memory access against the shadow cells, and the
 * slow path that turns a conflicting pair into a race report. */
#ifndef FTSAN_RT_RACE_H
#define FTSAN_RT_RACE_H

#include "rt_shadow.h"

void ftsan__report_race(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t old, uint64_t pc);
/* A write by another thread to a container's contents while this thread's critical section on
 * it was suspended, found when this thread reads them again (rt_csguard.c). */
void ftsan__report_cs_interrupted(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t old, uint64_t pc,
                                  const uint64_t *susp, uint32_t nsusp);

/* Critical sections interrupted while C code relied on them (rt_csguard.c). The stack of
 * the suspension runs from the interpreter's detach up through the blocking call to the
 * instrumented frame that made it: deeper than an allocation stack. */
#define FTSAN_SUSPEND_STACK 48
extern FTSAN_TLS uint32_t ftsan__csguard_nwatch; /* fields watched by this thread */
void ftsan__csguard_suspended(ftsan_thread *t, const uintptr_t *mutexes, const uint64_t *since, uint32_t n);
void ftsan__csguard_end(uintptr_t mutex);
void ftsan__csguard_check(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t old, uint64_t pc);

/* The full check: compares with every cell, reports races, then records the access. Used
 * when a cell from another thread is present (shared data) and by the fast path below to
 * place an access it could not place itself. */
void ftsan__check_granule_slow(ftsan_thread *t, uint64_t *cells, uintptr_t addr, uint64_t cur,
                               uint64_t pc);

#define FTSAN_CELL_TID_MASK (0xfffull << 42)

/* The slot where an access described by cur (see CELL_MAKE) goes when no race is possible,
 * or -1 when the full check must run. No race is possible when every cell is empty or from
 * this thread; the access then takes the first cell that records the same kind of access
 * (same thread, bytes, size, read/write, atomicity, GIL flag) or is empty, and otherwise
 * replaces one of this thread's (forgetting an older access of the same thread can only
 * make a later report name a newer one). A cell from another thread (or a freed-memory
 * marker) needs the full check. */
#if defined(__SSE2__)
#include <emmintrin.h>

/* The four cells are compared at once, on their upper halves, where everything but the low
 * 32 bits of the epoch lives: thread id in bits 10..21, the kind of access in 22..29 (as
 * ThreadSanitizer compares its shadow cells with SIMD). Each cell is read with one 8-byte
 * load, as atomic as the relaxed loads of the scalar version. */
#define FTSAN_CELL_HI_TID (0xfffu << 10)
#define FTSAN_CELL_HI_KEY (~0x3ffu) /* everything above the epoch */

/* Two cells as one vector, loaded 8 bytes at a time: a 16-byte load of a cell stored a few
 * instructions earlier (the next access to the same granule) cannot be forwarded from the
 * 8-byte store and stalls (private at 1 thread: 4.96 s with 16-byte loads, 4.44 s so). */
FTSAN_ALWAYS_INLINE __m128 ftsan__load_cells2(const uint64_t *p) {
  __m128d v = _mm_castsi128_pd(_mm_loadl_epi64((const __m128i *)p));
  return _mm_castpd_ps(_mm_loadh_pd(v, (const double *)(p + 1)));
}

FTSAN_ALWAYS_INLINE int ftsan__fast_slot(const uint64_t *cells, uint64_t cur) {
  __m128 a = ftsan__load_cells2(cells), b = ftsan__load_cells2(cells + 2);
  __m128i hi = _mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
  __m128i lo = _mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
  __m128i zero = _mm_setzero_si128();
  __m128i diff = _mm_xor_si128(hi, _mm_set1_epi32((int)(uint32_t)(cur >> 32)));
  __m128i empty = _mm_cmpeq_epi32(_mm_or_si128(lo, hi), zero);
  __m128i mine = _mm_cmpeq_epi32(_mm_and_si128(diff, _mm_set1_epi32((int)FTSAN_CELL_HI_TID)), zero);
  if (FTSAN_UNLIKELY(_mm_movemask_ps(_mm_castsi128_ps(_mm_or_si128(empty, mine))) != 0xf))
    return -1;
  __m128i same = _mm_cmpeq_epi32(_mm_and_si128(diff, _mm_set1_epi32((int)FTSAN_CELL_HI_KEY)), zero);
  int m = _mm_movemask_ps(_mm_castsi128_ps(_mm_or_si128(same, empty)));
  /* Branches, not a computed index: a store whose address waits for the loads above makes
   * the next access to the same granule wait for this one; predicted branches let both run
   * ahead, as in the scalar version (with a computed index, private ran 1.6x slower). */
  if (m & 1) return 0;
  if (m & 2) return 1;
  if (m & 4) return 2;
  if (m & 8) return 3;
  return (int)(cur % FTSAN_CELLS);
}
#else
FTSAN_ALWAYS_INLINE int ftsan__fast_slot(const uint64_t *cells, uint64_t cur) {
  uint64_t c0 = __atomic_load_n(&cells[0], __ATOMIC_RELAXED);
  uint64_t c1 = __atomic_load_n(&cells[1], __ATOMIC_RELAXED);
  uint64_t c2 = __atomic_load_n(&cells[2], __ATOMIC_RELAXED);
  uint64_t c3 = __atomic_load_n(&cells[3], __ATOMIC_RELAXED);
  int foreign = (c0 && ((c0 ^ cur) & FTSAN_CELL_TID_MASK)) | (c1 && ((c1 ^ cur) & FTSAN_CELL_TID_MASK)) |
                (c2 && ((c2 ^ cur) & FTSAN_CELL_TID_MASK)) | (c3 && ((c3 ^ cur) & FTSAN_CELL_TID_MASK));
  if (FTSAN_UNLIKELY(foreign)) return -1;
  uint64_t key = cur & ~FTSAN_EPOCH_MASK;
  return ((c0 & ~FTSAN_EPOCH_MASK) == key || !c0) ? 0
         : ((c1 & ~FTSAN_EPOCH_MASK) == key || !c1) ? 1
         : ((c2 & ~FTSAN_EPOCH_MASK) == key || !c2) ? 2
         : ((c3 & ~FTSAN_EPOCH_MASK) == key || !c3) ? 3 : (int)(cur % FTSAN_CELLS);
}
#endif

/* The part of a cell that is the same for every piece of one access: epoch, thread, kind.
 * It is computed once per access: the stores into the shadow keep the compiler from keeping
 * thread fields in registers from one piece to the next. */
FTSAN_ALWAYS_INLINE uint64_t ftsan__cell_base(ftsan_thread *t, uint64_t e, int is_write,
                                              int is_atomic) {
  uint64_t base = CELL_MAKE(e, t->tid, 0, 0, is_write, is_atomic);
  if (FTSAN_UNLIKELY(t->gilstate)) base |= 1ull << 61; /* a branch: cheaper than the flag */
  return base;
}

/* The cell of a piece of 1 << log bytes at addr of an access with that base. */
FTSAN_ALWAYS_INLINE uint64_t ftsan__cell_piece(uint64_t base, uintptr_t addr, uint32_t log) {
  /* (addr & 7) << 54 as two shifts: no 64-bit mask constant to load */
  return base | (((uint64_t)addr << 61) >> 7) | ((uint64_t)log << 57);
}

/* Checks and records, in the four cells of one granule, the access cur (a cell value, its
 * epoch already in the history of thread t). The fast path (private data) is small enough
 * to inline into every entry point; cells of other threads need the full, out-of-line
 * check. */
FTSAN_ALWAYS_INLINE void ftsan__check_cells(ftsan_thread *t, uint64_t *cells, uintptr_t addr,
                                            uint64_t cur, uint64_t pc) {
  int slot = ftsan__fast_slot(cells, cur);
  if (FTSAN_LIKELY(slot >= 0)) {
    __atomic_store_n(&cells[slot], cur, __ATOMIC_RELAXED);
    return;
  }
  ftsan__check_granule_slow(t, cells, addr, cur, pc);
}

/* The same for an address whose shadow is looked up here. */
FTSAN_ALWAYS_INLINE void ftsan__check_granule(ftsan_thread *t, uintptr_t addr, uint64_t cur,
                                              uint64_t pc) {
  uint64_t *cells = ftsan__shadow_cells(addr);
  if (FTSAN_LIKELY(cells != NULL)) ftsan__check_cells(t, cells, addr, cur, pc);
}

#endif
