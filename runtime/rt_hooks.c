/* rt_hooks.c: entry patches on interpreter-internal functions that LD_PRELOAD cannot
 * interpose (libpython is linked into the python executable, and these are direct calls or
 * local symbols found only in .symtab):
 *   - _PyMutex_LockTimed / _PyMutex_TryUnlock: threading.Lock in CPython 3.13.5+ and 3.14 is
 *     a PyMutex taken and given back through these two (seen in the disassembly of
 *     lock_PyThread_acquire_lock); Condition, Event, Queue and Barrier are built on it;
 *   - _PyCriticalSection_SuspendAll / _PyCriticalSection_Resume: a thread that detaches
 *     (blocks) gives up its critical sections and takes them back when it attaches again;
 *   - mi_free: every block of the interpreter's allocator (objects, list item arrays, dict
 *     keys) is freed here; its shadow is forgotten so that reuse is not a race.
 * Where a function is missing (a stripped or different interpreter) or its prologue cannot
 * be relocated, the runtime warns once, naming what becomes invisible, and goes on. */
#define _GNU_SOURCE 1
#include "elf_lookup.h"

#include <dlfcn.h>
#include <limits.h>
#include "patch.h"
#include "rt_borrow.h"
#include "rt_clock.h"
#include "rt_contention.h"
#include "rt_heap.h"
#include "rt_observe.h"
#include "rt_shadow.h"

#define PY_LOCK_ACQUIRED 1

static int (*orig_mutex_lock_timed)(void *m, long long timeout, int flags);
static int (*orig_mutex_try_unlock)(void *m);
static void (*orig_mi_free)(void *p);
static size_t (*mi_usable_size_fn)(const void *p);
static void (*orig_cs_suspend_all)(void *tstate);
static void (*orig_decref_shared)(void *op);
static void (*orig_cs_begin_slow)(void *c, void *m);
static void (*orig_cs2_begin_slow)(void *c, void *m1, void *m2, int m1_locked);
static void (*orig_pymutex_lock)(void *m);
static FTSAN_TLS int in_cs_slow; /* the PyMutex_Lock inside a critical section's slow path */
static FTSAN_TLS int in_pymutex_lock; /* the _PyMutex_LockTimed inside PyMutex_Lock */
static int (*orig_check_gil)(void *module, void *name);
static void (*orig_new_reference)(void *op);

static void hook_new_reference(void *op) {
  orig_new_reference(op);
  ftsan__contention_object_created(op);
}


/* Importing a module decides here whether the GIL must be enabled for it. */
/* Importing an extension runs its init with the GIL enabled transiently (a count); this
 * function then disables it again, or enables it for good (INT_MAX). */
static int hook_check_gil(void *module, void *name) {
  int before = ftsan__python_gil_state();
  int rc = orig_check_gil(module, name);
  if (before != INT_MAX && ftsan__python_gil_state() == INT_MAX) ftsan__report_gil_enabled(module, name);
  return rc;
}
static void (*orig_cs_resume)(void *tstate);

static ftsan_thread *hook_thread(void) {
  if (FTSAN_UNLIKELY(!ftsan__race_on)) return NULL;
  ftsan_thread *t = ftsan__thread();
  return t->ignore ? NULL : t;
}


/* Container mutations happen inside the interpreter with the container's critical section
 * held, which the runtime cannot see: the hooks model that critical section around a write
 * of one field that stands for the container's contents. C code that reads the contents
 * reads the same field: PyDict_Next (see __ftsan_PyDict_Next) reads the dict's ma_used,
 * PyList_GET_ITEM and PySequence_Fast_ITEMS load the list's ob_item pointer themselves (an
 * instrumented load). Without Py_BEGIN_CRITICAL_SECTION around the loop, the two race. */

static void container_mutation(void *op, uintptr_t field, uint64_t pc) {
  ftsan_thread *t = hook_thread();
  if (!t || !op) return;
  /* Every mutation is modelled, also of containers no C code has read yet: skipping those
   * (a sync object per dict the interpreter inserts into costs about 5 MiB in a small
   * program) lost the races of a reader whose first read came after the writer's last
   * change, and the release cannot be skipped alone (a later critical section in C would
   * miss the interpreter's ordering). */
  uintptr_t m = (uintptr_t)op + FTSAN_PY_OB_MUTEX;
  ftsan__acquire(t, m);
  ftsan__history_python_entry(t);
  ftsan__access(pc, (uintptr_t)op + field, 8, 1, 0);
  ftsan__release(t, m);
}

/* The hooks are observer thunks (rt_observe.h): they need only the container, and the
 * functions are static ones whose signatures may change between releases. */
