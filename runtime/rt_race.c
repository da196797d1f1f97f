/* rt_race.c: the full happens-before check of one access against a granule's shadow cells
 * (the out-of-line part of ftsan__check_granule in rt_race.h). */
#include "rt_borrow.h"
#include "rt_race.h"

/* The check as a loop over the cells, with the marks of freed memory (rare): a mark is
 * checked for a use after free and then serves as an empty cell. */
static FTSAN_NOINLINE void check_with_freed(ftsan_thread *t, uint64_t *cells, uintptr_t addr,
                                           uint64_t cur, uint64_t pc) {
  uint32_t off = CELL_OFF(cur), size = 1u << CELL_LOG(cur);
  uint64_t is_write = CELL_WRITE(cur), is_atomic = CELL_ATOMIC(cur);
  int stored = 0;
  for (int i = 0; i < FTSAN_CELLS; i++) {
    uint64_t old = __atomic_load_n(&cells[i], __ATOMIC_RELAXED);
    if (FTSAN_UNLIKELY(CELL_TID(old) == FTSAN_FREED_TID)) {
      ftsan__borrow_check_freed(t, &cells[i], addr, cur, pc);
      old = 0;
    }
    if (old == 0) {
      if (!stored) {
        __atomic_store_n(&cells[i], cur, __ATOMIC_RELAXED);
        stored = 1;
      }
      continue;
    }
    uint32_t ooff = CELL_OFF(old), osize = 1u << CELL_LOG(old);
    if (ooff >= off + size || off >= ooff + osize) continue; /* different bytes */
    if (CELL_TID(old) == t->tid) {
      /* Same thread: program order. A newer access of the same range replaces an older one
       * unless that one was a write and this is a read (the write stays: it conflicts with
       * more). */
      if (!stored && ooff == off && osize == size && CELL_ATOMIC(old) == is_atomic &&
          CELL_WRITE(old) <= is_write) {
        __atomic_store_n(&cells[i], cur, __ATOMIC_RELAXED);
        stored = 1;
      }
      continue;
    }
    if (!CELL_WRITE(old) && !is_write) continue;          /* two reads */
    if (CELL_ATOMIC(old) && is_atomic) continue;           /* two atomics */
    if (CELL_EPOCH(old) <= t->vc[CELL_TID(old)]) {         /* ordered by happens-before */
      if (FTSAN_UNLIKELY(ftsan__csguard_nwatch)) ftsan__csguard_check(t, addr, cur, old, pc);
      continue;
    }
    ftsan__report_race(t, addr, cur, old, pc);
  }
  if (!stored) __atomic_store_n(&cells[CELL_EPOCH(cur) % FTSAN_CELLS], cur, __ATOMIC_RELAXED);
}

/* Whether two cells' byte ranges meet (a piece need not be aligned to its size: the
 * general path keeps a misaligned access that fits in its granule whole). */
FTSAN_ALWAYS_INLINE int cells_overlap(uint64_t a, uint64_t b) {
  uint32_t oa = CELL_OFF(a), ob = CELL_OFF(b);
  return oa < ob + (1u << CELL_LOG(b)) && ob < oa + (1u << CELL_LOG(a));
}

/* One cell of another thread against the access cur: reports a race unless both are
 * reads, both atomic, the bytes differ, or the cell's access happens before. Returns
 * whether cur supersedes the cell (FastTrack's rule): the cell's access happens before cur,
 * cur is plain and covers the cell's bytes, and cur is a write or both are reads. Any later
 * access that would race with the cell's access then races with cur too (it cannot happen
 * before cur, which was checked first), so the cell can make room: the shadow of data
 * handed from thread to thread under a lock shrinks to the last accesses, and the next
 * access checks one cell instead of four. A write that happened before a read is kept
 * (a later read racing with the write does not race with the read). */
