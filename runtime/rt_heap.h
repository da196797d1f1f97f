/* rt_heap.h: the table of heap blocks allocated by instrumented code, with their
 * allocation stacks (rt_heap.c). */
#ifndef FTSAN_RT_HEAP_H
#define FTSAN_RT_HEAP_H

#include "rt_internal.h"

#define FTSAN_HEAP_STACK 16

typedef struct ftsan_heap_block {
  uintptr_t addr;
  size_t size;
  uint32_t tid;
  uint32_t nstack;
  uint64_t stack[FTSAN_HEAP_STACK]; /* return addresses, innermost first */
} ftsan_heap_block;

/* The block is freed (by any code): forget it. Cheap when no block is known. */
void ftsan__heap_forget(uintptr_t p);
/* The live block containing addr, if instrumented code allocated it. */
int ftsan__heap_find(uintptr_t addr, ftsan_heap_block *out);

#endif
