/* rt_alloc.c: the runtime's own memory: page mappings and a bump allocator for small,
 * long-lived blocks, so that the runtime never calls (or re-enters) the host's malloc. */
#include "rt_internal.h"

#include <string.h>
#include <sched.h>
#include <sys/mman.h>

#define CHUNK_SIZE (1u << 20)

static ftsan_spin alloc_lock;
static char *chunk_pos, *chunk_end; /* guarded by alloc_lock */

/* Spins, then yields: with more threads than cores the holder may have been preempted, and
 * spinning until its next time slice would waste ours. */
void ftsan__spin_lock(ftsan_spin *l) {
  unsigned spins = 0;
  while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
    while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED)) {
      if (++spins % 128 == 0) sched_yield();
      else __builtin_ia32_pause();
    }
}

void ftsan__spin_unlock(ftsan_spin *l) { __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE); }

void *ftsan__map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void ftsan__unmap(void *p, size_t size) {
  if (p) munmap(p, size);
}

void *ftsan__alloc(size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (size >= CHUNK_SIZE / 4) return ftsan__map(size);
  ftsan__spin_lock(&alloc_lock);
  if (!chunk_pos || (size_t)(chunk_end - chunk_pos) < size) {
    char *c = ftsan__map(CHUNK_SIZE);
    if (!c) {
      ftsan__spin_unlock(&alloc_lock);
      return NULL;
    }
    chunk_pos = c;
    chunk_end = c + CHUNK_SIZE;
  }
  void *p = chunk_pos;
  chunk_pos += size;
  ftsan__spin_unlock(&alloc_lock);
  return p;
}

void ftsan__alloc_after_fork(void) { alloc_lock.locked = 0; }
