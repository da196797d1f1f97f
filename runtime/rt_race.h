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

/* Checks and records, in the four cells of one granule, an access of 1 << log bytes at
 * addr by thread t at epoch e (already in its history).
 * Fast path (private data): when every cell is empty or from this thread no race is
 * possible; the access takes the cell that records the same kind of access, or an empty
 * one, or replaces one of this thread's (forgetting an older access of the same thread can
 * only make a later report name a newer one). Cells of other threads need the full,
 * out-of-line check, which keeps this small enough to inline into every entry point. */
FTSAN_ALWAYS_INLINE void ftsan__check_cells(ftsan_thread *t, uint64_t *cells, uintptr_t addr,
                                            uint32_t log, int is_write, int is_atomic,
                                            uint64_t e, uint64_t pc) {
  uint64_t cur = CELL_MAKE(e, t->tid, addr & 7, log, is_write, is_atomic) |
                 ((uint64_t)(t->gilstate != 0) << 61);
  uint64_t me = (uint64_t)t->tid << 42;
  uint64_t c0 = __atomic_load_n(&cells[0], __ATOMIC_RELAXED);
  uint64_t c1 = __atomic_load_n(&cells[1], __ATOMIC_RELAXED);
  uint64_t c2 = __atomic_load_n(&cells[2], __ATOMIC_RELAXED);
  uint64_t c3 = __atomic_load_n(&cells[3], __ATOMIC_RELAXED);
  int foreign = (c0 && ((c0 ^ me) & FTSAN_CELL_TID_MASK)) | (c1 && ((c1 ^ me) & FTSAN_CELL_TID_MASK)) |
                (c2 && ((c2 ^ me) & FTSAN_CELL_TID_MASK)) | (c3 && ((c3 ^ me) & FTSAN_CELL_TID_MASK));
  if (FTSAN_LIKELY(!foreign)) {
    uint64_t key = cur & ~FTSAN_EPOCH_MASK;
    int slot = ((c0 & ~FTSAN_EPOCH_MASK) == key || !c0) ? 0
               : ((c1 & ~FTSAN_EPOCH_MASK) == key || !c1) ? 1
               : ((c2 & ~FTSAN_EPOCH_MASK) == key || !c2) ? 2
               : ((c3 & ~FTSAN_EPOCH_MASK) == key || !c3) ? 3 : (int)(e % FTSAN_CELLS);
    __atomic_store_n(&cells[slot], cur, __ATOMIC_RELAXED);
    return;
  }
  ftsan__check_granule_slow(t, cells, addr, cur, pc);
}

/* The same for an address whose shadow is looked up here. */
FTSAN_ALWAYS_INLINE void ftsan__check_granule(ftsan_thread *t, uintptr_t addr, uint32_t log,
                                              int is_write, int is_atomic, uint64_t e,
                                              uint64_t pc) {
  uint64_t *cells = ftsan__shadow_cells(addr);
  if (FTSAN_LIKELY(cells != NULL)) ftsan__check_cells(t, cells, addr, log, is_write, is_atomic, e, pc);
}

#endif
