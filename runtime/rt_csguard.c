/* rt_csguard.c: critical sections that were interrupted while C code relied on them.
 *
 * Py_BEGIN_CRITICAL_SECTION(list) does not hold the list's lock for the whole section: when
 * the thread blocks inside it (waits for another lock, sleeps, does I/O, runs Python code
 * that does), the interpreter suspends the section, releases the lock, and takes it back
 * before the thread goes on. Another thread may change the list in between. Code that read
 * the list's size or items before the blocking call and keeps using them after it works on
 * a list that no longer exists: stale sizes, freed items (a crash in the wild). Happens-
 * before sees nothing wrong (every access is ordered by the lock), so this is a check of
 * its own:
 *   - at a real suspension (the patch on _PyCriticalSection_SuspendAll), each list or dict
 *     whose section this thread holds and whose contents it already read inside the section
 *     (a cell of its own in the shadow of the contents field, newer than the section's
 *     start) is watched, and the thread's vector clock is kept as it was then;
 *   - when the thread next reads a watched field, the shadow cell written by the mutation
 *     (rt_hooks.c writes the field under the section) is from another thread; if that
 *     write is newer than the kept clock, it happened while the section was suspended:
 *     reported as an interrupted critical section, with both stacks, like a race;
 *   - the end of the section stops the watch. */
#define _GNU_SOURCE 1
#include "rt_race.h"

#include <dlfcn.h>
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define WATCH_MAX 8

FTSAN_TLS uint32_t ftsan__csguard_nwatch;
static FTSAN_TLS uintptr_t watch_mutex[WATCH_MAX], watch_field[WATCH_MAX];
/* Per watch, the thread's vector clock at the suspension that started it (each watch its
 * own: a section entered after an earlier suspension was ordered after changes made before
 * it), and where that suspension was. WATCH_MAX rows of FTSAN_MAX_THREADS, mapped on first
 * use and touched only as far as threads exist. */
static FTSAN_TLS uint64_t *kept;
static FTSAN_TLS uint32_t kept_len[WATCH_MAX];
static FTSAN_TLS uint64_t (*susp_stack)[FTSAN_SUSPEND_STACK]; /* WATCH_MAX rows, mapped with kept */
static FTSAN_TLS uint32_t susp_len[WATCH_MAX];

/* The C stack of the suspension, without the runtime's own frames (the hook): it shows the
 * blocking call inside the section. Taken once per watch, so its cost does not matter. */
static void capture_suspension(ftsan_thread *t, uint32_t w) {
  void *pcs[FTSAN_SUSPEND_STACK + 8];
  t->ignore++;
  int n = unw_backtrace(pcs, FTSAN_SUSPEND_STACK + 8);
  t->ignore--;
  Dl_info self, info;
  uint32_t k = 0;
  int have_self = dladdr((void *)capture_suspension, &self) != 0;
  for (int i = 0; i < n && k < FTSAN_SUSPEND_STACK; i++) {
    if (have_self && k == 0 && dladdr(pcs[i], &info) && info.dli_fbase == self.dli_fbase) continue;
    susp_stack[w][k++] = (uint64_t)(uintptr_t)pcs[i];
  }
  susp_len[w] = k;
}

static void drop_watch(uint32_t k) {
  uint32_t last = --ftsan__csguard_nwatch;
  if (k == last) return;
  watch_mutex[k] = watch_mutex[last];
  watch_field[k] = watch_field[last];
  kept_len[k] = kept_len[last];
  for (uint32_t i = 0; i < kept_len[k]; i++) kept[(size_t)k * FTSAN_MAX_THREADS + i] = kept[(size_t)last * FTSAN_MAX_THREADS + i];
  susp_len[k] = susp_len[last];
  for (uint32_t i = 0; i < susp_len[k]; i++) susp_stack[k][i] = susp_stack[last][i];
}

