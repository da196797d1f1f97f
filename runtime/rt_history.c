/* rt_history.c: each thread's recent events (accesses, function entries and exits) in a
 * ring, with a snapshot of the shadow stack at the start of every block of events, so that
 * the stack of a previous access can be rebuilt when it turns out to race (the technique
 * ThreadSanitizer uses). The ring is overwritten: old enough accesses lose their stack. */
#include "rt_internal.h"

#include <string.h>

int ftsan__history_alloc(ftsan_thread *t) {
  uint32_t log = (uint32_t)ftsan__opt.history_size;
  if (log < FTSAN_HIST_BLOCK_LOG + 1) log = FTSAN_HIST_BLOCK_LOG + 1;
  size_t events = (size_t)1 << log;
  size_t nsnaps = events >> FTSAN_HIST_BLOCK_LOG;
  t->hist = ftsan__map(events * sizeof(uint64_t));
  t->snaps = ftsan__map(nsnaps * sizeof(ftsan_hist_snap));
  if (!t->hist || !t->snaps) {
    ftsan__unmap(t->hist, events * sizeof(uint64_t));
    ftsan__unmap(t->snaps, nsnaps * sizeof(ftsan_hist_snap));
    t->hist = NULL;
    t->snaps = NULL;
    return -1;
  }
  t->hist_mask = events - 1;
  t->snaps_mask = (uint32_t)(nsnaps - 1);
  return 0;
}

void ftsan__history_snapshot(ftsan_thread *t, uint64_t epoch) {
  if (!t->snaps) return;
  ftsan_hist_snap *s = &t->snaps[(epoch >> FTSAN_HIST_BLOCK_LOG) & t->snaps_mask];
  /* Readers check the epoch before and after reading a snapshot; clearing it first makes a
   * half-written snapshot look unused. */
  __atomic_store_n(&s->epoch, 0, __ATOMIC_RELEASE);
  uint32_t d = t->depth < FTSAN_SHADOW_STACK ? t->depth : FTSAN_SHADOW_STACK;
  s->depth = t->depth;
  s->py = t->last_py;
  memcpy(s->frames, t->stack, d * sizeof(uint64_t));
  __atomic_store_n(&s->epoch, epoch, __ATOMIC_RELEASE);
}

int ftsan__history_restore(ftsan_thread *t, uint64_t epoch, uint64_t *out, int max, uint64_t *py_out) {
  uint64_t py = 0;
  if (py_out) *py_out = 0;
  if (!t || !t->hist || !t->snaps || max <= 0) return 0;
  uint64_t now = __atomic_load_n(&t->epoch, __ATOMIC_ACQUIRE);
  if (epoch == 0 || epoch > now || now - epoch > t->hist_mask) return 0;
  uint64_t block = epoch & ~(uint64_t)(FTSAN_HIST_BLOCK - 1);
  if (block == 0) block = 0; /* epochs below the first block have an implicit empty snapshot */
  ftsan_hist_snap *s = &t->snaps[(block >> FTSAN_HIST_BLOCK_LOG) & t->snaps_mask];
  uint64_t stack[FTSAN_SHADOW_STACK];
  uint32_t depth = 0;
  if (block != 0) {
    if (__atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE) != block) return 0;
    depth = s->depth;
    py = s->py;
    memcpy(stack, s->frames, (depth < FTSAN_SHADOW_STACK ? depth : FTSAN_SHADOW_STACK) * 8);
  }
  uint64_t pc = 0;
  for (uint64_t e = block ? block : 1; e <= epoch; e++) {
    uint64_t ev = __atomic_load_n(&t->hist[e & t->hist_mask], __ATOMIC_RELAXED);
    uint64_t type = ev >> 62;
    if (e == epoch) {
      if (type != FTSAN_EV_TYPE_ACCESS) return 0;
      pc = ev & FTSAN_EV_PC_MASK;
      break;
    }
    if (type == FTSAN_EV_TYPE_ENTRY) {
      if (depth < FTSAN_SHADOW_STACK) stack[depth] = ev & FTSAN_EV_PC_MASK;
      depth++;
    } else if (type == FTSAN_EV_TYPE_EXIT) {
      if (depth > 0) depth--;
    } else if (type == FTSAN_EV_TYPE_PY) {
      py = ev;
    }
  }
  /* The ring may have been overwritten while it was read. */
  now = __atomic_load_n(&t->epoch, __ATOMIC_ACQUIRE);
  if (now - epoch > t->hist_mask) return 0;
  if (block != 0 && __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE) != block) return 0;
  if (py_out) *py_out = py;
  int n = 0;
  out[n++] = pc;
  uint32_t top = depth < FTSAN_SHADOW_STACK ? depth : FTSAN_SHADOW_STACK;
  for (uint32_t i = top; i > 0 && n < max; i--) out[n++] = stack[i - 1];
  return n;
}

void ftsan__history_python_entry(ftsan_thread *t) {
  uintptr_t code;
  int offset;
  if (!ftsan__python_frame(&code, &offset)) return;
  if (offset < 0 || offset >= (1 << 14)) offset = (1 << 14) - 1;
  uint64_t ev = ((uint64_t)code & FTSAN_EV_PC_MASK) | ((uint64_t)offset << 48) | (FTSAN_EV_TYPE_PY << 62);
  ftsan__history_add(t, ev);
  t->last_py = ev;
}
