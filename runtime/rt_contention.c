/* rt_contention.c: reference-count and lock contention. Free-threaded CPython counts
 * references with biased reference counting: the owning thread updates ob_ref_local with a
 * plain store, every other thread does an atomic on ob_ref_shared, and many threads doing
 * that to one object bounce its cache line between cores. This file counts, per thread,
 * who touches which object's count from where (instrumented call sites via
 * __ftsan_refcount; the interpreter's own cross-thread decrefs via a patch on
 * _Py_DecRefShared, attributed to the running Python line), and which locks made threads
 * wait, for how long (critical-section and PyMutex slow paths, threading.Lock, pthread
 * mutexes). Counting happens in per-thread tables without locks; the tables go to the trace
 * when the thread ends (REFCOUNT, LOCK, TYPE and PYSITE records). */
#define _GNU_SOURCE 1
#include "rt_contention.h"

#include <string.h>
#include <time.h>

#define RC_TABLE (1u << 13)
#define LK_TABLE (1u << 10)
#define PYSITE_CACHE 256
#define GLOBAL_TABLE (1u << 14)

typedef struct rc_slot { uint64_t object, type, site; uint32_t flags, used; uint64_t count; } rc_slot;
typedef struct lk_slot {
  uint64_t lock, object, type, site;
  uint32_t flags, used;
  uint64_t waits, wait_ns, max_wait_ns;
} lk_slot;
typedef struct pysite_cache_entry { uintptr_t code; int offset; uint64_t ident, id; } pysite_cache_entry;
/* A frame state (frame, instruction pointer) already resolved to a Python line. */
#define SITE_MEMO 64
typedef struct site_memo { uintptr_t frame, ip; uint64_t id; } site_memo;
/* An object whose type was already looked up (with system-call reads). */
#define TYPE_MEMO 16
typedef struct type_memo { uintptr_t object; uint64_t type; } type_memo;

/* Per thread; the thread is the only writer, the flush at its end the only reader. */
typedef struct contention_state {
  rc_slot *rc;
  lk_slot *lk;
  rc_slot *last;                 /* the slot counted last */
  site_memo memo[SITE_MEMO];     /* frame states python_site resolved */
  site_memo cmemo[SITE_MEMO];    /* the same for creation sites */
  uint64_t rc_dropped, lk_dropped;
  pysite_cache_entry pysites[PYSITE_CACHE];
  type_memo types[TYPE_MEMO];    /* lock owners' types */
} contention_state;

static FTSAN_TLS uint64_t sync_site; /* call site of the C-API wrapper running, or 0 */

int ftsan__contention_on;           /* written once at init */

#define ALLOC_TABLE (1u << 16) /* 1 MiB: 2^20 slots doubled the peak RSS of small programs */
#define ALLOC_WAYS 4
#define ALLOC_HOT (1ull << 63)  /* in an entry's site word: the object was seen in use */
static uint64_t (*alloc_table)[2];  /* object -> creating line; mapped once at init */
static void mark_in_use(uint64_t object);

/* Types already written to the trace: a global set under one lock, reached only on a
 * thread's first sight of a type. */
