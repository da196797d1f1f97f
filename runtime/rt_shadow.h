/* rt_shadow.h: shadow memory: for every 8-byte granule of application memory, four 64-bit
 * cells describing recent accesses to it (which thread, at which epoch, which bytes, read or
 * write, atomic or not), found through a two-level table that is filled lazily. */
#ifndef FTSAN_RT_SHADOW_H
#define FTSAN_RT_SHADOW_H

#include "rt_internal.h"

/* Cell layout; 0 means empty (epochs start at 1):
 *   bits  0..41 epoch of the access in its thread (the thread's event counter)
 *   bits 42..53 thread id
 *   bits 54..56 offset of the first byte in the granule
 *   bits 57..58 log2 of the size (1, 2, 4, 8 bytes)
 *   bit  59     write
 *   bit  60     atomic
 *   bit  61     made between PyGILState_Ensure and PyGILState_Release (report detail only) */
#define FTSAN_CELLS 4
#define FTSAN_EPOCH_BITS 42
#define FTSAN_EPOCH_MASK ((1ull << FTSAN_EPOCH_BITS) - 1)
#define CELL_EPOCH(c) ((c) & FTSAN_EPOCH_MASK)
#define CELL_TID(c) ((uint32_t)((c) >> 42) & 0xfff)
#define CELL_OFF(c) ((uint32_t)((c) >> 54) & 7)
#define CELL_LOG(c) ((uint32_t)((c) >> 57) & 3)
#define CELL_WRITE(c) (((c) >> 59) & 1)
#define CELL_ATOMIC(c) (((c) >> 60) & 1)
#define CELL_GILSTATE(c) (((c) >> 61) & 1)
/* A cell of this thread id marks memory of a freed object that some thread had borrowed;
 * its epoch field is the index of the free in rt_borrow.c's table. */
#define FTSAN_FREED_TID 4095u
#define CELL_MAKE(epoch, tid, off, log, w, a)                                           \
  (((uint64_t)(epoch) & FTSAN_EPOCH_MASK) | ((uint64_t)(tid) << 42) |                  \
   ((uint64_t)(off) << 54) | ((uint64_t)(log) << 57) | ((uint64_t)(w) << 59) |         \
   ((uint64_t)(a) << 60))

/* Application addresses covered: the 47-bit user half of x86-64 and aarch64 (48-bit VA). */
#define FTSAN_APP_BITS 47
#define FTSAN_CHUNK_SHIFT 20 /* one second-level chunk shadows 1 MiB */
#define FTSAN_L1_SIZE (1ull << (FTSAN_APP_BITS - FTSAN_CHUNK_SHIFT))

extern FTSAN_HIDDEN uint64_t **ftsan__shadow_l1; /* entries installed once by CAS, never removed */

uint64_t *ftsan__shadow_chunk_slow(uintptr_t addr);
int ftsan__shadow_init(void);
/* Forget every access recorded for [addr, addr+size): the memory was freed. */
void ftsan__shadow_clear(uintptr_t addr, size_t size);

/* Whether no shadow exists for the MiB holding addr nor for the next one: a block smaller
 * than 1 MiB starting at addr was then never touched by instrumented code. */
FTSAN_ALWAYS_INLINE int ftsan__shadow_none_near(uintptr_t addr) {
  uintptr_t i1 = addr >> FTSAN_CHUNK_SHIFT;
  return i1 + 1 < FTSAN_L1_SIZE && !__atomic_load_n(&ftsan__shadow_l1[i1], __ATOMIC_RELAXED) &&
         !__atomic_load_n(&ftsan__shadow_l1[i1 + 1], __ATOMIC_RELAXED);
}

/* The four cells of the granule holding addr, or NULL for addresses outside the covered
 * range (or when no shadow could be mapped). */
FTSAN_ALWAYS_INLINE uint64_t *ftsan__shadow_cells(uintptr_t addr) {
  uintptr_t i1 = addr >> FTSAN_CHUNK_SHIFT;
  if (FTSAN_UNLIKELY(i1 >= FTSAN_L1_SIZE)) return NULL;
  uint64_t *chunk = __atomic_load_n(&ftsan__shadow_l1[i1], __ATOMIC_ACQUIRE);
  if (FTSAN_UNLIKELY(!chunk)) chunk = ftsan__shadow_chunk_slow(addr);
  if (FTSAN_UNLIKELY(!chunk)) return NULL;
  return chunk + ((addr & ((1u << FTSAN_CHUNK_SHIFT) - 1)) >> 3) * FTSAN_CELLS;
}

#endif
