/* rt_borrow.c: borrowed references and use-after-free. The pass calls __ftsan_borrow after
 * each C-API call that returns a borrowed reference (PyList_GetItem, PyDict_GetItem, ...).
 * With the GIL, such a pointer stayed valid while the caller did not run Python code; in a
 * free-threaded build another thread can drop the last reference at any time. The runtime
 * remembers recent borrows (a ring per thread, each entry valid while the borrowing C frame
 * is live, and a global set of borrowed addresses). When the interpreter frees a borrowed
 * object (the mi_free patch asks ftsan__borrow_freed), its shadow is marked freed and the
 * free is recorded with its stacks; an instrumented access that finds the mark, through a
 * pointer its thread borrowed, is a use-after-free report naming the borrowing call. */
#define _GNU_SOURCE 1
#include "rt_borrow.h"

#include <string.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define SET_SIZE (1u << 16)
#define FREES 256
#define FREE_STACK 48
#define FREE_PY 16

static uintptr_t borrowed[SET_SIZE];     /* lock-free set of borrowed object addresses */
static uint32_t nborrowed;               /* atomic: entries ever added (0: skip lookups) */

struct freed {
  uintptr_t addr;
  size_t size;
  uint32_t tid;
  uint32_t nstack, npy;
  uint32_t reported;                     /* atomic */
  char type_name[64];
  uint64_t stack[FREE_STACK];
  uint64_t py[FREE_PY];
};
static struct freed frees[FREES];        /* ring; slot i written only by the freeing thread */
static uint32_t nfrees;                  /* atomic */

static uint32_t slot_of(uintptr_t p) { return (uint32_t)(((uint64_t)p * 0x9E3779B97F4A7C15ull) >> 48); }

FTSAN_EXPORT void __ftsan_borrow(void *op, uint32_t api) {
  if (!op || !ftsan__race_on) return;
  ftsan_thread *t = ftsan__thread();
  if (t->ignore) return;
  uintptr_t o = (uintptr_t)op;
  struct ftsan_borrow *b = &t->borrows[t->nborrows++ % 16];
  b->op = o;
  b->pc = (uint64_t)(uintptr_t)__builtin_return_address(0);
  b->pyev = t->last_py;
  b->api = api;
  b->depth = t->depth;
  b->serial = t->depth && t->depth <= FTSAN_SHADOW_STACK ? t->frame_serial[t->depth - 1] : 0;
  uint32_t s = slot_of(o);
  for (uint32_t i = 0; i < 4; i++) {
    uintptr_t *e = &borrowed[(s + i) & (SET_SIZE - 1)];
    uintptr_t v = __atomic_load_n(e, __ATOMIC_RELAXED);
    if (v == o) break;
    if (v == 0 || i == 3) {
      __atomic_store_n(e, o, __ATOMIC_RELAXED);
      __atomic_fetch_add(&nborrowed, 1, __ATOMIC_RELAXED);
      break;
    }
  }
  /* The object is alive: marks of a dead object that lived at this address before are
   * stale. Its header granules are what instrumented code reads first. */
  for (uintptr_t g = o & ~(uintptr_t)7; g < o + 32; g += 8) {
    uint64_t *cells = ftsan__shadow_cells(g);
    if (cells && CELL_TID(__atomic_load_n(&cells[0], __ATOMIC_RELAXED)) == FTSAN_FREED_TID)
      __atomic_store_n(&cells[0], 0, __ATOMIC_RELAXED);
  }
}

int ftsan__borrow_any(void) { return __atomic_load_n(&nborrowed, __ATOMIC_RELAXED) != 0; }