__attribute__((visibility("hidden"))) void ftsan__observe_dict(void *mp, uint64_t caller) {
  container_mutation(mp, FTSAN_PY_DICT_CONTENTS, caller);
}
__attribute__((visibility("hidden"))) void ftsan__observe_list(void *op, uint64_t caller) {
  container_mutation(op, FTSAN_PY_LIST_CONTENTS, caller);
}

/* insertdict(interp, mp, key, hash, value) and delitem_common(mp, hash, ix, old, version). */
__attribute__((visibility("hidden"))) void *ftsan__orig_insertdict, *ftsan__orig_delitem_common;
FTSAN_OBSERVER_THUNK(ftsan__hook_insertdict, ftsan__observe_dict, ftsan__orig_insertdict, "rsi");
FTSAN_OBSERVER_THUNK(ftsan__hook_delitem_common, ftsan__observe_dict, ftsan__orig_delitem_common, "rdi");

/* The list's mutators in Objects/listobject.c (3.13), each with the list first: every change
 * of size goes through list_resize (append past the allocation, insert, extend, pop, del) or
 * list_clear_impl; items are replaced in list_ass_item_lock_held / list_ass_slice_lock_held
 * and reordered by list_sort_impl and list_reverse. (The eval loop's inline fast paths, an
 * append into spare capacity and a specialized lst[i] = v, call none of them and stay
 * invisible.) */
#define LIST_HOOKS(X)                                                                            \
  X(list_resize) X(list_clear_impl) X(list_ass_item_lock_held) X(list_ass_slice_lock_held)      \
  X(list_sort_impl) X(list_reverse)
