/* ftsan_abi.h: the runtime ABI, every __ftsan_* entry point the instrumentation pass emits
 * calls to; the one contract between instrument/ and runtime/.
 *
 * Ground rules (the pass and the runtime are checked against each other by eye):
 * - this header includes only <stddef.h>/<stdint.h> and is valid C11 and C++;
 * - every entry point is extern "C", starts with __ftsan_, and follows one grammar:
 *     __ftsan_<read|write><size>          plain access of 1, 2, 4, 8 or 16 bytes
 *     __ftsan_<read|write>_range          plain access of any other size or a mem* intrinsic
 *     __ftsan_atomic_<pre|post>           around an atomic instruction, with a descriptor
 *     __ftsan_func_<entry|exit>           shadow call stack
 *     __ftsan_refcount                    a reference-count operation at its call site
 *     __ftsan_<C-API function name>       wrapper replacing a call to that C-API function
 *     __ftsan_<allocator function name>   wrapper replacing a call to malloc & co.
 * - the PC of an access is the return address of the call into the runtime, so entry points
 *   never take a pc argument;
 * - every instrumented module calls __ftsan_init(FTSAN_ABI_VERSION) from a constructor. A
 *   runtime that does not speak that version warns once and turns the analysis off; it never
 *   stops the host program.
 * Bump FTSAN_ABI_VERSION whenever a signature or a descriptor encoding below changes. */
#ifndef FTSAN_ABI_H
#define FTSAN_ABI_H

#include <stddef.h>
#include <stdint.h>

#define FTSAN_ABI_VERSION 4u

/* Atomic descriptor: bits 0-3 log2(size), bits 4-7 memory order, bits 8-11 operation.
 * Memory orders use the values of the C11/GCC __ATOMIC_* constants. Part of the ABI. */
#define FTSAN_MO_RELAXED 0u
#define FTSAN_MO_CONSUME 1u
#define FTSAN_MO_ACQUIRE 2u
#define FTSAN_MO_RELEASE 3u
#define FTSAN_MO_ACQ_REL 4u
#define FTSAN_MO_SEQ_CST 5u

#define FTSAN_AOP_LOAD  0u
#define FTSAN_AOP_STORE 1u
#define FTSAN_AOP_RMW   2u /* atomicrmw: add, xchg, or, ... */
#define FTSAN_AOP_CAS   3u /* cmpxchg: the descriptor's order is the success order */

#define FTSAN_ATOMIC_DESC(log2size, mo, op) \
  ((uint32_t)(log2size) | ((uint32_t)(mo) << 4) | ((uint32_t)(op) << 8))
#define FTSAN_ATOMIC_LOG2SIZE(d) ((d) & 0xfu)
#define FTSAN_ATOMIC_MO(d)       (((d) >> 4) & 0xfu)
#define FTSAN_ATOMIC_OP(d)       (((d) >> 8) & 0xfu)
/* Set by the pass in the descriptor given to __ftsan_atomic_post of a cmpxchg that
 * succeeded: a failed compare-and-swap acquires nothing. */
#define FTSAN_ATOMIC_CAS_OK 0x1000u

/* The C-API synchronization functions whose calls the pass redirects to __ftsan_<name>.
 * X(name, return type, parameter list, argument list). LD_PRELOAD cannot interpose them
 * when libpython is linked into the python executable (docs/cpython-facts.md), hence the
 * redirection at compile time. The wrapper records the event and calls the real function. */
#define FTSAN_CAPI_WRAPPERS(X)                                                               \
  X(PyCriticalSection_Begin, void, (void *cs, void *op), (cs, op))                         \
  X(PyCriticalSection_End, void, (void *cs), (cs))                                          \
  X(PyCriticalSection2_Begin, void, (void *cs, void *a, void *b), (cs, a, b))              \
  X(PyCriticalSection2_End, void, (void *cs), (cs))                                         \
  X(PyCriticalSection_BeginMutex, void, (void *cs, void *m), (cs, m))                       \
  X(PyCriticalSection2_BeginMutex, void, (void *cs, void *m1, void *m2), (cs, m1, m2))     \
  X(PyMutex_Lock, void, (void *m), (m))                                                     \
  X(PyMutex_Unlock, void, (void *m), (m))                                                   \
  X(PyGILState_Ensure, int, (void), ())                                                     \
  X(PyGILState_Release, void, (int state), (state))                                         \
  X(PyEval_SaveThread, void *, (void), ())                                                  \
  X(PyEval_RestoreThread, void, (void *tstate), (tstate))                                   \
  X(PyThread_acquire_lock, int, (void *lock, int waitflag), (lock, waitflag))               \
  X(PyThread_acquire_lock_timed, int, (void *lock, long long us, int intr), (lock, us, intr)) \
  X(PyThread_release_lock, void, (void *lock), (lock))                                      \
  X(_Py_DecRefShared, void, (void *op), (op))                                               \
  X(PyDict_Next, int, (void *d, void *ppos, void *pkey, void *pvalue), (d, ppos, pkey, pvalue))