void ftsan__borrow_freed(void *p, size_t size) {
  if (!__atomic_load_n(&nborrowed, __ATOMIC_RELAXED)) return;
  uintptr_t o = (uintptr_t)p;
  uint32_t s = slot_of(o);
  int found = 0;
  for (uint32_t i = 0; i < 4 && !found; i++) {
    uintptr_t *e = &borrowed[(s + i) & (SET_SIZE - 1)];
    if (__atomic_load_n(e, __ATOMIC_RELAXED) == o) {
      __atomic_store_n(e, 0, __ATOMIC_RELAXED);
      found = 1;
    }
  }
  if (!found) return;
  ftsan_thread *t = ftsan__thread();
  if (t->ignore) return;
  t->ignore++;
  uint32_t idx = __atomic_fetch_add(&nfrees, 1, __ATOMIC_RELAXED) % FREES;
  struct freed *f = &frees[idx];
  f->addr = o;
  f->size = size;
  f->tid = t->tid;
  f->reported = 0;
  f->type_name[0] = 0;
  /* The type is still readable while the block is being freed (tp_dealloc has run, the
   * allocator has not reused the header's type field yet); checked with safe reads. */
  uint64_t tp = ftsan__pyobject_type(o);
  uintptr_t name = 0;
  if (tp && ftsan__safe_read(&name, tp + FTSAN_PY_TP_NAME, 8) == 0 && name) {
    size_t k = 0;
    for (; k + 1 < sizeof f->type_name; k++)
      if (ftsan__safe_read(&f->type_name[k], name + k, 1) || !f->type_name[k]) break;
    f->type_name[k] = 0;
  }
  void *pcs[FREE_STACK + 4];
  int n = unw_backtrace(pcs, FREE_STACK + 4);
  f->nstack = 0;
  /* Frames 0..1 are this function and the mi_free patch. */
  for (int i = 2; i < n && f->nstack < FREE_STACK; i++) f->stack[f->nstack++] = (uint64_t)(uintptr_t)pcs[i];
  f->npy = ftsan__python_stack_ids(f->py, FREE_PY);
  /* The object's memory is dead from here on: one mark per granule (cell 0), the other
   * cells cleared. */
  for (uintptr_t g = o & ~(uintptr_t)7; g < o + size; g += 8) {
    uint64_t *cells = ftsan__shadow_cells(g);
    if (!cells) continue;
    __atomic_store_n(&cells[0], CELL_MAKE(idx, FTSAN_FREED_TID, 0, 3, 1, 0), __ATOMIC_RELAXED);
    for (int i = 1; i < FTSAN_CELLS; i++) __atomic_store_n(&cells[i], 0, __ATOMIC_RELAXED);
  }
  t->ignore--;
}

/* A live borrow of op by this thread: the borrowing frame is still on its stack. */
static const struct ftsan_borrow *live_borrow(ftsan_thread *t, uintptr_t op) {
  uint32_t n = t->nborrows < 16 ? t->nborrows : 16;
  for (uint32_t i = 0; i < n; i++) {
    const struct ftsan_borrow *b = &t->borrows[(t->nborrows - 1 - i) % 16];
    if (b->op != op) continue;
    if (b->depth > t->depth) return NULL; /* that frame returned */
    if (b->depth && b->depth <= FTSAN_SHADOW_STACK && t->frame_serial[b->depth - 1] != b->serial)
      return NULL;
    return b;
  }
  return NULL;
}

int ftsan__borrow_check_freed(ftsan_thread *t, uint64_t *cell, uintptr_t addr, uint64_t cur, uint64_t pc) {
  uint64_t old = __atomic_load_n(cell, __ATOMIC_RELAXED);
  __atomic_store_n(cell, 0, __ATOMIC_RELAXED); /* reported or reused: the mark has served */
  struct freed *f = &frees[CELL_EPOCH(old) % FREES];
  if (addr < f->addr || addr >= f->addr + f->size) return 0;
  const struct ftsan_borrow *b = live_borrow(t, f->addr);
  if (!b) return 0; /* the memory was reused and reached some other way */
  if (__atomic_exchange_n(&f->reported, 1, __ATOMIC_RELAXED)) return 1;
  ftsan__report_use_after_free(t, addr, cur, pc, f->addr, f->size, f->tid, f->stack, f->nstack,
                               f->py, f->npy, b->pc, b->api, b->pyev, f->type_name);
  return 1;
}