#define DEFINE_LIST_HOOK(fn)                                                                     \
  __attribute__((visibility("hidden"))) void *ftsan__orig_##fn;                                  \
  FTSAN_OBSERVER_THUNK(ftsan__hook_##fn, ftsan__observe_list, ftsan__orig_##fn, "rdi");
LIST_HOOKS(DEFINE_LIST_HOOK)

static int hook_mutex_lock_timed(void *m, long long timeout, int flags) {
  /* threading.Lock: contended when the lock bit is already set as we arrive and the call
   * may block (timeout 0 is a try-lock, e.g. Condition._is_owned: not a wait). */
  uint64_t t0 = 0;
  /* Reached from PyMutex_Lock or a critical section's slow path, whose hooks count the wait
   * themselves (as a PyMutex's or a section's, not a threading.Lock's). */
  if (ftsan__contention_on && timeout != 0 && !in_pymutex_lock && !in_cs_slow &&
      (__atomic_load_n((uint8_t *)m, __ATOMIC_RELAXED) & 1))
    t0 = ftsan__contention_now();
  int rc = orig_mutex_lock_timed(m, timeout, flags);
  if (t0) ftsan__contention_lock_wait((uintptr_t)m, 0, FTSAN_LKF_THREADING_LOCK, ftsan__contention_now() - t0);
  if (rc == PY_LOCK_ACQUIRED && ftsan__wrapped_mutex != (uintptr_t)m) {
    ftsan_thread *t = hook_thread();
    if (t) ftsan__acquire(t, (uintptr_t)m);
  }
  return rc;
}

static int hook_mutex_try_unlock(void *m) {
  ftsan_thread *t = ftsan__wrapped_mutex == (uintptr_t)m ? NULL : hook_thread();
  if (t) ftsan__release(t, (uintptr_t)m);
  return orig_mutex_try_unlock(m);
}

/* Every block the interpreter frees. Its size (mi_usable_size) is looked up only when
 * something needs it: most blocks were never touched by instrumented code (in the pysync
 * benchmark 99 % lie in MiBs with no shadow at all) and have no sync object or borrowed
 * reference at their address. A block whose MiB and the next have no shadow has nothing to
 * clear if it is smaller than 1 MiB; mimalloc places every block of a page after the first
 * at an address that is not a multiple of 64 KiB, and large blocks (a page each) at the
 * page's start, which is: so an address off the 64 KiB grid is a small block (docs/
 * cpython-facts.md), and one on it has its size looked up. */
static void hook_mi_free(void *p) {
  if (p && ftsan__race_on && mi_usable_size_fn) {
    uintptr_t a = (uintptr_t)p;
    size_t size = 0;
#define BLOCK_SIZE() (size ? size : (size = mi_usable_size_fn(p)))
    ftsan__heap_forget(a);
    /* A dead object's critical section (its ob_mutex, which container hooks and
     * Py_BEGIN_CRITICAL_SECTION release into) must not order the next object there. The
     * object starts at the block, or 16 bytes in (the pre-header of managed dicts). */
    if (ftsan__sync_maybe(a + FTSAN_PY_OB_MUTEX) && BLOCK_SIZE() >= 32) ftsan__sync_forget(a + FTSAN_PY_OB_MUTEX);
    if (ftsan__sync_maybe(a + 16 + FTSAN_PY_OB_MUTEX) && BLOCK_SIZE() >= 48)
      ftsan__sync_forget(a + 16 + FTSAN_PY_OB_MUTEX);
    if ((a & 0xffff) == 0 || !ftsan__shadow_none_near(a)) ftsan__shadow_clear(a, BLOCK_SIZE());
    if (ftsan__borrow_any()) ftsan__borrow_freed(p, BLOCK_SIZE()); /* a borrowed object dying */
#undef BLOCK_SIZE
  }
  orig_mi_free(p);
}

/* Calls from instrumented code, redirected by the pass: their operation was counted at the
 * call site; go straight to the original (through the trampoline, past the hook). */
FTSAN_EXPORT void __ftsan__Py_DecRefShared(void *op) {
  static void (*real)(void *);
  if (orig_decref_shared) {
    orig_decref_shared(op);
    return;
  }
  if (!real) *(void **)&real = dlsym(RTLD_DEFAULT, "_Py_DecRefShared");
  real(op);
}

/* Sampled here, before anything else (a thread-local countdown): with refcount_sample=N
 * only 1 in N reaches the runtime, and the interpreter runs this for every decref of a
 * shared object. */
static FTSAN_TLS int32_t decref_countdown;

static void hook_decref_shared(void *op) {
  if (--decref_countdown <= 0) {
    decref_countdown = ftsan__contention_interp_period;
    ftsan__contention_decref_shared(op, (uint64_t)(uintptr_t)__builtin_return_address(0));
  }
  orig_decref_shared(op);
}

/* The slow path of a critical section is entered only when the fast compare-and-swap failed:
 * the object's mutex is held by another thread (or it must wait for it). */
static void hook_cs_begin_slow(void *c, void *m) {
  if (!ftsan__contention_on) {
    orig_cs_begin_slow(c, m);
    return;
  }
  uint64_t t0 = ftsan__contention_now();
  in_cs_slow++;
  orig_cs_begin_slow(c, m);
  in_cs_slow--;
  /* Re-entering a section the thread already holds is a no-op that leaves _cs_mutex NULL:
   * not a wait (the time measured would only be noise, e.g. preemption). */
  if (((void **)c)[1] == m)
    ftsan__contention_lock_wait((uintptr_t)m, (uintptr_t)m - FTSAN_PY_OB_MUTEX, FTSAN_LKF_CRITICAL_SECTION,
                                ftsan__contention_now() - t0);
}

static void hook_cs2_begin_slow(void *c, void *m1, void *m2, int m1_locked) {
  if (!ftsan__contention_on) {
    orig_cs2_begin_slow(c, m1, m2, m1_locked);
    return;
  }
  uint64_t t0 = ftsan__contention_now();
  in_cs_slow++;
  orig_cs2_begin_slow(c, m1, m2, m1_locked);
  in_cs_slow--;
  uint64_t dt = ftsan__contention_now() - t0;
  if (((void **)c)[1] != m1) return; /* re-entered: no wait */
  ftsan__contention_lock_wait((uintptr_t)m1, (uintptr_t)m1 - FTSAN_PY_OB_MUTEX, FTSAN_LKF_CRITICAL_SECTION, dt);
  if (m2 != m1)
    ftsan__contention_lock_wait((uintptr_t)m2, (uintptr_t)m2 - FTSAN_PY_OB_MUTEX, FTSAN_LKF_CRITICAL_SECTION, dt);
}

/* PyMutex_Lock is the slow path: the inline compare-and-swap failed. */
static void hook_pymutex_lock(void *m) {
  if (!ftsan__contention_on || in_cs_slow) {
    orig_pymutex_lock(m);
    return;
  }
  uint64_t t0 = ftsan__contention_now();
  in_pymutex_lock++;
  orig_pymutex_lock(m);
  in_pymutex_lock--;
  uint64_t dt = ftsan__contention_now() - t0;
  /* A PyMutex inside a PyObject header is its ob_mutex, used only by critical sections
   * (PyCriticalSection_Begin may reach PyMutex_Lock directly, its slow path inlined). */
  ftsan__contention_lock_wait((uintptr_t)m, (uintptr_t)m - FTSAN_PY_OB_MUTEX,
                              FTSAN_LKF_PYMUTEX | FTSAN_LKW_MAYBE_OBJECT, dt);
}

static void hook_cs_suspend_all(void *tstate) {
  ftsan_thread *t = hook_thread();
  if (t) ftsan__cs_suspend(t);
  orig_cs_suspend_all(tstate);
}

static void hook_cs_resume(void *tstate) {
  orig_cs_resume(tstate);
  ftsan_thread *t = hook_thread();
  if (t) ftsan__cs_resume(t);
}

static int install(const char *name, void *replacement, void **original, const char *what) {
  ftsan_elf_sym sym;
  int rc = ftsan_elf_lookup_in("", name, &sym);
  if (rc != 0) {
    ftsan__warn(FTSAN_WARN_HOOK_FAILED, "%s not found in this python (%s): %s is invisible "
                "to the analysis", name, ftsan_elf_strerror(rc), what);
    return -1;
  }
  rc = ftsan_patch_install(sym.addr, sym.size, replacement, original);
  if (rc != 0) {
    ftsan__warn(FTSAN_WARN_GENERIC, "cannot patch %s (%s): %s is invisible to the analysis",
                name, ftsan_patch_strerror(rc), what);
    return -1;
  }
  if (ftsan__opt.verbose) ftsan__log("ftsan: patched %s at %p", name, sym.addr);
  return 0;
}

void ftsan__hooks_init(void) {
  if (!ftsan__python_version()) return;
  ftsan_elf_lookup_begin();
  install("_PyMutex_LockTimed", (void *)hook_mutex_lock_timed, (void **)&orig_mutex_lock_timed,
          "threading.Lock acquisition");
  install("_PyMutex_TryUnlock", (void *)hook_mutex_try_unlock, (void **)&orig_mutex_try_unlock,
          "threading.Lock release");
  install("_PyCriticalSection_SuspendAll", (void *)hook_cs_suspend_all,
          (void **)&orig_cs_suspend_all, "suspension of critical sections by blocking calls");
  install("_PyCriticalSection_Resume", (void *)hook_cs_resume, (void **)&orig_cs_resume,
          "resumption of suspended critical sections");
  if (ftsan__python_free_threaded())
    install("_PyImport_CheckGILForModule", (void *)hook_check_gil, (void **)&orig_check_gil,
            "which import enabled the GIL");
  if (ftsan__contention_on) {
    /* Creation sites cost a frame lookup per new object: contention mode only, where the
     * interpreter's own refcount traffic is counted in full too. */
    if (!ftsan__race_on)
      install("_Py_NewReference", (void *)hook_new_reference, (void **)&orig_new_reference,
              "where contended objects were created");
    /* The interpreter's shared decrefs: in full in contention mode; in race mode only when
     * refcount_sample asks for them (the patch alone, with 1 in 61 sampled, was 8 % of a
     * lock-heavy Python workload at 2 threads; race mode's contention view keeps the
     * refcounts of instrumented code and the lock waits). */
    if (!ftsan__race_on || ftsan__opt.refcount_sample > 0)
      install("_Py_DecRefShared", (void *)hook_decref_shared, (void **)&orig_decref_shared,
              "reference-count traffic of the interpreter");
    install("_PyCriticalSection_BeginSlow", (void *)hook_cs_begin_slow, (void **)&orig_cs_begin_slow,
            "critical-section contention");
    install("_PyCriticalSection2_BeginSlow", (void *)hook_cs2_begin_slow,
            (void **)&orig_cs2_begin_slow, "two-object critical-section contention");
    install("PyMutex_Lock", (void *)hook_pymutex_lock, (void **)&orig_pymutex_lock,
            "PyMutex contention");
  }
  if (!ftsan__race_on) {
    ftsan_elf_lookup_end();
    return;
  }
  install("insertdict", (void *)ftsan__hook_insertdict, &ftsan__orig_insertdict,
          "dict insertions racing with PyDict_Next");
  install("delitem_common", (void *)ftsan__hook_delitem_common, &ftsan__orig_delitem_common,
          "dict deletions racing with PyDict_Next");
#define INSTALL_LIST_HOOK(fn)                                                                    \
  install(#fn, (void *)ftsan__hook_##fn, &ftsan__orig_##fn, "list mutations racing with PyList_GET_ITEM loops");
  LIST_HOOKS(INSTALL_LIST_HOOK)
  ftsan_elf_sym us;
  if (ftsan_elf_lookup_in("", "mi_usable_size", &us) == 0) {
    mi_usable_size_fn = (size_t (*)(const void *))us.addr;
    install("mi_free", (void *)hook_mi_free, (void **)&orig_mi_free,
            "reuse of memory freed by the interpreter's allocator (false reports possible)");
  } else {
    ftsan__warn(FTSAN_WARN_HOOK_FAILED, "mi_usable_size not found in this python: reuse of "
                "memory freed by the interpreter's allocator is invisible (false reports possible)");
  }
  ftsan_elf_lookup_end();
}
