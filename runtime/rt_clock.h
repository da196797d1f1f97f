/* rt_clock.h: vector clocks and synchronization objects: the happens-before relation.
 * A thread's clock has one epoch per thread; a sync object (a mutex, a semaphore, an atomic
 * variable, a critical section's object) carries the join of the clocks released into it. */
#ifndef FTSAN_RT_CLOCK_H
#define FTSAN_RT_CLOCK_H

#include "rt_internal.h"

/* The calling thread publishes everything it did so far into the sync object at addr. */
void ftsan__release(ftsan_thread *t, uintptr_t addr);
/* The calling thread learns everything released into the sync object at addr. */
void ftsan__acquire(ftsan_thread *t, uintptr_t addr);
/* The sync object at addr is destroyed (sem_destroy, pthread_mutex_destroy): forget it. */
void ftsan__sync_forget(uintptr_t addr);
/* The calling thread has finished: hand its cached sync objects back to all threads. */
void ftsan__clock_thread_exit(void);
/* Whether a sync object may exist at addr (a filter: 0 means certainly not). */
int ftsan__sync_maybe(uintptr_t addr);
/* Thread t starts with everything its parent did before creating it. */
void ftsan__clock_inherit(ftsan_thread *child, ftsan_thread *parent);
/* t learns everything the finished thread did. */
void ftsan__clock_join_thread(ftsan_thread *t, ftsan_thread *finished);
int ftsan__clock_init(void);

#endif
