/* rt_capi.c: wrappers for the C-API synchronization functions that the pass redirects calls
 * to (FTSAN_CAPI_WRAPPERS in include/ftsan_abi.h). Each calls the real function, found with
 * dlsym(RTLD_DEFAULT) (the definition lives in the python executable or libpython, which
 * LD_PRELOAD cannot interpose), and records what it means for happens-before:
 *   - a critical section on an object is its per-object mutex (ob_mutex, offset 10 of a
 *     free-threaded PyObject): acquired after Begin, released before End;
 *   - PyMutex_Lock/Unlock here are the slow paths (the fast paths are inline atomics that
 *     the pass instruments), so they acquire/release the mutex's address the same way;
 *   - a thread that detaches (PyEval_SaveThread, or blocking while it waits for another
 *     critical section) suspends its critical sections: their mutexes are really released
 *     and taken back later, so the wrapper releases and re-acquires them too;
 *   - PyGILState_Ensure/Release give no mutual exclusion in a free-threaded build: nothing.
 * Releasing a mutex that the thread still holds can never add a false edge (nobody else can
 * acquire it meanwhile), which is why the suspension model may release early and often. */
#define _GNU_SOURCE 1
#include "rt_clock.h"
#include "rt_contention.h"
#include "rt_race.h"

#include <dlfcn.h>

#define CALLER_PC ((uint64_t)(uintptr_t)__builtin_return_address(0))
#define HELD_MAX 16

#define DEFINE_REAL(name, ret, params, args) static ret(*real_##name) params;
FTSAN_CAPI_WRAPPERS(DEFINE_REAL)
#undef DEFINE_REAL

/* Mutexes of the critical sections a thread holds, innermost last; per thread, no lock. */
static FTSAN_TLS uintptr_t held[HELD_MAX];
static FTSAN_TLS uint64_t held_since[HELD_MAX]; /* the thread's epoch when it entered */
static FTSAN_TLS uint32_t nheld;

void ftsan__capi_init(void) {
#define RESOLVE(name, ret, params, args) real_##name = (ret(*) params)dlsym(RTLD_DEFAULT, #name);
  FTSAN_CAPI_WRAPPERS(RESOLVE)
#undef RESOLVE
}

/* The thread to model happens-before for, or NULL (race detection off, runtime inside
 * itself). For a call that may wait (wait = 1), also remembers pc as the site of any lock
 * wait it is about to have; the wrapper forgets it again right after the real call (a site
 * left behind would take the blame for waits in the interpreter later). */
static ftsan_thread *sync_thread_at(uint64_t pc, int wait) {
  if (!ftsan__enabled) return NULL;
  ftsan_thread *t = ftsan__thread();
  if (t->ignore) return NULL;
  if (wait) ftsan__contention_set_sync_site(pc);
  if (!ftsan__race_on) return NULL;
  ftsan__stats_add(t, pc, FTSAN_EV_SYNC);
  return t;
}
#define sync_thread(pc) sync_thread_at(pc, 1)
#define sync_thread_nowait(pc) sync_thread_at(pc, 0)

