/* rt_intercept.c: libc interceptors (LD_PRELOAD works for libc: it comes after the preloaded
 * runtime in lookup order, also for calls from inside the python executable): pthread
 * mutexes, read-write locks, condition variables and POSIX semaphores give happens-before;
 * free and realloc forget the shadow of freed blocks so that reuse is not a race.
 * In CPython 3.13, threading.Lock and everything built on it (RLock, Condition, Event, Queue,
 * Barrier, Thread.join) ends in sem_wait/sem_post, so these edges cover Python-level
 * synchronization too (docs/cpython-facts.md). */
#define _GNU_SOURCE 1
#include "rt_clock.h"
#include "rt_contention.h"
#include "rt_heap.h"
#include "rt_shadow.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

extern void __libc_free(void *);
extern void *__libc_realloc(void *, size_t);

/* The thread to record for, or NULL when nothing must be recorded (analysis off, runtime
 * inside itself). */
static inline ftsan_thread *recording_thread(void) {
  if (FTSAN_UNLIKELY(!ftsan__race_on)) return NULL;
  ftsan_thread *t = ftsan__cur;
  if (!t) t = ftsan__thread_adopt();
  return t->ignore ? NULL : t;
}

#define REAL(name) real_##name
#define DECLARE_REAL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__)
#define RESOLVE(name)                                                     \
  do {                                                                    \
    if (FTSAN_UNLIKELY(!real_##name))                                     \
      *(void **)&real_##name = dlsym(RTLD_NEXT, #name);                   \
  } while (0)
#define RESOLVE_V(name, version)                                          \
  do {                                                                    \
    if (FTSAN_UNLIKELY(!real_##name)) {                                   \
      *(void **)&real_##name = dlvsym(RTLD_NEXT, #name, version);         \
      if (!real_##name) *(void **)&real_##name = dlsym(RTLD_NEXT, #name); \
    }                                                                     \
  } while (0)

/* ---- acquire after success / release before ------------------------------------------- */
#define ACQUIRE_ON_SUCCESS(rc, obj)                                       \
  do {                                                                    \
    if ((rc) == 0) {                                                      \
      ftsan_thread *t_ = recording_thread();                              \
      if (t_) ftsan__acquire(t_, (uintptr_t)(obj));                       \
    }                                                                     \
  } while (0)
#define RELEASE(obj)                                                      \
  do {                                                                    \
    ftsan_thread *t_ = recording_thread();                                \
    if (t_) ftsan__release(t_, (uintptr_t)(obj));                         \
  } while (0)

DECLARE_REAL(int, pthread_mutex_lock, pthread_mutex_t *);
DECLARE_REAL(int, pthread_mutex_trylock, pthread_mutex_t *);
DECLARE_REAL(int, pthread_mutex_timedlock, pthread_mutex_t *, const struct timespec *);
DECLARE_REAL(int, pthread_mutex_unlock, pthread_mutex_t *);
DECLARE_REAL(int, pthread_mutex_destroy, pthread_mutex_t *);

FTSAN_EXPORT int pthread_mutex_lock(pthread_mutex_t *m) {
  RESOLVE(pthread_mutex_lock);
  RESOLVE(pthread_mutex_trylock);
  /* Contention: a lock that is not free at once is timed. */
  ftsan_thread *self = ftsan__cur;
  if (ftsan__contention_on && self && !self->ignore) {
    int tr = REAL(pthread_mutex_trylock)(m);
    if (tr == 0) {
      ACQUIRE_ON_SUCCESS(0, m);
      return 0;
    }
    if (tr == EBUSY) {
      uint64_t t0 = ftsan__contention_now();
      int rc = REAL(pthread_mutex_lock)(m);
      ftsan__contention_lock_wait((uintptr_t)m, 0, FTSAN_LKF_PTHREAD, ftsan__contention_now() - t0);
      ACQUIRE_ON_SUCCESS(rc, m);
      return rc;
    }
  }
  int rc = REAL(pthread_mutex_lock)(m);
  ACQUIRE_ON_SUCCESS(rc, m);
  return rc;
}

FTSAN_EXPORT int pthread_mutex_trylock(pthread_mutex_t *m) {
  RESOLVE(pthread_mutex_trylock);
  int rc = REAL(pthread_mutex_trylock)(m);
  ACQUIRE_ON_SUCCESS(rc, m);
  return rc;
}

FTSAN_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *ts) {
  RESOLVE(pthread_mutex_timedlock);
  int rc = REAL(pthread_mutex_timedlock)(m, ts);
  ACQUIRE_ON_SUCCESS(rc, m);
  return rc;
}

FTSAN_EXPORT int pthread_mutex_unlock(pthread_mutex_t *m) {
  RESOLVE(pthread_mutex_unlock);
  RELEASE(m);
  return REAL(pthread_mutex_unlock)(m);
}

FTSAN_EXPORT int pthread_mutex_destroy(pthread_mutex_t *m) {
  RESOLVE(pthread_mutex_destroy);
  if (ftsan__enabled) ftsan__sync_forget((uintptr_t)m);
  return REAL(pthread_mutex_destroy)(m);
}

DECLARE_REAL(int, pthread_rwlock_rdlock, pthread_rwlock_t *);
DECLARE_REAL(int, pthread_rwlock_wrlock, pthread_rwlock_t *);
DECLARE_REAL(int, pthread_rwlock_tryrdlock, pthread_rwlock_t *);
DECLARE_REAL(int, pthread_rwlock_trywrlock, pthread_rwlock_t *);
DECLARE_REAL(int, pthread_rwlock_unlock, pthread_rwlock_t *);

#define RWLOCK_ACQUIRE(name)                                              \
  FTSAN_EXPORT int name(pthread_rwlock_t *l) {                            \
    RESOLVE(name);                                                        \
    int rc = REAL(name)(l);                                               \
    ACQUIRE_ON_SUCCESS(rc, l);                                            \
    return rc;                                                            \
  }
RWLOCK_ACQUIRE(pthread_rwlock_rdlock)
RWLOCK_ACQUIRE(pthread_rwlock_wrlock)
RWLOCK_ACQUIRE(pthread_rwlock_tryrdlock)
RWLOCK_ACQUIRE(pthread_rwlock_trywrlock)

FTSAN_EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *l) {
  RESOLVE(pthread_rwlock_unlock);
  RELEASE(l);
  return REAL(pthread_rwlock_unlock)(l);
}

/* A wait gives the mutex up inside libc and takes it back before returning: release it
 * before, acquire it (and what signallers released into the condition) after. */
DECLARE_REAL(int, pthread_cond_wait, pthread_cond_t *, pthread_mutex_t *);
DECLARE_REAL(int, pthread_cond_timedwait, pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
DECLARE_REAL(int, pthread_cond_clockwait, pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
DECLARE_REAL(int, pthread_cond_signal, pthread_cond_t *);
DECLARE_REAL(int, pthread_cond_broadcast, pthread_cond_t *);

static void cond_after_wait(pthread_cond_t *c, pthread_mutex_t *m) {
  ftsan_thread *t = recording_thread();
  if (!t) return;
  ftsan__acquire(t, (uintptr_t)m);
  ftsan__acquire(t, (uintptr_t)c);
}

FTSAN_EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) {
  RESOLVE_V(pthread_cond_wait, "GLIBC_2.3.2");
  RELEASE(m);
  int rc = REAL(pthread_cond_wait)(c, m);
  cond_after_wait(c, m);
  return rc;
}

FTSAN_EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *ts) {
  RESOLVE_V(pthread_cond_timedwait, "GLIBC_2.3.2");
  RELEASE(m);
  int rc = REAL(pthread_cond_timedwait)(c, m, ts);
  cond_after_wait(c, m);
  return rc;
}

FTSAN_EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clk,
                                        const struct timespec *ts) {
  RESOLVE(pthread_cond_clockwait);
  RELEASE(m);
  int rc = REAL(pthread_cond_clockwait)(c, m, clk, ts);
  cond_after_wait(c, m);
  return rc;
}

FTSAN_EXPORT int pthread_cond_signal(pthread_cond_t *c) {
  RESOLVE_V(pthread_cond_signal, "GLIBC_2.3.2");
  RELEASE(c);
  return REAL(pthread_cond_signal)(c);
}

FTSAN_EXPORT int pthread_cond_broadcast(pthread_cond_t *c) {
  RESOLVE_V(pthread_cond_broadcast, "GLIBC_2.3.2");
  RELEASE(c);
  return REAL(pthread_cond_broadcast)(c);
}

DECLARE_REAL(int, sem_wait, sem_t *);
DECLARE_REAL(int, sem_trywait, sem_t *);
DECLARE_REAL(int, sem_timedwait, sem_t *, const struct timespec *);
DECLARE_REAL(int, sem_clockwait, sem_t *, clockid_t, const struct timespec *);
DECLARE_REAL(int, sem_post, sem_t *);
DECLARE_REAL(int, sem_destroy, sem_t *);

FTSAN_EXPORT int sem_wait(sem_t *s) {
  RESOLVE(sem_wait);
  int rc = REAL(sem_wait)(s);
  ACQUIRE_ON_SUCCESS(rc, s);
  return rc;
}

FTSAN_EXPORT int sem_trywait(sem_t *s) {
  RESOLVE(sem_trywait);
  int rc = REAL(sem_trywait)(s);
  ACQUIRE_ON_SUCCESS(rc, s);
  return rc;
}

FTSAN_EXPORT int sem_timedwait(sem_t *s, const struct timespec *ts) {
  RESOLVE(sem_timedwait);
  int rc = REAL(sem_timedwait)(s, ts);
  ACQUIRE_ON_SUCCESS(rc, s);
  return rc;
}

FTSAN_EXPORT int sem_clockwait(sem_t *s, clockid_t clk, const struct timespec *ts) {
  RESOLVE(sem_clockwait);
  int rc = REAL(sem_clockwait)(s, clk, ts);
  ACQUIRE_ON_SUCCESS(rc, s);
  return rc;
}

FTSAN_EXPORT int sem_post(sem_t *s) {
  RESOLVE(sem_post);
  RELEASE(s);
  return REAL(sem_post)(s);
}

FTSAN_EXPORT int sem_destroy(sem_t *s) {
  RESOLVE(sem_destroy);
  if (ftsan__enabled) ftsan__sync_forget((uintptr_t)s);
  return REAL(sem_destroy)(s);
}

/* ---- heap: a freed block's accesses are forgotten ---------------------------------------- */
FTSAN_EXPORT void free(void *p) {
  if (p && ftsan__race_on) {
    ftsan__heap_forget((uintptr_t)p);
    ftsan__shadow_clear((uintptr_t)p, malloc_usable_size(p));
  }
  __libc_free(p);
}

FTSAN_EXPORT void *realloc(void *p, size_t n) {
  size_t old = (p && ftsan__race_on) ? malloc_usable_size(p) : 0;
  if (old) ftsan__heap_forget((uintptr_t)p);
  void *q = __libc_realloc(p, n);
  /* Moved: the old block is free. Shrunk in place: its tail is. */
  if (old && q && q != p) ftsan__shadow_clear((uintptr_t)p, old);
  else if (old && q == p && n < old) ftsan__shadow_clear((uintptr_t)p + n, old - n);
  return q;
}
