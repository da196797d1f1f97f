/* rt_borrow.h: borrowed references and use-after-free (rt_borrow.c). */
#ifndef FTSAN_RT_BORROW_H
#define FTSAN_RT_BORROW_H

#include "rt_shadow.h"

/* The interpreter frees the block at p (size bytes), after its shadow was cleared: marks it
 * freed if a thread had borrowed the object there. */
void ftsan__borrow_freed(void *p, size_t size);
/* Whether any borrowed reference was ever tracked (0: ftsan__borrow_freed has nothing to do). */
int ftsan__borrow_any(void);
/* An access found a freed mark in *cell: reports a use-after-free if the accessing thread
 * reached the memory through a live borrowed reference; clears the mark. */
int ftsan__borrow_check_freed(ftsan_thread *t, uint64_t *cell, uintptr_t addr, uint64_t cur, uint64_t pc);

void ftsan__report_use_after_free(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t pc,
                                  uintptr_t obj, size_t size, uint32_t free_tid,
                                  const uint64_t *free_stack, uint32_t nfree,
                                  const uint64_t *free_py, uint32_t nfree_py, uint64_t borrow_pc,
                                  uint32_t api, uint64_t borrow_pyev, const char *type_name);

#endif
