/* rt_contention.h: reference-count and lock contention counting (rt_contention.c). */
#ifndef FTSAN_RT_CONTENTION_H
#define FTSAN_RT_CONTENTION_H

#include "rt_internal.h"

extern int ftsan__contention_on; /* written once at init */

/* The interpreter's shared decrefs are counted 1 in this many (the _Py_DecRefShared patch
 * keeps the countdown), each counting this many times. */
extern int32_t ftsan__contention_interp_period; /* written once at init */
/* A decref by a non-owner seen in the interpreter (a sampled one); caller is the return
 * address. */
void ftsan__contention_decref_shared(void *op, uint64_t caller);
/* A lock acquisition that had to wait; object is the Python object owning the mutex or 0.
 * With FTSAN_LKW_MAYBE_OBJECT in flags, object is only a candidate (a PyMutex that may be an
 * object's ob_mutex): when it is a PyObject the wait counts as a critical section's. The
 * object's type is looked up once per thread and object (the check reads memory through a
 * system call, and the wait is recorded while the lock is held). */
#define FTSAN_LKW_MAYBE_OBJECT 0x80000000u /* runtime-internal, never in a trace */
void ftsan__contention_lock_wait(uintptr_t lock, uintptr_t object, uint32_t flags, uint64_t wait_ns);
/* The instrumented call site of the C-API wrapper now running (0 when it returns). */
void ftsan__contention_set_sync_site(uint64_t pc);
uint64_t ftsan__contention_now(void);
void ftsan__contention_init(void);
void ftsan__contention_flush(ftsan_thread *t);
/* A new object (the _Py_NewReference patch): remember the Python line creating it. */
void ftsan__contention_object_created(void *op);

#endif