#define ENSURE_REAL(name)                                                                \
  do {                                                                                   \
    if (FTSAN_UNLIKELY(!real_##name)) {                                                  \
      *(void **)&real_##name = dlsym(RTLD_DEFAULT, #name);                               \
      if (!real_##name) {                                                                \
        ftsan__log("ftsan: fatal: the extension calls " #name ", which this python does " \
                   "not have (built for another Python version?)");                      \
        ftsan__halt(1);                                                                  \
      }                                                                                  \
    }                                                                                    \
  } while (0)

static void held_push(ftsan_thread *t, uintptr_t m) {
  if (nheld < HELD_MAX) {
    held[nheld] = m;
    held_since[nheld] = t->epoch;
  }
  nheld++;
}

static void held_pop(void) {
  if (nheld == 0) return;
  nheld--;
  if (nheld < HELD_MAX && ftsan__csguard_nwatch) ftsan__csguard_end(held[nheld]);
}

/* Before a call that may detach the thread: what the held sections did is published. */
static void suspend_held(ftsan_thread *t) {
  uint32_t n = nheld < HELD_MAX ? nheld : HELD_MAX;
  for (uint32_t i = 0; i < n; i++) ftsan__release(t, held[i]);
}

/* After it: the sections were re-entered, after whoever took them meanwhile. */
static void resume_held(ftsan_thread *t) {
  uint32_t n = nheld < HELD_MAX ? nheld : HELD_MAX;
  for (uint32_t i = 0; i < n; i++) ftsan__acquire(t, held[i]);
}

/* Called from the entry patches on _PyCriticalSection_SuspendAll / _PyCriticalSection_Resume
 * (rt_hooks.c): the interpreter suspends a detaching thread's critical sections there, which
 * covers every way of blocking, not only the calls this file wraps. */
void ftsan__cs_suspend(ftsan_thread *t) {
  uint32_t n = nheld < HELD_MAX ? nheld : HELD_MAX;
  if (n) ftsan__csguard_suspended(t, held, held_since, n);
  suspend_held(t);
}
void ftsan__cs_resume(ftsan_thread *t) { resume_held(t); }

static void begin_locked(ftsan_thread *t, uintptr_t m) {
  if (!t) return;
  resume_held(t);
  if (m) ftsan__acquire(t, m);
  held_push(t, m);
}

FTSAN_EXPORT void __ftsan_PyCriticalSection_Begin(void *cs, void *op) {
  ENSURE_REAL(PyCriticalSection_Begin);
  ftsan_thread *t = sync_thread(CALLER_PC);
  if (t) suspend_held(t);
  real_PyCriticalSection_Begin(cs, op);
  ftsan__contention_set_sync_site(0);
  begin_locked(t, op ? (uintptr_t)op + FTSAN_PY_OB_MUTEX : 0);
}

FTSAN_EXPORT void __ftsan_PyCriticalSection_BeginMutex(void *cs, void *m) {
  ENSURE_REAL(PyCriticalSection_BeginMutex);
  ftsan_thread *t = sync_thread(CALLER_PC);
  if (t) suspend_held(t);
  real_PyCriticalSection_BeginMutex(cs, m);
  ftsan__contention_set_sync_site(0);
  begin_locked(t, (uintptr_t)m);
}

FTSAN_EXPORT void __ftsan_PyCriticalSection2_Begin(void *cs, void *a, void *b) {
  ENSURE_REAL(PyCriticalSection2_Begin);
  ftsan_thread *t = sync_thread(CALLER_PC);
  if (t) suspend_held(t);
  real_PyCriticalSection2_Begin(cs, a, b);
  ftsan__contention_set_sync_site(0);
  if (!t) return;
  resume_held(t);
  uintptr_t ma = a ? (uintptr_t)a + FTSAN_PY_OB_MUTEX : 0, mb = b ? (uintptr_t)b + FTSAN_PY_OB_MUTEX : 0;
  if (ma) ftsan__acquire(t, ma);
  if (mb && mb != ma) ftsan__acquire(t, mb);
  held_push(t, ma);
  held_push(t, mb);
}

FTSAN_EXPORT void __ftsan_PyCriticalSection2_BeginMutex(void *cs, void *m1, void *m2) {
  ENSURE_REAL(PyCriticalSection2_BeginMutex);
  ftsan_thread *t = sync_thread(CALLER_PC);
  if (t) suspend_held(t);
  real_PyCriticalSection2_BeginMutex(cs, m1, m2);
  ftsan__contention_set_sync_site(0);
  if (!t) return;
  resume_held(t);
  if (m1) ftsan__acquire(t, (uintptr_t)m1);
  if (m2 && m2 != m1) ftsan__acquire(t, (uintptr_t)m2);
  held_push(t, (uintptr_t)m1);
  held_push(t, (uintptr_t)m2);
}

/* PyCriticalSection is {uintptr_t _cs_prev; PyMutex *_cs_mutex;}, PyCriticalSection2 adds
 * PyMutex *_cs_mutex2: the mutexes to release are read from the structure itself. */
FTSAN_EXPORT void __ftsan_PyCriticalSection_End(void *cs) {
  ENSURE_REAL(PyCriticalSection_End);
  ftsan_thread *t = sync_thread_nowait(CALLER_PC);
  if (t) {
    uintptr_t m = ((uintptr_t *)cs)[1];
    if (m) ftsan__release(t, m);
    held_pop();
  }
  real_PyCriticalSection_End(cs);
}

FTSAN_EXPORT void __ftsan_PyCriticalSection2_End(void *cs) {
  ENSURE_REAL(PyCriticalSection2_End);
  ftsan_thread *t = sync_thread_nowait(CALLER_PC);
  if (t) {
    uintptr_t m1 = ((uintptr_t *)cs)[1], m2 = ((uintptr_t *)cs)[2];
    if (m1) ftsan__release(t, m1);
    if (m2) ftsan__release(t, m2);
    held_pop();
    held_pop();
  }
  real_PyCriticalSection2_End(cs);
}

FTSAN_TLS uintptr_t ftsan__wrapped_mutex;

FTSAN_EXPORT void __ftsan_PyMutex_Lock(void *m) {
  ENSURE_REAL(PyMutex_Lock);
  ftsan_thread *t = sync_thread(CALLER_PC);
  if (t) suspend_held(t); /* a contended lock parks and detaches */
  uintptr_t outer = ftsan__wrapped_mutex;
  ftsan__wrapped_mutex = (uintptr_t)m;
  real_PyMutex_Lock(m);
  ftsan__wrapped_mutex = outer;
  ftsan__contention_set_sync_site(0);
  if (t) {
    resume_held(t);
    ftsan__acquire(t, (uintptr_t)m);
  }
}

FTSAN_EXPORT void __ftsan_PyMutex_Unlock(void *m) {
  ENSURE_REAL(PyMutex_Unlock);
  ftsan_thread *t = sync_thread_nowait(CALLER_PC);
  if (t) ftsan__release(t, (uintptr_t)m);
  uintptr_t outer = ftsan__wrapped_mutex;
  ftsan__wrapped_mutex = (uintptr_t)m;
  real_PyMutex_Unlock(m);
  ftsan__wrapped_mutex = outer;
}

/* No happens-before: in a free-threaded build these only attach the thread. The runtime
 * remembers that accesses were made between them, so that a race on such accesses can say
 * the programmer relied on them as a lock. */
FTSAN_EXPORT int __ftsan_PyGILState_Ensure(void) {
  ENSURE_REAL(PyGILState_Ensure);
  sync_thread(CALLER_PC);
  int state = real_PyGILState_Ensure();
  ftsan__contention_set_sync_site(0);
  if (ftsan__enabled) ftsan__thread()->gilstate++;
  return state;
}

FTSAN_EXPORT void __ftsan_PyGILState_Release(int state) {
  ENSURE_REAL(PyGILState_Release);
  sync_thread_nowait(CALLER_PC);
  if (ftsan__enabled) {
    ftsan_thread *t = ftsan__thread();
    if (t->gilstate) t->gilstate--;
  }
  real_PyGILState_Release(state);
}

FTSAN_EXPORT void *__ftsan_PyEval_SaveThread(void) {
  ENSURE_REAL(PyEval_SaveThread);
  ftsan_thread *t = sync_thread_nowait(CALLER_PC);
  if (t) suspend_held(t);
  return real_PyEval_SaveThread();
}

FTSAN_EXPORT void __ftsan_PyEval_RestoreThread(void *tstate) {
  ENSURE_REAL(PyEval_RestoreThread);
  /* Attaching again may wait: for the GIL, for the suspended critical sections. */
  ftsan_thread *t = sync_thread(CALLER_PC);
  real_PyEval_RestoreThread(tstate);
  ftsan__contention_set_sync_site(0);
  if (t) resume_held(t);
}

/* PyDict_Next reads the dict's entries; the interpreter's mutations (rt_hooks.c) write
 * them. Both are modelled as accesses to the dict's ma_used field (offset 32 of a
 * free-threaded PyDictObject), so iterating without a critical section while another
 * thread mutates the dict is a race even when nothing was freed. */

FTSAN_EXPORT int __ftsan_PyDict_Next(void *d, void *ppos, void *pkey, void *pvalue) {
  ENSURE_REAL(PyDict_Next);
  if (d && sync_thread_nowait(CALLER_PC)) ftsan__access(CALLER_PC, (uintptr_t)d + FTSAN_PY_DICT_CONTENTS, 8, 0, 0);
  return real_PyDict_Next(d, ppos, pkey, pvalue);
}

/* PyThread locks: 1 (PY_LOCK_ACQUIRED) means taken. */
FTSAN_EXPORT int __ftsan_PyThread_acquire_lock(void *lock, int waitflag) {
  ENSURE_REAL(PyThread_acquire_lock);
  ftsan_thread *t = sync_thread(CALLER_PC);
  int rc = real_PyThread_acquire_lock(lock, waitflag);
  ftsan__contention_set_sync_site(0);
  if (t && rc == 1) ftsan__acquire(t, (uintptr_t)lock);
  return rc;
}

FTSAN_EXPORT int __ftsan_PyThread_acquire_lock_timed(void *lock, long long us, int intr) {
  ENSURE_REAL(PyThread_acquire_lock_timed);
  ftsan_thread *t = sync_thread(CALLER_PC);
  int rc = real_PyThread_acquire_lock_timed(lock, us, intr);
  ftsan__contention_set_sync_site(0);
  if (t && rc == 1) ftsan__acquire(t, (uintptr_t)lock);
  return rc;
}

FTSAN_EXPORT void __ftsan_PyThread_release_lock(void *lock) {
  ENSURE_REAL(PyThread_release_lock);
  ftsan_thread *t = sync_thread_nowait(CALLER_PC);
  if (t) ftsan__release(t, (uintptr_t)lock);
  real_PyThread_release_lock(lock);
}
