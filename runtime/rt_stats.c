/* rt_stats.c: per-thread event counts per instrumented code site (an open-addressing table
 * private to its thread, so no lock), written to the trace when the thread ends. They show
 * that instrumented code ran and where, before any finding exists. */
#include "rt_internal.h"

#include <string.h>

void ftsan__stats_add_slow(ftsan_thread *t, uint64_t pc, uint32_t kind) {
  if (FTSAN_UNLIKELY(!t->sites)) {
    if (t->ignore) return;
    t->sites = ftsan__map(sizeof(struct ftsan_site_slot) * FTSAN_SITE_TABLE);
    if (!t->sites) {
      t->stats_dropped++;
      return;
    }
  }
  uint64_t key = pc << 3 | kind;
  uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 52) & (FTSAN_SITE_TABLE - 1);
  for (uint32_t probe = 0; probe < 16; probe++) {
    struct ftsan_site_slot *s = &t->sites[(h + probe) & (FTSAN_SITE_TABLE - 1)];
    if (s->key == key) {
      s->count++;
      return;
    }
    if (s->key == 0) {
      if (t->sites_used >= FTSAN_SITE_TABLE * 3 / 4) break;
      s->key = key;
      s->count = 1;
      t->sites_used++;
      return;
    }
  }
  t->stats_dropped++;
}

static ftsan_spin flush_lock;

void ftsan__stats_after_fork(void) { flush_lock.locked = 0; }

void ftsan__stats_flush(ftsan_thread *t) {
  if (!t->sites && !t->stats_dropped) return;
  enum { CHUNK = 256 };
  /* flush_lock (file scope) guards buf: flushes are rare (thread end, exit) */
  static char buf[sizeof(struct ftsan_rec_site_stats) + CHUNK * sizeof(struct ftsan_site_count)];
  ftsan__spin_lock(&flush_lock);
  uint32_t i = 0;
  int first = 1;
  while (first || (t->sites && i < FTSAN_SITE_TABLE)) {
    struct ftsan_rec_site_stats *r = (struct ftsan_rec_site_stats *)buf;
    struct ftsan_site_count *e = (struct ftsan_site_count *)(r + 1);
    uint32_t n = 0;
    for (; t->sites && i < FTSAN_SITE_TABLE && n < CHUNK; i++) {
      struct ftsan_site_slot *s = &t->sites[i];
      if (!s->key) continue;
      e[n].pc = s->key >> 3;
      e[n].kind = (uint32_t)(s->key & 7);
      e[n].pad = 0;
      e[n].count = s->count;
      n++;
    }
    if (n == 0 && !first) break;
    memset(r, 0, sizeof *r);
    r->h.kind = FTSAN_REC_SITE_STATS;
    r->h.size = (uint32_t)(sizeof *r + n * sizeof *e);
    r->tid = t->tid;
    r->count = n;
    r->dropped = first ? t->stats_dropped : 0;
    ftsan__trace_write(buf, r->h.size);
    first = 0;
  }
  ftsan__spin_unlock(&flush_lock);
}
