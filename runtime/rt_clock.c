/* rt_clock.c: vector-clock operations and the table of synchronization objects (address ->
 * clock), a fixed array of buckets with a spin lock each. Sync objects are created on the
 * first release at an address and live until the program destroys the primitive; the table
 * is bounded, and when it is full further releases are dropped with a warning (which can only
 * cause extra reports, and the warning says so). */
#include "rt_clock.h"

#include <string.h>

#define BUCKETS (1u << 16)
#define MAX_SYNC (1u << 22)

typedef struct sync_obj {
  uintptr_t addr;
  struct sync_obj *next;   /* bucket chain, guarded by the bucket lock */
  uint32_t size;           /* entries of clock in use */
  uint32_t cap;
  uint64_t *clock;
} sync_obj;

typedef struct {
  ftsan_spin lock;
  sync_obj *head;
} bucket;

static bucket *buckets;       /* BUCKETS entries, mapped once at init */
static sync_obj *free_objs;   /* guarded by free_lock */
static ftsan_spin free_lock;
static uint32_t nsync;        /* atomic */

/* Addresses that ever had a sync object, one bit per 8-byte granule, direct-mapped (the
 * address modulo 2^24 bytes; 2^21 bits, 256 KiB): ftsan__sync_forget is called for every
 * block the interpreter frees and mostly finds nothing; a clear bit says so with one load.
 * Bits are never cleared (a set one only costs the full lookup). Not hashed: the blocks
 * freed one after the other are mostly neighbours in one allocator page, whose bits then
 * share a few cache lines (with a hash, every probe was a cache miss, two thirds of this
 * function's time). */
#define FILTER_BITS 21
static uint64_t *filter; /* mapped at init */

static uint64_t filter_bit(uintptr_t addr, uint64_t **word) {
  *word = &filter[(addr >> 9) & ((1u << (FILTER_BITS - 6)) - 1)];
  return 1ull << ((addr >> 3) & 63);
}

int ftsan__clock_init(void) {
  buckets = ftsan__map(sizeof(bucket) * BUCKETS);
  filter = ftsan__map(sizeof(uint64_t) << (FILTER_BITS - 6));
  return buckets ? 0 : -1;
}

/* The bucket locks, inline: every lock operation of the program takes one or two (the
 * out-of-line spin lock cost a call and a return each). Same protocol as ftsan__spin_lock. */
static inline void bucket_lock(bucket *b) {
  if (FTSAN_LIKELY(!__atomic_exchange_n(&b->lock.locked, 1, __ATOMIC_ACQUIRE))) return;
  ftsan__spin_lock(&b->lock);
}

static inline void bucket_unlock(bucket *b) {
  __atomic_store_n(&b->lock.locked, 0, __ATOMIC_RELEASE);
}

static bucket *bucket_of(uintptr_t addr) {
  uint64_t h = (uint64_t)addr * 0x9E3779B97F4A7C15ull;
  return &buckets[h >> (64 - 16)];
}

static uint32_t clock_len(void) {
  uint32_t n = __atomic_load_n(&ftsan__thread_count, __ATOMIC_ACQUIRE);
  return n > FTSAN_MAX_THREADS ? FTSAN_MAX_THREADS : n;
}

/* Each thread keeps a few forgotten objects for its next ones: a Python lock is often made,
 * used and freed by one thread (threading.Condition makes one per wait), and the global free
 * list's lock was taken by every thread twice per such lock. */
#define LOCAL_FREE 64
static FTSAN_TLS sync_obj *local_free;
static FTSAN_TLS uint32_t nlocal_free;
static FTSAN_TLS int local_closed; /* the thread has finished: use the global list */

/* At the end of a thread (called on that thread): its kept objects go to the global list. */
void ftsan__clock_thread_exit(void) {
  local_closed = 1;
  if (!local_free) return;
  sync_obj *last = local_free;
  while (last->next) last = last->next;
  ftsan__spin_lock(&free_lock);
  last->next = free_objs;
  free_objs = local_free;
  ftsan__spin_unlock(&free_lock);
  local_free = NULL;
  nlocal_free = 0;
}