FTSAN_ALWAYS_INLINE int check_foreign(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t old,
                                      uint64_t pc) {
  if (!((old | cur) & CELL_MAKE(0, 0, 0, 0, 1, 0))) {        /* two reads */
    if (CELL_EPOCH(old) > t->vc[CELL_TID(old)]) return 0;
    goto supersede;
  }
  if (old & cur & CELL_MAKE(0, 0, 0, 0, 0, 1)) return 0;     /* two atomics */
  if (!cells_overlap(old, cur)) return 0;                    /* different bytes */
  if (CELL_EPOCH(old) <= t->vc[CELL_TID(old)]) {              /* ordered by happens-before */
    if (FTSAN_UNLIKELY(ftsan__csguard_nwatch)) ftsan__csguard_check(t, addr, cur, old, pc);
    if (!CELL_WRITE(cur)) return 0;
    goto supersede;
  }
  ftsan__report_race(t, addr, cur, old, pc);
  return 0;
supersede:
  if (CELL_ATOMIC(cur)) return 0;
  uint32_t oo = CELL_OFF(old), co = CELL_OFF(cur);
  return co <= oo && oo + (1u << CELL_LOG(old)) <= co + (1u << CELL_LOG(cur));
}

/* The same decisions as check_with_freed, with the four cells read once and the store made
 * at the end: a store in the middle made the compiler reload the thread's fields for every
 * cell after it (185 instructions a call; this path runs for every access to shared data).
 * The access goes to the first cell that is empty or that it may replace: one of this
 * thread's with the same bytes and atomicity, unless that one is a write and this a read
 * (the write stays: it conflicts with more). Cells of other threads are checked after
 * that pass, so that a mark of freed memory among them is found before any report. */
FTSAN_NOINLINE void ftsan__check_granule_slow(ftsan_thread *t, uint64_t *cells, uintptr_t addr,
                                              uint64_t cur, uint64_t pc) {
  uint64_t c[FTSAN_CELLS];
  uint64_t same_kind = CELL_MAKE(0, 0, 7, 3, !CELL_WRITE(cur), 1);
  uint32_t me = t->tid;
  int slot = -1;
  unsigned foreign = 0, freed = 0;
#pragma GCC unroll 4
  for (int i = 0; i < FTSAN_CELLS; i++) {
    uint64_t old = c[i] = __atomic_load_n(&cells[i], __ATOMIC_RELAXED);
    if (old == 0) {
      if (slot < 0) slot = i;
    } else if (CELL_TID(old) == me) {
      if (slot < 0 && ((old ^ cur) & same_kind) == 0) slot = i;
    } else {
      foreign |= 1u << i;
      freed |= CELL_TID(old) == FTSAN_FREED_TID;
    }
  }
  if (FTSAN_UNLIKELY(freed)) return check_with_freed(t, cells, addr, cur, pc);
  unsigned superseded = 0;
  for (; foreign; foreign &= foreign - 1) {
    int i = __builtin_ctz(foreign);
    if (check_foreign(t, addr, cur, c[i], pc)) superseded |= 1u << i;
  }
  if (slot < 0) {
    if (superseded) {
      slot = __builtin_ctz(superseded);
      superseded &= superseded - 1;
    } else {
      slot = (int)(CELL_EPOCH(cur) % FTSAN_CELLS);
    }
  }
  __atomic_store_n(&cells[slot], cur, __ATOMIC_RELAXED);
  /* Cleared only if still what was checked: another thread may have stored meanwhile. A
   * reload, not a compare-and-swap: the shadow is updated without locks anyway (two threads
   * storing into one cell at once lose one access), and a locked instruction per cleared
   * cell cost 2-3 % of a lock-heavy benchmark. */
  for (; superseded; superseded &= superseded - 1) {
    int i = __builtin_ctz(superseded);
    if (__atomic_load_n(&cells[i], __ATOMIC_RELAXED) == c[i]) __atomic_store_n(&cells[i], 0, __ATOMIC_RELAXED);
  }
}