/* The field that stands for a container's contents, 0 for other objects. */
static uintptr_t contents_field(uintptr_t obj) {
  uint64_t tp = ftsan__pyobject_type(obj), flags;
  if (!tp || ftsan__safe_read(&flags, tp + FTSAN_PY_TP_FLAGS, 8)) return 0;
  if (flags & FTSAN_PY_TPFLAGS_LIST_SUBCLASS) return obj + FTSAN_PY_LIST_CONTENTS;
  if (flags & FTSAN_PY_TPFLAGS_DICT_SUBCLASS) return obj + FTSAN_PY_DICT_CONTENTS;
  return 0;
}

/* This thread accessed field after epoch `since`. */
static int touched_since(ftsan_thread *t, uintptr_t field, uint64_t since) {
  uint64_t *cells = ftsan__shadow_cells(field);
  if (!cells) return 0;
  for (int i = 0; i < FTSAN_CELLS; i++) {
    uint64_t c = __atomic_load_n(&cells[i], __ATOMIC_RELAXED);
    if (c && CELL_TID(c) == t->tid && CELL_EPOCH(c) > since) return 1;
  }
  return 0;
}

void ftsan__csguard_suspended(ftsan_thread *t, const uintptr_t *mutexes, const uint64_t *since, uint32_t n) {
  for (uint32_t i = 0; i < n && ftsan__csguard_nwatch < WATCH_MAX; i++) {
    if (mutexes[i] < 4096) continue;
    uintptr_t field = contents_field(mutexes[i] - FTSAN_PY_OB_MUTEX);
    if (!field || !touched_since(t, field, since[i])) continue;
    int dup = 0;
    for (uint32_t k = 0; k < ftsan__csguard_nwatch; k++) dup |= watch_field[k] == field;
    if (dup) continue; /* the earlier suspension's clock stays: the read was before it */
    if (!kept) {
      kept = ftsan__map(sizeof(uint64_t) * FTSAN_MAX_THREADS * WATCH_MAX);
      susp_stack = ftsan__map(sizeof(uint64_t[FTSAN_SUSPEND_STACK]) * WATCH_MAX);
      if (!kept || !susp_stack) {
        kept = NULL; /* a mapping that failed: no check in this thread (leaks the other) */
        return;
      }
    }
    uint32_t w = ftsan__csguard_nwatch++;
    watch_mutex[w] = mutexes[i];
    watch_field[w] = field;
    uint32_t len = __atomic_load_n(&ftsan__thread_count, __ATOMIC_ACQUIRE);
    kept_len[w] = len > FTSAN_MAX_THREADS ? FTSAN_MAX_THREADS : len;
    for (uint32_t k = 0; k < kept_len[w]; k++) kept[(size_t)w * FTSAN_MAX_THREADS + k] = t->vc[k];
    capture_suspension(t, w);
  }
}

void ftsan__csguard_end(uintptr_t mutex) {
  for (uint32_t k = 0; k < ftsan__csguard_nwatch;) {
    if (watch_mutex[k] == mutex) drop_watch(k);
    else k++;
  }
}

/* A read (a write needs no earlier state: appending after the blocking call is fine) of a
 * watched field, whose shadow holds old, a write of another thread ordered before it. A
 * write newer than the watch's clock was made while the section was suspended. One report
 * per watch: the thread has now seen the new state. */
void ftsan__csguard_check(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t old, uint64_t pc) {
  if (CELL_WRITE(cur)) return;
  uintptr_t g = addr & ~(uintptr_t)7;
  for (uint32_t k = 0; k < ftsan__csguard_nwatch; k++) {
    if (watch_field[k] != g) continue;
    uint32_t w = CELL_TID(old);
    if (w == t->tid || !CELL_WRITE(old)) return;
    uint64_t seen = w < kept_len[k] ? kept[(size_t)k * FTSAN_MAX_THREADS + w] : 0;
    if (CELL_EPOCH(old) > seen) {
      ftsan__report_cs_interrupted(t, addr, cur, old, pc, susp_stack[k], susp_len[k]);
      drop_watch(k);
    }
    return;
  }
}
