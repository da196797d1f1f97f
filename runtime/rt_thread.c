/* rt_thread.c: thread contexts: creation through the pthread_create interceptor, adoption
 * of threads the runtime did not see start, and the end of a thread (its stats flushed and a
 * THREAD record written). */
#define _GNU_SOURCE 1
#include "rt_clock.h"
#include "rt_contention.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

FTSAN_TLS ftsan_thread *ftsan__cur;
ftsan_thread *ftsan__threads[FTSAN_MAX_THREADS];
uint32_t ftsan__thread_count;

static int (*real_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static pthread_key_t exit_key;           /* written once at init */
static int exit_key_ok;

static ftsan_thread *thread_new(uint32_t parent) {
  uint32_t tid = __atomic_fetch_add(&ftsan__thread_count, 1, __ATOMIC_RELAXED);
  if (tid >= FTSAN_MAX_THREADS - 1) { /* the last id marks freed memory (rt_shadow.h) */
    /* Beyond the table the thread is not tracked: it shares a catch-all context whose
     * events are still counted but never attributed. */
    static ftsan_thread overflow;
    static int warned;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
      ftsan__warn(FTSAN_WARN_GENERIC, "more than %d threads; later threads are not analysed",
                  FTSAN_MAX_THREADS);
    overflow.tid = FTSAN_MAX_THREADS - 1;
    overflow.ignore = 1;
    return &overflow;
  }
  ftsan_thread *t = ftsan__map(sizeof(ftsan_thread));
  if (!t) return NULL;
  t->vc = ftsan__map(sizeof(uint64_t) * FTSAN_MAX_THREADS);
  if (!t->vc || (ftsan__race_on && ftsan__history_alloc(t) != 0)) {
    /* Without a clock the thread cannot take part in happens-before: ignore it. */
    ftsan__warn(FTSAN_WARN_GENERIC, "cannot allocate thread state; a thread is not analysed");
    t->ignore = 1;
    if (!t->vc) t->vc = ftsan__map(sizeof(uint64_t) * FTSAN_MAX_THREADS);
  }
  t->tid = tid;
  t->parent_tid = parent;
  __atomic_store_n(&ftsan__threads[tid], t, __ATOMIC_RELEASE);
  return t;
}

static void capture_creation_stack(ftsan_thread *parent, ftsan_thread *t, int skip) {
  void *pcs[40];
  parent->ignore++;
  int n = unw_backtrace(pcs, 40);
  parent->ignore--;
  uint32_t k = 0;
  for (int i = skip; i < n && k < 32; i++) t->creation_stack[k++] = (uint64_t)(uintptr_t)pcs[i];
  t->creation_depth = k;
}

static void thread_bind(ftsan_thread *t) {
  t->os_tid = (uint64_t)syscall(SYS_gettid);
  t->pthread = (uint64_t)pthread_self();
  ftsan__cur = t;
  /* The key's destructor runs at thread exit, including pthread_exit. */
  if (exit_key_ok) pthread_setspecific(exit_key, t);
}

static void on_thread_exit(void *p) { ftsan__thread_finish(p); }

void ftsan__threads_init(void) {
  real_pthread_create = dlsym(RTLD_NEXT, "pthread_create");
  exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
  ftsan_thread *main_thread = thread_new(UINT32_MAX);
  if (main_thread) thread_bind(main_thread);
}

ftsan_thread *ftsan__thread_adopt(void) {
  ftsan__init_once();
  ftsan_thread *t = ftsan__cur;
  if (t) return t;
  t = thread_new(UINT32_MAX);
  if (!t) {
    static ftsan_thread dummy = {.ignore = 1};
    return &dummy;
  }
  thread_bind(t);
  return t;
}

static void write_thread_record(ftsan_thread *t) {
  char name[64] = "";
  if (t->pyname[0]) snprintf(name, sizeof name, "%s", t->pyname);
  else if (t->pthread) pthread_getname_np((pthread_t)t->pthread, name, sizeof name);
  size_t name_len = strlen(name) + 1;
  uint32_t npy = t->creation_py_len;
  uint32_t size = (uint32_t)((sizeof(struct ftsan_rec_thread) + 8u * (t->creation_depth + npy) + name_len + 7) & ~7u);
  char buf[sizeof(struct ftsan_rec_thread) + 8 * (32 + 16) + 64 + 8];
  memset(buf, 0, size);
  struct ftsan_rec_thread *r = (struct ftsan_rec_thread *)buf;
  r->h.kind = FTSAN_REC_THREAD;
  r->h.size = size;
  r->tid = t->tid;
  r->parent_tid = t->parent_tid;
  r->os_tid = t->os_tid;
  r->name_len = (uint32_t)name_len;
  r->stack_len = t->creation_depth;
  r->py_len = npy;
  memcpy(buf + sizeof *r, t->creation_stack, 8u * t->creation_depth);
  memcpy(buf + sizeof *r + 8u * t->creation_depth, t->creation_py, 8u * npy);
  memcpy(buf + sizeof *r + 8u * (t->creation_depth + npy), name, name_len);
  ftsan__trace_write(buf, size);
}

void ftsan__thread_finish(ftsan_thread *t) {
  if (!t || __atomic_exchange_n(&t->finished, 1, __ATOMIC_ACQ_REL)) return;
  t->ignore++;
  if (t->vc) __atomic_store_n(&t->vc[t->tid], t->epoch, __ATOMIC_RELEASE);
  ftsan__stats_flush(t);
  ftsan__contention_flush(t);
  write_thread_record(t);
  if (t == ftsan__cur) ftsan__clock_thread_exit();
  t->ignore--;
}

/* At exit: threads that are still running (daemon threads, the main thread) are reported
 * from the exiting thread; their names are then unknown, which is why the record of the
 * exiting thread is written by itself. */
void ftsan__threads_flush_all(void) {
  ftsan_thread *self = ftsan__cur;
  if (self) ftsan__thread_finish(self);
  uint32_t n = __atomic_load_n(&ftsan__thread_count, __ATOMIC_ACQUIRE);
  if (n > FTSAN_MAX_THREADS) n = FTSAN_MAX_THREADS;
  for (uint32_t i = 0; i < n; i++) {
    ftsan_thread *t = __atomic_load_n(&ftsan__threads[i], __ATOMIC_ACQUIRE);
    if (t && !__atomic_exchange_n(&t->finished, 1, __ATOMIC_ACQ_REL)) {
      if (t->vc) __atomic_store_n(&t->vc[t->tid], t->epoch, __ATOMIC_RELEASE);
      ftsan__stats_flush(t);
      ftsan__contention_flush(t);
      write_thread_record(t);
    }
  }
}

struct start_args {
  void *(*fn)(void *);
  void *arg;
  ftsan_thread *t;
};

static void *thread_start(void *p) {
  struct start_args a = *(struct start_args *)p;
  /* The args block came from ftsan__alloc and is small; it is not reused. */
  thread_bind(a.t);
  return a.fn(a.arg);
}

FTSAN_EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                                void *arg) {
  if (FTSAN_UNLIKELY(!real_pthread_create)) {
    real_pthread_create = dlsym(RTLD_NEXT, "pthread_create");
    if (!real_pthread_create) return 11; /* EAGAIN: cannot happen with a working libc */
  }
  ftsan_thread *parent = ftsan__cur;
  if (!ftsan__enabled || !parent || parent->ignore) return real_pthread_create(th, attr, fn, arg);
  ftsan_thread *t = thread_new(parent->tid);
  struct start_args *a = t ? ftsan__alloc(sizeof *a) : NULL;
  if (!a) return real_pthread_create(th, attr, fn, arg);
  capture_creation_stack(parent, t, 1);
  /* Started from Python: the Thread's name and the Python stack that started it. */
  if (ftsan__python_version()) {
    parent->ignore++;
    ftsan__python_thread_name(t->pyname, sizeof t->pyname);
    t->creation_py_len = ftsan__python_stack_ids(t->creation_py, 16);
    parent->ignore--;
  }
  /* Everything the parent did so far happens before everything the child does. */
  if (t->vc && parent->vc) ftsan__clock_inherit(t, parent);
  a->fn = fn;
  a->arg = arg;
  a->t = t;
  return real_pthread_create(th, attr, thread_start, a);
}

/* The thread's end happens before pthread_join returns. pthread_t values are reused, so the
 * newest finished context with that handle is the one joined. */
static int (*real_pthread_join)(pthread_t, void **);

FTSAN_EXPORT int pthread_join(pthread_t th, void **ret) {
  if (FTSAN_UNLIKELY(!real_pthread_join)) real_pthread_join = dlsym(RTLD_NEXT, "pthread_join");
  int rc = real_pthread_join(th, ret);
  ftsan_thread *self = ftsan__cur;
  if (rc != 0 || !ftsan__enabled || !self || !self->vc) return rc;
  uint32_t n = __atomic_load_n(&ftsan__thread_count, __ATOMIC_ACQUIRE);
  if (n > FTSAN_MAX_THREADS) n = FTSAN_MAX_THREADS;
  for (uint32_t i = n; i > 0; i--) {
    ftsan_thread *t = __atomic_load_n(&ftsan__threads[i - 1], __ATOMIC_ACQUIRE);
    if (t && t != self && t->pthread == (uint64_t)th && __atomic_load_n(&t->finished, __ATOMIC_ACQUIRE)) {
      if (t->vc) ftsan__clock_join_thread(self, t);
      break;
    }
  }
  return rc;
}