static sync_obj *new_obj(uintptr_t addr) {
  sync_obj *s = NULL;
  if (filter) {
    uint64_t *w, bit = filter_bit(addr, &w);
    if (!(__atomic_load_n(w, __ATOMIC_RELAXED) & bit)) __atomic_fetch_or(w, bit, __ATOMIC_RELAXED);
  }
  if (local_free) {
    s = local_free;
    local_free = s->next;
    nlocal_free--;
  } else {
    ftsan__spin_lock(&free_lock);
    if (free_objs) {
      s = free_objs;
      free_objs = s->next;
    }
    ftsan__spin_unlock(&free_lock);
  }
  if (!s) {
    if (__atomic_fetch_add(&nsync, 1, __ATOMIC_RELAXED) >= MAX_SYNC) {
      static int warned;
      if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        ftsan__warn(FTSAN_WARN_GENERIC, "more than %u synchronization objects; later ones are "
                    "not tracked and may cause false reports", MAX_SYNC);
      return NULL;
    }
    s = ftsan__alloc(sizeof *s);
    if (!s) return NULL;
  }
  s->addr = addr;
  s->next = NULL;
  s->size = 0;
  return s;
}

static int grow(sync_obj *s, uint32_t need) {
  if (need <= s->cap) return 0;
  uint32_t cap = s->cap ? s->cap : 8;
  while (cap < need) cap *= 2;
  uint64_t *c = ftsan__alloc(cap * sizeof(uint64_t));
  if (!c) return -1;
  if (s->clock) memcpy(c, s->clock, s->size * sizeof(uint64_t));
  /* The old array came from the bump allocator and is not reused: clocks grow rarely
   * (only when the number of threads grows). */
  s->clock = c;
  s->cap = cap;
  return 0;
}

void ftsan__release(ftsan_thread *t, uintptr_t addr) {
  if (!buckets) return;
  t->vc[t->tid] = t->epoch;
  uint32_t n = clock_len();
  bucket *b = bucket_of(addr);
  bucket_lock(b);
  sync_obj *s = b->head;
  while (s && s->addr != addr) s = s->next;
  if (!s) {
    s = new_obj(addr);
    if (!s) {
      bucket_unlock(b);
      return;
    }
    s->next = b->head;
    b->head = s;
  }
  if (grow(s, n) == 0) {
    for (uint32_t i = s->size; i < n; i++) s->clock[i] = 0;
    if (s->size < n) s->size = n;
    for (uint32_t i = 0; i < n; i++)
      if (t->vc[i] > s->clock[i]) s->clock[i] = t->vc[i];
  }
  bucket_unlock(b);
}

void ftsan__acquire(ftsan_thread *t, uintptr_t addr) {
  if (!buckets) return;
  bucket *b = bucket_of(addr);
  bucket_lock(b);
  sync_obj *s = b->head;
  while (s && s->addr != addr) s = s->next;
  if (s)
    for (uint32_t i = 0; i < s->size; i++)
      if (s->clock[i] > t->vc[i]) t->vc[i] = s->clock[i];
  bucket_unlock(b);
}

int ftsan__sync_maybe(uintptr_t addr) {
  if (!buckets) return 0;
  if (!filter) return 1;
  uint64_t *w, bit = filter_bit(addr, &w);
  return (__atomic_load_n(w, __ATOMIC_RELAXED) & bit) != 0;
}

void ftsan__sync_forget(uintptr_t addr) {
  /* Most frees concern memory that never was a sync object: the filter, then an empty
   * bucket, say so without the lock (a racing insertion is of another address, or of a
   * live object). */
  if (!ftsan__sync_maybe(addr)) return;
  bucket *b = bucket_of(addr);
  if (!__atomic_load_n(&b->head, __ATOMIC_RELAXED)) return;
  bucket_lock(b);
  sync_obj **p = &b->head;
  while (*p && (*p)->addr != addr) p = &(*p)->next;
  sync_obj *s = *p;
  if (s) *p = s->next;
  bucket_unlock(b);
  if (s && nlocal_free < LOCAL_FREE && !local_closed) {
    s->next = local_free;
    local_free = s;
    nlocal_free++;
  } else if (s) {
    ftsan__spin_lock(&free_lock);
    s->next = free_objs;
    free_objs = s;
    ftsan__spin_unlock(&free_lock);
  }
}

void ftsan__clock_inherit(ftsan_thread *child, ftsan_thread *parent) {
  parent->vc[parent->tid] = parent->epoch;
  uint32_t n = clock_len();
  for (uint32_t i = 0; i < n; i++) child->vc[i] = parent->vc[i];
}

void ftsan__clock_join_thread(ftsan_thread *t, ftsan_thread *finished) {
  uint32_t n = clock_len();
  for (uint32_t i = 0; i < n; i++) {
    uint64_t e = __atomic_load_n(&finished->vc[i], __ATOMIC_RELAXED);
    if (e > t->vc[i]) t->vc[i] = e;
  }
}

/* In a forked child only the forking thread exists: a bucket lock another thread held at
 * the fork would never be released. */
void ftsan__clock_after_fork(void) {
  free_lock.locked = 0;
  if (buckets)
    for (uint32_t i = 0; i < BUCKETS; i++) buckets[i].lock.locked = 0;
}