static ftsan_spin seen_lock;
static ftsan_spin flush_lock;       /* guards the flush buffer */
static uint64_t *seen_types;        /* GLOBAL_TABLE entries, guarded by seen_lock */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The TLS thread pointer: what CPython stores in ob_tid for the owning thread. */
static inline uintptr_t thread_pointer(void) {
  uintptr_t tp;
#if defined(__x86_64__)
  __asm__("mov %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
  __asm__("mrs %0, tpidr_el0" : "=r"(tp));
#else
  tp = 0;
#endif
  return tp;
}

static contention_state *state(ftsan_thread *t) {
  contention_state *s = t->contention;
  if (FTSAN_LIKELY(s)) return s;
  s = ftsan__map(sizeof *s);
  if (!s) return NULL;
  s->rc = ftsan__map(sizeof(rc_slot) * RC_TABLE);
  s->lk = ftsan__map(sizeof(lk_slot) * LK_TABLE);
  if (!s->rc || !s->lk) return NULL;
  __atomic_store_n(&t->contention, s, __ATOMIC_RELEASE);
  return s;
}

static uint64_t hash3(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full ^ c;
  return h ^ (h >> 29);
}

static void write_type(uint64_t type) {
  if (!type) return;
  ftsan__spin_lock(&seen_lock);
  if (!seen_types) seen_types = ftsan__map(sizeof(uint64_t) * GLOBAL_TABLE);
  int fresh = 0;
  if (seen_types) {
    for (uint32_t i = 0; i < 64; i++) {
      uint64_t *slot = &seen_types[(hash3(type, 0, 0) + i) & (GLOBAL_TABLE - 1)];
      if (*slot == type) break;
      if (*slot == 0) {
        *slot = type;
        fresh = 1;
        break;
      }
    }
  }
  ftsan__spin_unlock(&seen_lock);
  if (!fresh) return;
  const char *name = *(const char *const *)(uintptr_t)(type + FTSAN_PY_TP_NAME);
  uint64_t tp_flags = *(const uint64_t *)(uintptr_t)(type + FTSAN_PY_TP_FLAGS);
  char buf[sizeof(struct ftsan_rec_type) + 256 + 8];
  size_t len = name ? strnlen(name, 255) + 1 : 1;
  uint32_t size = (uint32_t)((sizeof(struct ftsan_rec_type) + len + 7) & ~7u);
  memset(buf, 0, size);
  struct ftsan_rec_type *r = (struct ftsan_rec_type *)buf;
  r->h.kind = FTSAN_REC_TYPE;
  r->h.size = size;
  r->type = type;
  r->flags = (tp_flags & FTSAN_PY_TPFLAGS_HEAPTYPE) ? 0 : 1;
  r->name_len = (uint32_t)len;
  if (name) memcpy(buf + sizeof *r, name, len - 1);
  ftsan__trace_write(buf, size);
}

/* The id of a Python line: a per-thread cache in front of the global interning (and its
 * lock) in rt_pysite.c. */
static uint64_t cached_pysite(contention_state *s, uintptr_t code, int offset) {
  pysite_cache_entry *c = &s->pysites[hash3(code, (uint64_t)offset, 0) & (PYSITE_CACHE - 1)];
  uint64_t ident = ftsan__python_code_ident(code); /* a later code object at the same address */
  if (c->code == code && c->offset == offset && c->ident == ident) return c->id;
  uint64_t id = ftsan__pysite(code, offset);
  c->code = code;
  c->offset = offset;
  c->ident = ident;
  c->id = id;
  return id;
}

static site_memo *memo_slot(site_memo *table, uintptr_t frame, uintptr_t ip) {
  return &table[hash3(frame, ip, 0) & (SITE_MEMO - 1)];
}

static void memo_set(site_memo *m, uintptr_t frame, uintptr_t ip, uint64_t id) {
  m->frame = frame;
  m->ip = ip;
  m->id = id;
}

/* The id of the Python line now running in this thread, 0 if none. */
static uint64_t python_site(contention_state *s) {
  /* Loops decref at the same instructions again and again, and a function called again at
   * the same depth gets the same frame: a memo on the frame and its instruction pointer
   * avoids finding the code object (measured: the frame walk was 6% of a lock-heavy Python
   * workload; with a one-entry memo 9 decrefs in 10 missed in the pysync benchmark). Only
   * a Python frame of its own is memoized: the instruction pointer then names its line,
   * while a C-stack frame's line is its caller's, which changes from call to call. */
  uintptr_t frame, ip;
  if (!ftsan__python_frame_key(&frame, &ip)) return 0;
  site_memo *m = memo_slot(s->memo, frame, ip);
  if (m->frame == frame && m->ip == ip) return m->id;
  uintptr_t code;
  int offset;
  int own = ftsan__python_frame_code(frame, ip, &code, &offset);
  if (!own && !ftsan__python_frame_from(frame, &code, &offset)) return 0;
  uint64_t id = cached_pysite(s, code, offset);
  if (own) memo_set(m, frame, ip, id);
  return id;
}

static int32_t rc_period = 1; /* written once at init: ftsan__opt.refcount_sample */
int32_t ftsan__contention_interp_period = 1; /* written once at init */

void ftsan__contention_init(void) {
  alloc_table = ftsan__map(sizeof(uint64_t[2]) * ALLOC_TABLE);
  int n = ftsan__opt.refcount_sample;
  /* contention mode is the cheap one; a prime period, so that operations repeating in a
   * fixed pattern (an incref here, a decref there) are all sampled in turn */
  if (n <= 0) n = ftsan__race_on ? 1 : 17;
  rc_period = n;
  /* The interpreter's own shared decrefs (the _Py_DecRefShared patch) are counted in full
   * in contention mode, where they are the point. Race mode patches them only when
   * refcount_sample is set (rt_hooks.c): a sample costs about 110 ns (the Python line, the
   * object's counters, the per-thread table), the pysync benchmark makes 63 such decrefs
   * per iteration, and even 1 in 61 cost 8 % of its time at 2 threads. */
  ftsan__contention_interp_period = ftsan__opt.refcount_sample > 0 ? ftsan__opt.refcount_sample : 1;
}

static void count_refcount(contention_state *s, uint64_t object, uint64_t type, uint64_t site,
                           uint32_t flags, uint64_t weight) {
  /* Loops touch the same object from the same site: the last slot first. */
  rc_slot *last = s->last;
  if (last && last->object == object && last->site == site && last->flags == flags) {
    last->count += weight;
    return;
  }
  uint64_t h = hash3(object, site, flags);
  for (uint32_t i = 0; i < 32; i++) {
    rc_slot *e = &s->rc[(h + i) & (RC_TABLE - 1)];
    if (e->used && e->object == object && e->site == site && e->flags == flags) {
      e->count += weight;
      s->last = e;
      return;
    }
    if (!e->used) {
      write_type(type);
      mark_in_use(object);
      e->used = 1;
      e->object = object;
      e->type = type;
      e->site = site;
      e->flags = flags;
      e->count = weight;
      s->last = e;
      return;
    }
  }
  s->rc_dropped++;
}

/* Free-threaded PyObject header: ob_tid @0, ob_gc_bits @11, ob_ref_local @12,
 * ob_ref_shared @16, ob_type @24. */
static uint32_t classify(const char *op, uint32_t flags) {
  uint32_t local = __atomic_load_n((const uint32_t *)(op + 12), __ATOMIC_RELAXED);
  if (local == UINT32_MAX) return flags | FTSAN_RCF_IMMORTAL;
  uintptr_t tid = __atomic_load_n((const uintptr_t *)op, __ATOMIC_RELAXED);
  flags |= tid == thread_pointer() ? FTSAN_RCF_OWNER : FTSAN_RCF_SHARED;
  if (__atomic_load_n((const uint8_t *)(op + 11), __ATOMIC_RELAXED) & 64) flags |= FTSAN_RCF_DEFERRED;
  int64_t shared = __atomic_load_n((const int64_t *)(op + 16), __ATOMIC_RELAXED);
  if ((shared & 3) == 2) flags |= FTSAN_RCF_QUEUED;
  if ((shared & 3) == 3) flags |= FTSAN_RCF_MERGED;
  return flags;
}

/* Sampling (refcount_sample=N): the call site calls every Nth operation (its countdown is
 * inline, in the instrumented module) and each call counts N times. */
FTSAN_EXPORT uint32_t __ftsan_refcount(void *op, uint32_t kind) {
  if (!op || !ftsan__contention_on) return (uint32_t)rc_period;
  ftsan_thread *t = ftsan__thread();
  if (t->ignore) return (uint32_t)rc_period;
  contention_state *s = state(t);
  if (!s) return (uint32_t)rc_period;
  const char *o = op;
  uint32_t flags = classify(o, kind == FTSAN_RC_DECREF ? FTSAN_RCF_DECREF : 0);
  uint64_t type = *(const uint64_t *)(o + 24);
  count_refcount(s, (uint64_t)(uintptr_t)op, type, (uint64_t)(uintptr_t)__builtin_return_address(0), flags,
                 (uint64_t)rc_period);
  return (uint32_t)rc_period;
}

/* From the _Py_DecRefShared patch: a decref by a thread that does not own op, anywhere in
 * the process. Calls from instrumented code were already counted at their call site. */
void ftsan__contention_decref_shared(void *op, uint64_t caller) {
  if (!op || !ftsan__contention_on) return;
  ftsan_thread *t = ftsan__thread();
  if (t->ignore) return;
  contention_state *s = state(t);
  if (!s) return;
  /* Decrefs of instrumented code were counted at their call site already (a sample that
   * lands on one is dropped; the interpreter's own are sampled evenly all the same). */
  if (ftsan__modules_is_instrumented(caller)) return;
  t->ignore++; /* resolving a Python line may call into the interpreter */
  uint64_t site = python_site(s);
  t->ignore--;
  const char *o = op;
  uint32_t flags = classify(o, FTSAN_RCF_DECREF | FTSAN_RCF_INTERP) | (site ? FTSAN_RCF_PYSITE : 0);
  count_refcount(s, (uint64_t)(uintptr_t)op, *(const uint64_t *)(o + 24), site, flags,
                 (uint64_t)ftsan__contention_interp_period);
}

void ftsan__contention_set_sync_site(uint64_t pc) { sync_site = pc; }

/* ---- where objects were created ------------------------------------------------------------
 * The _Py_NewReference patch (every new object, freelist reuse included) stores the running
 * Python line per object in a global table of 4-way sets. A later object at the same
 * address replaces the entry, which is right: it is the one alive. Otherwise a new object
 * takes an empty way, or one whose object was never seen in use: an object that reference
 * counting or a lock wait has met (marked hot) stays, so the temporaries a loop churns
 * through cannot evict the long-lived shared objects that ftsan top asks about. Entries are
 * two words, written site first and read object-site-object, so a torn pair is detected. */

static uint64_t (*alloc_set(uintptr_t op))[2] {
  return &alloc_table[(((uint64_t)op * 0x9E3779B97F4A7C15ull) >> (64 - 14)) * ALLOC_WAYS];
}

static void record_creation(uintptr_t op, uint64_t site) {
  uint64_t (*set)[2] = alloc_set(op);
  int way = -1;
  for (int w = 0; w < ALLOC_WAYS && way < 0; w++)
    if (__atomic_load_n(&set[w][0], __ATOMIC_RELAXED) == op) way = w;
  for (int w = 0; w < ALLOC_WAYS && way < 0; w++)
    if (__atomic_load_n(&set[w][0], __ATOMIC_RELAXED) == 0) way = w;
  for (int k = 0; k < ALLOC_WAYS && way < 0; k++) {
    int w = (int)((op >> 4) + (uintptr_t)k) & (ALLOC_WAYS - 1); /* spread the victims */
    if (!(__atomic_load_n(&set[w][1], __ATOMIC_RELAXED) & ALLOC_HOT)) way = w;
  }
  /* Four objects seen in use: keep them. (Their entries stay until their addresses are
   * reused; in a long run a set full of dead objects that were once in use records no new
   * creations. Ageing them made a loop's temporaries evict live shared objects again.) */
  if (way < 0) return;
  __atomic_store_n(&set[way][0], 0, __ATOMIC_RELAXED);
  __atomic_store_n(&set[way][1], site, __ATOMIC_RELAXED);
  __atomic_store_n(&set[way][0], (uint64_t)op, __ATOMIC_RELEASE);
}

/* The object was met by reference counting or a lock wait: keep its creation site. */
static void mark_in_use(uint64_t object) {
  if (!alloc_table || !object) return;
  uint64_t (*set)[2] = alloc_set((uintptr_t)object);
  for (int w = 0; w < ALLOC_WAYS; w++)
    if (__atomic_load_n(&set[w][0], __ATOMIC_RELAXED) == object) {
      __atomic_fetch_or(&set[w][1], ALLOC_HOT, __ATOMIC_RELAXED);
      return;
    }
}

void ftsan__contention_object_created(void *op) {
  if (!alloc_table || !op || !ftsan__contention_on) return;
  ftsan_thread *t = ftsan__cur;
  if (!t || t->ignore) return;
  contention_state *s = state(t);
  if (!s) return;
  uintptr_t frame, ip;
  if (!ftsan__python_frame_key(&frame, &ip)) return;
  uint64_t site;
  site_memo *m = memo_slot(s->cmemo, frame, ip);
  if (m->frame == frame && m->ip == ip) {
    site = m->id;
  } else {
    uintptr_t code = 0, own_code;
    int offset = 0, own_offset;
    t->ignore++;
    site = ftsan__python_frame_outside_imports(frame, &code, &offset) ? cached_pysite(s, code, offset) : 0;
    t->ignore--;
    /* Memoized only when the answer is the current frame's own line (not an importer's,
     * not a C-stack frame's caller's): that is what the instruction pointer determines. */
    if (site && ftsan__python_frame_code(frame, ip, &own_code, &own_offset) && own_code == code &&
        own_offset == offset)
      memo_set(m, frame, ip, site);
  }
  if (site) record_creation((uintptr_t)op, site);
}

static uint64_t created_at(uint64_t object) {
  if (!alloc_table || !object) return 0;
  uint64_t (*set)[2] = alloc_set((uintptr_t)object);
  for (int w = 0; w < ALLOC_WAYS; w++) {
    if (__atomic_load_n(&set[w][0], __ATOMIC_ACQUIRE) != object) continue;
    uint64_t site = __atomic_load_n(&set[w][1], __ATOMIC_RELAXED) & ~ALLOC_HOT;
    return __atomic_load_n(&set[w][0], __ATOMIC_ACQUIRE) == object ? site : 0;
  }
  return 0;
}

/* A lock acquisition that waited wait_ns. The site is the instrumented call that asked for
 * the lock if there is one (sync_site), else the running Python line. */
void ftsan__contention_lock_wait(uintptr_t lock, uintptr_t object, uint32_t flags, uint64_t wait_ns) {
  if (!ftsan__contention_on) return;
  ftsan_thread *t = ftsan__thread();
  if (t->ignore) return;
  contention_state *s = state(t);
  if (!s) return;
  uint64_t site = sync_site;
  if (!site) {
    t->ignore++;
    site = python_site(s);
    t->ignore--;
    if (site) flags |= FTSAN_LKF_PYSITE;
  }
  uint64_t type = 0;
  if (object) {
    /* A memo per thread: an object freed and another made at its address may be named
     * with the old type, which only mislabels a contention row. */
    type_memo *m = &s->types[(object >> 4) % TYPE_MEMO];
    if (m->object != object) {
      m->object = object;
      m->type = ftsan__pyobject_type(object);
    }
    type = m->type;
  }
  if (!type) object = 0;
  if (flags & FTSAN_LKW_MAYBE_OBJECT) {
    flags &= ~FTSAN_LKW_MAYBE_OBJECT;
    if (type) flags = (flags & ~FTSAN_LKF_PYMUTEX) | FTSAN_LKF_CRITICAL_SECTION;
  }
  uint64_t h = hash3(lock, site, flags);
  for (uint32_t i = 0; i < 32; i++) {
    lk_slot *e = &s->lk[(h + i) & (LK_TABLE - 1)];
    if (e->used && e->lock == lock && e->site == site && e->flags == flags) {
      e->waits++;
      e->wait_ns += wait_ns;
      if (wait_ns > e->max_wait_ns) e->max_wait_ns = wait_ns;
      return;
    }
    if (!e->used) {
      if (type) write_type(type);
      mark_in_use(object);
      *e = (lk_slot){lock, object, type, site, flags, 1, 1, wait_ns, wait_ns};
      return;
    }
  }
  s->lk_dropped++;
}

uint64_t ftsan__contention_now(void) { return now_ns(); }

/* Writes n entries of esize bytes as one record of `kind`. REFCOUNT and LOCK records share
 * the header {tid, count, dropped}; OBJECT records use {count, pad}. The caller holds
 * flush_lock, which guards the buffer. */
enum { CHUNK = 128 };
static char flush_buf[sizeof(struct ftsan_rec_lock) + CHUNK * sizeof(struct ftsan_lock_entry)];

static void write_entries(uint32_t kind, uint32_t tid, uint64_t dropped, const void *entries,
                          uint32_t n, size_t esize) {
  size_t hdr = kind == FTSAN_REC_OBJECT ? sizeof(struct ftsan_rec_object) : sizeof(struct ftsan_rec_refcount);
  memset(flush_buf, 0, hdr);
  struct ftsan_rec_header *h = (struct ftsan_rec_header *)flush_buf;
  h->kind = kind;
  h->size = (uint32_t)(hdr + n * esize);
  if (kind == FTSAN_REC_OBJECT) {
    ((struct ftsan_rec_object *)flush_buf)->count = n;
  } else {
    struct ftsan_rec_refcount *r = (struct ftsan_rec_refcount *)flush_buf;
    r->tid = tid;
    r->count = n;
    r->dropped = dropped;
  }
  memcpy(flush_buf + hdr, entries, n * esize);
  ftsan__trace_write(flush_buf, h->size);
}

void ftsan__contention_flush(ftsan_thread *t) {
  contention_state *s = __atomic_load_n(&t->contention, __ATOMIC_ACQUIRE);
  if (!s) return;
  ftsan__spin_lock(&flush_lock);
  struct ftsan_refcount_entry rc[CHUNK];
  struct ftsan_lock_entry lk[CHUNK];
  struct ftsan_object_entry ob[CHUNK];
  uint32_t nrc = 0, nlk = 0, nob = 0;
  uint64_t rc_dropped = s->rc_dropped, lk_dropped = s->lk_dropped;
  if (rc_dropped) write_entries(FTSAN_REC_REFCOUNT, t->tid, rc_dropped, rc, 0, sizeof rc[0]);
  if (lk_dropped) write_entries(FTSAN_REC_LOCK, t->tid, lk_dropped, lk, 0, sizeof lk[0]);
  for (uint32_t i = 0; i < RC_TABLE + LK_TABLE; i++) {
    uint64_t obj;
    if (i < RC_TABLE) {
      const rc_slot *e = &s->rc[i];
      if (!e->used) continue;
      rc[nrc++] = (struct ftsan_refcount_entry){e->object, e->type, e->site, e->flags, 0, e->count};
      obj = e->object;
      if (nrc == CHUNK) write_entries(FTSAN_REC_REFCOUNT, t->tid, 0, rc, nrc, sizeof rc[0]), nrc = 0;
    } else {
      const lk_slot *e = &s->lk[i - RC_TABLE];
      if (!e->used) continue;
      lk[nlk++] = (struct ftsan_lock_entry){e->lock, e->object, e->type, e->site, e->flags, 0,
                                            e->waits, e->wait_ns, e->max_wait_ns};
      obj = e->object;
      if (nlk == CHUNK) write_entries(FTSAN_REC_LOCK, t->tid, 0, lk, nlk, sizeof lk[0]), nlk = 0;
    }
    /* Where the object was created, when the runtime saw it. */
    uint64_t site = created_at(obj);
    if (site) {
      ob[nob++] = (struct ftsan_object_entry){obj, site};
      if (nob == CHUNK) write_entries(FTSAN_REC_OBJECT, 0, 0, ob, nob, sizeof ob[0]), nob = 0;
    }
  }
  if (nrc) write_entries(FTSAN_REC_REFCOUNT, t->tid, 0, rc, nrc, sizeof rc[0]);
  if (nlk) write_entries(FTSAN_REC_LOCK, t->tid, 0, lk, nlk, sizeof lk[0]);
  if (nob) write_entries(FTSAN_REC_OBJECT, 0, 0, ob, nob, sizeof ob[0]);
  ftsan__spin_unlock(&flush_lock);
  /* The tables stay mapped: a thread flushed at exit may still be running. Clearing them
   * makes a second flush write nothing twice. */
  for (uint32_t i = 0; i < RC_TABLE; i++)
    if (s->rc[i].used) memset(&s->rc[i], 0, sizeof s->rc[i]); /* only pages in use */
  s->last = NULL;
  for (uint32_t i = 0; i < LK_TABLE; i++)
    if (s->lk[i].used) memset(&s->lk[i], 0, sizeof s->lk[i]);
  s->rc_dropped = s->lk_dropped = 0;
}

void ftsan__contention_after_fork(void) {
  seen_lock.locked = 0;
  flush_lock.locked = 0;
}
