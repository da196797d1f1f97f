/* rt_heap.c: heap blocks allocated by instrumented code. The pass redirects calls to malloc,
 * calloc, realloc, free and the PyMem_* allocators in instrumented modules to the wrappers
 * here, which remember each live block with its size, thread and allocation stack (the
 * instrumented frames of the shadow stack, so the cost is a copy, not an unwind). A race
 * inside such a block is then described as "heap block of N bytes allocated at ...". Blocks
 * freed by other code are forgotten by the free interceptor and the mi_free hook. */
#define _GNU_SOURCE 1
#include "rt_heap.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS (1u << 14)

typedef struct block {
  ftsan_heap_block b;
  struct block *next;
} block;

typedef struct {
  ftsan_spin lock;
  block *head;
} bucket;

static bucket *buckets;     /* mapped on first use */
static block *free_blocks;  /* guarded by free_lock */
static ftsan_spin free_lock;
static uint32_t live;       /* atomic: blocks in the table; 0 lets free() skip the lookup */

static bucket *bucket_of(uintptr_t p) {
  return &buckets[((uint64_t)p * 0x9E3779B97F4A7C15ull) >> (64 - 14)];
}

static void remember(void *p, size_t n, uint64_t pc) {
  if (!p || !ftsan__race_on) return;
  ftsan_thread *t = ftsan__thread();
  if (t->ignore) return;
  if (!buckets) {
    bucket *b = ftsan__map(sizeof(bucket) * BUCKETS);
    bucket *expected = NULL;
    if (!b || !__atomic_compare_exchange_n(&buckets, &expected, b, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      if (b) ftsan__unmap(b, sizeof(bucket) * BUCKETS);
    if (!buckets) return;
  }
  block *blk = NULL;
  ftsan__spin_lock(&free_lock);
  if (free_blocks) {
    blk = free_blocks;
    free_blocks = blk->next;
  }
  ftsan__spin_unlock(&free_lock);
  if (!blk && !(blk = ftsan__alloc(sizeof *blk))) return;
  blk->b.addr = (uintptr_t)p;
  blk->b.size = n;
  blk->b.tid = t->tid;
  uint32_t k = 0;
  blk->b.stack[k++] = pc;
  uint32_t top = t->depth < FTSAN_SHADOW_STACK ? t->depth : FTSAN_SHADOW_STACK;
  for (uint32_t i = top; i > 0 && k < FTSAN_HEAP_STACK; i--) blk->b.stack[k++] = t->stack[i - 1];
  blk->b.nstack = k;
  bucket *b = bucket_of((uintptr_t)p);
  ftsan__spin_lock(&b->lock);
  blk->next = b->head;
  b->head = blk;
  ftsan__spin_unlock(&b->lock);
  __atomic_fetch_add(&live, 1, __ATOMIC_RELAXED);
}

void ftsan__heap_forget(uintptr_t p) {
  if (!p || !__atomic_load_n(&live, __ATOMIC_RELAXED) || !buckets) return;
  bucket *b = bucket_of(p);
  /* Every block the interpreter frees comes here: an empty bucket says "not ours" without
   * the lock (a racing insertion is of another, live block). */
  if (!__atomic_load_n(&b->head, __ATOMIC_RELAXED)) return;
  ftsan__spin_lock(&b->lock);
  block **pp = &b->head;
  while (*pp && (*pp)->b.addr != p) pp = &(*pp)->next;
  block *blk = *pp;
  if (blk) *pp = blk->next;
  ftsan__spin_unlock(&b->lock);
  if (!blk) return;
  __atomic_fetch_sub(&live, 1, __ATOMIC_RELAXED);
  ftsan__spin_lock(&free_lock);
  blk->next = free_blocks;
  free_blocks = blk;
  ftsan__spin_unlock(&free_lock);
}

int ftsan__heap_find(uintptr_t addr, ftsan_heap_block *out) {
  if (!buckets || !__atomic_load_n(&live, __ATOMIC_RELAXED)) return 0;
  /* Reports are rare: a scan of every live block is fine here. */
  for (uint32_t i = 0; i < BUCKETS; i++) {
    bucket *b = &buckets[i];
    if (!__atomic_load_n(&b->head, __ATOMIC_RELAXED)) continue;
    ftsan__spin_lock(&b->lock);
    for (block *blk = b->head; blk; blk = blk->next)
      if (addr >= blk->b.addr && addr < blk->b.addr + (blk->b.size ? blk->b.size : 1)) {
        *out = blk->b;
        ftsan__spin_unlock(&b->lock);
        return 1;
      }
    ftsan__spin_unlock(&b->lock);
  }
  return 0;
}

/* ---- the wrappers the pass redirects to ------------------------------------------------- */
#define CALLER_PC ((uint64_t)(uintptr_t)__builtin_return_address(0))

static void *(*py_malloc)(size_t), *(*py_calloc)(size_t, size_t), *(*py_realloc)(void *, size_t);
static void (*py_free)(void *);
static void *(*raw_malloc)(size_t), *(*raw_calloc)(size_t, size_t), *(*raw_realloc)(void *, size_t);
static void (*raw_free)(void *);

#define RESOLVE(var, name)                                                          \
  do {                                                                              \
    if (FTSAN_UNLIKELY(!var)) {                                                     \
      *(void **)&var = dlsym(RTLD_DEFAULT, name);                                   \
      if (!var) {                                                                   \
        ftsan__log("ftsan: fatal: the extension calls " name ", which this process " \
                   "does not have");                                                \
        ftsan__halt(1);                                                             \
      }                                                                             \
    }                                                                               \
  } while (0)

FTSAN_EXPORT void *__ftsan_malloc(size_t n) {
  void *p = malloc(n);
  remember(p, n, CALLER_PC);
  return p;
}

FTSAN_EXPORT void *__ftsan_calloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  remember(p, n * size, CALLER_PC);
  return p;
}

/* The old block is forgotten before the call: afterwards its address may already belong to
 * another thread's block. A failed realloc only loses the old block's description. */
FTSAN_EXPORT void *__ftsan_realloc(void *old, size_t n) {
  ftsan__heap_forget((uintptr_t)old);
  void *p = realloc(old, n);
  remember(p, n, CALLER_PC);
  return p;
}

FTSAN_EXPORT void __ftsan_free(void *p) {
  ftsan__heap_forget((uintptr_t)p);
  free(p);
}

#define DEFINE_PY_ALLOCATORS(prefix, m, c, r, f, mname, cname, rname, fname) \
  FTSAN_EXPORT void *__ftsan_##prefix##Malloc(size_t n) {                   \
    RESOLVE(m, mname);                                                      \
    void *p = m(n);                                                         \
    remember(p, n, CALLER_PC);                                              \
    return p;                                                               \
  }                                                                         \
  FTSAN_EXPORT void *__ftsan_##prefix##Calloc(size_t n, size_t size) {      \
    RESOLVE(c, cname);                                                      \
    void *p = c(n, size);                                                   \
    remember(p, n * size, CALLER_PC);                                       \
    return p;                                                               \
  }                                                                         \
  FTSAN_EXPORT void *__ftsan_##prefix##Realloc(void *old, size_t n) {       \
    RESOLVE(r, rname);                                                      \
    ftsan__heap_forget((uintptr_t)old);                                     \
    void *p = r(old, n);                                                    \
    remember(p, n, CALLER_PC);                                              \
    return p;                                                               \
  }                                                                         \
  FTSAN_EXPORT void __ftsan_##prefix##Free(void *p) {                       \
    RESOLVE(f, fname);                                                      \
    ftsan__heap_forget((uintptr_t)p);                                       \
    f(p);                                                                   \
  }
DEFINE_PY_ALLOCATORS(PyMem_, py_malloc, py_calloc, py_realloc, py_free, "PyMem_Malloc",
                     "PyMem_Calloc", "PyMem_Realloc", "PyMem_Free")
DEFINE_PY_ALLOCATORS(PyMem_Raw, raw_malloc, raw_calloc, raw_realloc, raw_free,
                     "PyMem_RawMalloc", "PyMem_RawCalloc", "PyMem_RawRealloc", "PyMem_RawFree")

/* In a forked child: see ftsan__clock_after_fork. */
void ftsan__heap_after_fork(void) {
  free_lock.locked = 0;
  if (buckets)
    for (uint32_t i = 0; i < BUCKETS; i++) buckets[i].lock.locked = 0;
}
