/* rt_race.c: the full happens-before check of one access against a granule's shadow cells
 * (the out-of-line part of ftsan__check_granule in rt_race.h). */
#include "rt_borrow.h"
#include "rt_race.h"

FTSAN_NOINLINE void ftsan__check_granule_slow(ftsan_thread *t, uint64_t *cells, uintptr_t addr,
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
