/* rt_race.h: the happens-before check of one memory access against the shadow cells, and the
 * slow path that turns a conflicting pair into a race report. */
#ifndef FTSAN_RT_RACE_H
#define FTSAN_RT_RACE_H

#include "rt_shadow.h"

void ftsan__report_race(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t old, uint64_t pc);

/* Checks and records an access of 1 << log bytes at addr, inside one granule, by thread t
 * at epoch e (already in its history). */
FTSAN_ALWAYS_INLINE void ftsan__check_granule(ftsan_thread *t, uintptr_t addr, uint32_t log,
                                              int is_write, int is_atomic, uint64_t e,
                                              uint64_t pc) {
  uint64_t *cells = ftsan__shadow_cells(addr);
  if (FTSAN_UNLIKELY(!cells)) return;
  uint32_t off = (uint32_t)(addr & 7);
  uint32_t size = 1u << log;
  uint64_t cur = CELL_MAKE(e, t->tid, off, log, is_write, is_atomic) | ((uint64_t)(t->gilstate != 0) << 61);
  int stored = 0;
  for (int i = 0; i < FTSAN_CELLS; i++) {
    uint64_t old = __atomic_load_n(&cells[i], __ATOMIC_RELAXED);
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
      if (!stored && ooff == off && osize == size && CELL_ATOMIC(old) == (uint64_t)is_atomic &&
          (CELL_WRITE(old) <= (uint64_t)is_write)) {
        __atomic_store_n(&cells[i], cur, __ATOMIC_RELAXED);
        stored = 1;
      }
      continue;
    }
    if (!CELL_WRITE(old) && !is_write) continue;     /* two reads */
    if (CELL_ATOMIC(old) && is_atomic) continue;      /* two atomics */
    if (CELL_EPOCH(old) <= t->vc[CELL_TID(old)]) continue; /* ordered by happens-before */
    ftsan__report_race(t, addr, cur, old, pc);
  }
  if (!stored) __atomic_store_n(&cells[e % FTSAN_CELLS], cur, __ATOMIC_RELAXED);
}

#endif
