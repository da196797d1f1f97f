/* rt_shadow.c: maps shadow memory lazily: a first-level table over the whole address space
 * (reserved, not committed) and 4 MiB second-level chunks created on first access. */
#include "rt_shadow.h"

#include <string.h>
#include <sys/mman.h>

uint64_t **ftsan__shadow_l1;

#define CHUNK_BYTES ((size_t)(1u << FTSAN_CHUNK_SHIFT) / 8 * FTSAN_CELLS * sizeof(uint64_t))

int ftsan__shadow_init(void) {
  ftsan__shadow_l1 = ftsan__map(FTSAN_L1_SIZE * sizeof(uint64_t *));
  return ftsan__shadow_l1 ? 0 : -1;
}

uint64_t *ftsan__shadow_chunk_slow(uintptr_t addr) {
  if (!ftsan__shadow_l1) return NULL;
  uintptr_t i1 = addr >> FTSAN_CHUNK_SHIFT;
  uint64_t *chunk = ftsan__map(CHUNK_BYTES);
  if (!chunk) {
    static int warned;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
      ftsan__warn(FTSAN_WARN_GENERIC, "cannot map shadow memory; some accesses are not checked");
    return NULL;
  }
  uint64_t *expected = NULL;
  if (!__atomic_compare_exchange_n(&ftsan__shadow_l1[i1], &expected, chunk, 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    ftsan__unmap(chunk, CHUNK_BYTES); /* another thread installed one first */
    return expected;
  }
  return chunk;
}

void ftsan__shadow_clear(uintptr_t addr, size_t size) {
  if (!ftsan__shadow_l1 || size == 0) return;
  uintptr_t end = addr + size;
  if (end < addr || (end >> FTSAN_CHUNK_SHIFT) > FTSAN_L1_SIZE) return;
  uintptr_t g = addr & ~(uintptr_t)7;
  while (g < end) {
    uintptr_t chunk_end = (g | ((1u << FTSAN_CHUNK_SHIFT) - 1)) + 1;
    uintptr_t stop = end < chunk_end ? end : chunk_end;
    uint64_t *chunk = __atomic_load_n(&ftsan__shadow_l1[g >> FTSAN_CHUNK_SHIFT], __ATOMIC_ACQUIRE);
    if (chunk) {
      uint64_t *first = chunk + ((g & ((1u << FTSAN_CHUNK_SHIFT) - 1)) >> 3) * FTSAN_CELLS;
      size_t n = ((stop - g + 7) >> 3) * FTSAN_CELLS;
      /* Very large frees give whole pages back instead of writing zeroes into them; below
       * 4 MiB of shadow, zeroing is cheaper than the page faults that would follow (a
       * benchmark freeing 64 KiB buffers spent 600 thousand faults on it). */
      if (n * 8 >= (4u << 20)) {
        uintptr_t lo = ((uintptr_t)first + 4095) & ~(uintptr_t)4095;
        uintptr_t hi = ((uintptr_t)(first + n)) & ~(uintptr_t)4095;
        memset(first, 0, lo - (uintptr_t)first);
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
        memset((void *)hi, 0, (uintptr_t)(first + n) - hi);
      } else {
        /* Only cells that hold something are written: most blocks the interpreter frees
         * were never touched by instrumented code, and a store into their shadow would
         * dirty (on first use, fault in) a shadow page for nothing. */
        for (size_t i = 0; i < n; i += FTSAN_CELLS) {
          uint64_t any = 0;
          for (size_t k = 0; k < FTSAN_CELLS; k++) any |= __atomic_load_n(&first[i + k], __ATOMIC_RELAXED);
          if (any)
            for (size_t k = 0; k < FTSAN_CELLS; k++) __atomic_store_n(&first[i + k], 0, __ATOMIC_RELAXED);
        }
      }
    }
    g = stop;
  }
}