/* The allocators whose calls from instrumented code the pass redirects to __ftsan_<name>, so
 * that a race on a heap block can say where the block was allocated. Same X() shape. */
#define FTSAN_ALLOC_WRAPPERS(X)                                                              \
  X(malloc, void *, (size_t n), (n))                                                        \
  X(calloc, void *, (size_t n, size_t size), (n, size))                                     \
  X(realloc, void *, (void *p, size_t n), (p, n))                                           \
  X(free, void, (void *p), (p))                                                             \
  X(PyMem_Malloc, void *, (size_t n), (n))                                                  \
  X(PyMem_Calloc, void *, (size_t n, size_t size), (n, size))                               \
  X(PyMem_Realloc, void *, (void *p, size_t n), (p, n))                                     \
  X(PyMem_Free, void, (void *p), (p))                                                       \
  X(PyMem_RawMalloc, void *, (size_t n), (n))                                               \
  X(PyMem_RawCalloc, void *, (size_t n, size_t size), (n, size))                            \
  X(PyMem_RawRealloc, void *, (void *p, size_t n), (p, n))                                  \
  X(PyMem_RawFree, void, (void *p), (p))

/* The C-API functions that return a borrowed reference. After each call the pass inserts
 * __ftsan_borrow(result, id): if the object dies while the thread still uses the pointer,
 * the runtime reports a use-after-free naming this call and the fix (the strong-reference
 * API). X(id, name, fix). Part of the ABI: ids never change meaning. */
#define FTSAN_BORROW_APIS(X)                                                                 \
  X(1, PyList_GetItem, "PyList_GetItemRef")                                                 \
  X(2, PyDict_GetItem, "PyDict_GetItemRef")                                                 \
  X(3, PyDict_GetItemString, "PyDict_GetItemStringRef")                                     \
  X(4, PyDict_GetItemWithError, "PyDict_GetItemRef")                                        \
  X(5, PyWeakref_GetObject, "PyWeakref_GetRef")                                             \
  X(6, PyTuple_GetItem, "a strong reference (Py_NewRef) taken while the tuple is known alive") \
  X(7, PySequence_Fast_GetItem, "a strong reference (Py_NewRef) under a critical section")

#ifdef __cplusplus
extern "C" {
#endif

void __ftsan_init(uint32_t abi_version);

void __ftsan_read1(void *addr);
void __ftsan_read2(void *addr);
void __ftsan_read4(void *addr);
void __ftsan_read8(void *addr);
void __ftsan_read16(void *addr);
void __ftsan_write1(void *addr);
void __ftsan_write2(void *addr);
void __ftsan_write4(void *addr);
void __ftsan_write8(void *addr);
void __ftsan_write16(void *addr);
void __ftsan_read_range(void *addr, size_t size);
void __ftsan_write_range(void *addr, size_t size);

/* Called immediately before (pre) and after (post) the atomic instruction at the same
 * address: pre records the access and publishes release semantics, post takes acquire
 * semantics. Publishing before the store can only add happens-before edges that the program
 * would have had a moment later, never remove one, so it cannot cause a false report. */
void __ftsan_atomic_pre(void *addr, uint32_t desc);
void __ftsan_atomic_post(void *addr, uint32_t desc);
/* The pre call of a compare-and-swap, with the value it expects (zero-extended): release
 * semantics are published only when the location holds that value, i.e. when the CAS is
 * about to succeed. A failed CAS releases nothing; publishing at every attempt of a
 * spinning thread ordered its earlier accesses before whoever acquired next, hiding races.
 * (Another thread may still change the value between this call and the CAS: an extra edge
 * in that window only, the direction that can hide a race but never report a false one.) */
void __ftsan_atomic_pre_cas(void *addr, uint32_t desc, uint64_t expected);
void __ftsan_fence(uint32_t mo);

/* A reference-count operation on op, called just before it (Py_INCREF, Py_XINCREF,
 * Py_NewRef, Py_XNewRef: FTSAN_RC_INCREF; Py_DECREF, Py_XDECREF, and so Py_CLEAR and
 * Py_SETREF: FTSAN_RC_DECREF). op may be NULL for the X variants. The call site samples:
 * it keeps a thread-local countdown per module, calls only when it reaches 0, and stores
 * the returned value (the sampling period; the runtime counts the call that many times). */
#define FTSAN_RC_INCREF 0u
#define FTSAN_RC_DECREF 1u
uint32_t __ftsan_refcount(void *op, uint32_t kind);

/* A borrowed reference op was just returned by the API FTSAN_BORROW_APIS names with id. */
void __ftsan_borrow(void *op, uint32_t api);

/* caller_pc is the function's return address: the call site in its caller. */
void __ftsan_func_entry(void *caller_pc);
void __ftsan_func_exit(void);

#define FTSAN__DECLARE_WRAPPER(name, ret, params, args) ret __ftsan_##name params;
FTSAN_CAPI_WRAPPERS(FTSAN__DECLARE_WRAPPER)
FTSAN_ALLOC_WRAPPERS(FTSAN__DECLARE_WRAPPER)
#undef FTSAN__DECLARE_WRAPPER

#ifdef __cplusplus
}
#endif

#endif
