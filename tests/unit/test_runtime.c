/* test_runtime.c: unit tests of the runtime's race-detection internals: vector clocks and
 * sync objects, shadow cells, the happens-before check, the event history that rebuilds
 * previous stacks. Threads are simulated with hand-made contexts. */
#include "check.h"
#include "rt_clock.h"
#include "rt_race.h"

/* ---- stubs for what these internals call outside themselves ------------------------------ */
FTSAN_TLS ftsan_thread *ftsan__cur;
ftsan_thread *ftsan__threads[FTSAN_MAX_THREADS];
uint32_t ftsan__thread_count;
volatile int ftsan__enabled = 1;
void ftsan__warn(uint32_t code, const char *fmt, ...) { (void)code; (void)fmt; }
void ftsan__log(const char *fmt, ...) { (void)fmt; }
ftsan_thread *ftsan__thread_adopt(void) { return ftsan__cur; }
int ftsan__python_frame(uintptr_t *code, int *offset) { (void)code; (void)offset; return 0; }
/* Freed-memory marks are tested end to end (tests/e2e): here a mark only has to go away. */
int ftsan__borrow_check_freed(ftsan_thread *t, uint64_t *cell, uintptr_t addr, uint64_t cur, uint64_t pc) {
  (void)t; (void)addr; (void)cur; (void)pc;
  *cell = 0;
  return 0;
}

/* Interrupted critical sections are tested end to end (tests/e2e). */
FTSAN_TLS uint32_t ftsan__csguard_nwatch;
void ftsan__csguard_check(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t old, uint64_t pc) {
  (void)t; (void)addr; (void)cur; (void)old; (void)pc;
}

int ftsan__race_on = 1;
void ftsan__stats_add_slow(ftsan_thread *t, uint64_t pc, uint32_t kind) { (void)t; (void)pc; (void)kind; }

static int races;
static uint64_t race_old, race_cur;
void ftsan__report_race(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t old, uint64_t pc) {
  (void)t; (void)addr; (void)pc;
  races++;
  race_old = old;
  race_cur = cur;
}

static ftsan_thread *new_thread(void) {
  ftsan_thread *t = ftsan__map(sizeof *t);
  t->tid = ftsan__thread_count++;
  t->vc = ftsan__map(sizeof(uint64_t) * FTSAN_MAX_THREADS);
  ftsan__history_alloc(t);
  ftsan__threads[t->tid] = t;
  return t;
}

/* One access as the entry points do it: an event in the history, then the check. */
static void access(ftsan_thread *t, void *addr, uint32_t log, int write, int atomic) {
  uint64_t pc = 0x1000 + t->tid;
  uint64_t e = ftsan__history_add(t, pc);
  uint64_t cur = ftsan__cell_piece(ftsan__cell_base(t, e, write, atomic), (uintptr_t)addr, log);
  ftsan__check_granule(t, (uintptr_t)addr, cur, pc);
}

static uint64_t word[64] __attribute__((aligned(8)));
static ftsan_thread *a, *b;

static void reset(void) {
  races = 0;
  ftsan__shadow_clear((uintptr_t)word, sizeof word);
}

TEST(unordered_writes_race) {
  reset();
  access(a, &word[0], 3, 1, 0);
  access(b, &word[0], 3, 1, 0);
  CHECK_EQ(races, 1);
  CHECK_EQ(CELL_TID(race_old), a->tid);
  CHECK_EQ(CELL_TID(race_cur), b->tid);
  CHECK_EQ(CELL_WRITE(race_old), 1);
}

TEST(write_then_read_races_read_then_read_does_not) {
  reset();
  access(a, &word[1], 3, 0, 0);
  access(b, &word[1], 3, 0, 0);
  CHECK_EQ(races, 0);
  access(b, &word[2], 3, 1, 0);
  access(a, &word[2], 3, 0, 0);
  CHECK_EQ(races, 1);
}

TEST(release_acquire_orders_accesses) {
  reset();
  access(a, &word[3], 3, 1, 0);
  ftsan__release(a, 0xabc0);
  ftsan__acquire(b, 0xabc0);
  access(b, &word[3], 3, 1, 0);
  CHECK_EQ(races, 0);
  /* but a's accesses after its release are not ordered with b */
  access(a, &word[3], 3, 1, 0);
  CHECK_EQ(races, 1);
}

TEST(acquire_of_unknown_or_forgotten_sync_gives_nothing) {
  reset();
  access(a, &word[4], 3, 1, 0);
  ftsan__acquire(b, 0xdead0);
  access(b, &word[4], 3, 1, 0);
  CHECK_EQ(races, 1);
  reset();
  access(a, &word[5], 3, 1, 0);
  ftsan__release(a, 0xbee0);
  ftsan__sync_forget(0xbee0);
  ftsan__acquire(b, 0xbee0);
  access(b, &word[5], 3, 1, 0);
  CHECK_EQ(races, 1);
}

TEST(atomics_do_not_race_with_atomics_but_with_plain_accesses) {
  reset();
  access(a, &word[6], 3, 1, 1);
  access(b, &word[6], 3, 1, 1);
  CHECK_EQ(races, 0);
  access(b, &word[6], 3, 0, 0);
  CHECK_EQ(races, 1);
  CHECK_EQ(CELL_ATOMIC(race_old), 1);
}

TEST(different_bytes_of_one_granule_do_not_race) {
  reset();
  char *p = (char *)&word[7];
  access(a, p, 2, 1, 0);     /* bytes 0..3 */
  access(b, p + 4, 2, 1, 0); /* bytes 4..7 */
  CHECK_EQ(races, 0);
  access(b, p + 2, 1, 1, 0); /* bytes 2..3 overlap a's */
  CHECK_EQ(races, 1);
}

TEST(cleared_memory_forgets_accesses) {
  reset();
  access(a, &word[8], 3, 1, 0);
  ftsan__shadow_clear((uintptr_t)&word[8], 8);
  access(b, &word[8], 3, 1, 0);
  CHECK_EQ(races, 0);
}

TEST(thread_creation_and_join_order_accesses) {
  reset();
  access(a, &word[9], 3, 1, 0);
  ftsan_thread *c = new_thread();
  ftsan__clock_inherit(c, a);
  access(c, &word[9], 3, 1, 0);
  CHECK_EQ(races, 0);
  c->vc[c->tid] = c->epoch; /* what the end of a thread does */
  ftsan__clock_join_thread(a, c);
  access(a, &word[9], 3, 1, 0);
  CHECK_EQ(races, 0);
}

TEST(same_thread_never_races_with_itself) {
  reset();
  for (int i = 0; i < 10; i++) access(a, &word[10], 3, i & 1, 0);
  CHECK_EQ(races, 0);
}

static int used_cells(void *addr) {
  const uint64_t *c = ftsan__shadow_cells((uintptr_t)addr);
  int n = 0;
  for (int i = 0; i < FTSAN_CELLS; i++) n += c[i] != 0;
  return n;
}

static ftsan_thread *third(void) {
  static ftsan_thread *c;
  if (!c) c = new_thread();
  return c;
}

TEST(ordered_plain_write_supersedes_what_it_covers) {
  reset();
  ftsan_thread *c = third();
  access(a, &word[11], 3, 1, 0);
  ftsan__release(a, 0x1230);
  ftsan__acquire(c, 0x1230);
  access(c, &word[11], 3, 0, 0);
  ftsan__release(c, 0x1238);
  ftsan__acquire(b, 0x1238);
  CHECK_EQ(used_cells(&word[11]), 2);
  access(b, &word[11], 3, 1, 0); /* after both: their cells make room */
  CHECK_EQ(races, 0);
  CHECK_EQ(used_cells(&word[11]), 1);
  access(a, &word[11], 3, 0, 0); /* a's read after its release races with b's write */
  CHECK_EQ(races, 1);
  CHECK_EQ(CELL_TID(race_old), b->tid);
}

TEST(ordered_access_keeps_what_it_does_not_supersede) {
  ftsan_thread *c = third();
  /* a smaller write keeps the wider one */
  reset();
  access(a, &word[12], 3, 1, 0);
  ftsan__release(a, 0x1240);
  ftsan__acquire(b, 0x1240);
  access(b, &word[12], 2, 1, 0);
  CHECK_EQ(used_cells(&word[12]), 2);
  /* a read keeps the write before it: c's read, unordered with a's write, still races */
  reset();
  access(a, &word[13], 3, 1, 0);
  ftsan__release(a, 0x1250);
  ftsan__acquire(b, 0x1250);
  access(b, &word[13], 3, 0, 0);
  CHECK_EQ(used_cells(&word[13]), 2);
  access(c, &word[13], 3, 0, 0);
  CHECK_EQ(races, 1);
  CHECK_EQ(CELL_TID(race_old), a->tid);
  /* an atomic write keeps a plain one: c's atomic write races with a's plain write only */
  reset();
  access(a, &word[14], 3, 1, 0);
  ftsan__release(a, 0x1260);
  ftsan__acquire(b, 0x1260);
  access(b, &word[14], 3, 1, 1);
  CHECK_EQ(used_cells(&word[14]), 2);
  access(c, &word[14], 3, 1, 1);
  CHECK_EQ(races, 1);
  CHECK_EQ(CELL_TID(race_old), a->tid);
  /* an ordered read supersedes an earlier read */
  reset();
  access(a, &word[15], 3, 0, 0);
  ftsan__release(a, 0x1270);
  ftsan__acquire(b, 0x1270);
  access(b, &word[15], 3, 0, 0);
  CHECK_EQ(used_cells(&word[15]), 1);
  CHECK_EQ(races, 0);
}

TEST(a_range_checks_every_byte_and_no_other) {
  reset();
  ftsan__cur = a;
  char *p = (char *)&word[20];
  __ftsan_write_range(p + 3, 61); /* bytes 3..63: a partial granule, 6 whole ones, none left */
  ftsan__cur = b;
  access(b, p, 1, 1, 0); /* bytes 0..1: before the range */
  CHECK_EQ(races, 0);
  access(b, p + 2, 0, 0, 0); /* byte 2 */
  CHECK_EQ(races, 0);
  access(b, p + 3, 0, 0, 0); /* byte 3, the first */
  CHECK_EQ(races, 1);
  access(b, p + 40, 2, 0, 0); /* inside */
  CHECK_EQ(races, 2);
  access(b, p + 63, 0, 1, 0); /* the last byte */
  CHECK_EQ(races, 3);
  access(b, p + 64, 3, 1, 0); /* after */
  CHECK_EQ(races, 3);
  ftsan__cur = NULL;
}

TEST(shadow_covers_user_space_only) {
  CHECK(ftsan__shadow_cells((uintptr_t)word) != NULL);
  CHECK(ftsan__shadow_cells((uintptr_t)1 << 50) == NULL);
  CHECK(ftsan__shadow_cells((uintptr_t)&word[1]) == ftsan__shadow_cells((uintptr_t)&word[0]) + FTSAN_CELLS);
  CHECK(ftsan__shadow_cells((uintptr_t)&word[0] + 7) == ftsan__shadow_cells((uintptr_t)&word[0]));
}

TEST(cell_encoding_round_trips) {
  uint64_t c = CELL_MAKE(123456789ull, 4095, 5, 2, 1, 0);
  CHECK_EQ(CELL_EPOCH(c), 123456789ull);
  CHECK_EQ(CELL_TID(c), 4095);
  CHECK_EQ(CELL_OFF(c), 5);
  CHECK_EQ(CELL_LOG(c), 2);
  CHECK_EQ(CELL_WRITE(c), 1);
  CHECK_EQ(CELL_ATOMIC(c), 0);
}

TEST(history_rebuilds_the_stack_of_an_old_access) {
  ftsan_thread *t = new_thread();
  /* main -> f (called from 0x500) -> g (called from 0x600), access at 0x700 */
  ftsan__history_add(t, 0x500 | (FTSAN_EV_TYPE_ENTRY << 62));
  t->stack[t->depth++] = 0x500;
  ftsan__history_add(t, 0x600 | (FTSAN_EV_TYPE_ENTRY << 62));
  t->stack[t->depth++] = 0x600;
  uint64_t e = ftsan__history_add(t, 0x700);
  ftsan__history_add(t, FTSAN_EV_TYPE_EXIT << 62);
  t->depth--;
  /* many more events, crossing block boundaries */
  for (int i = 0; i < 1000; i++) { /* 3000 events: within the 4096-event ring */
    ftsan__history_add(t, 0x800 | (FTSAN_EV_TYPE_ENTRY << 62));
    t->stack[t->depth++] = 0x800;
    uint64_t e2 = ftsan__history_add(t, 0x900);
    (void)e2;
    ftsan__history_add(t, FTSAN_EV_TYPE_EXIT << 62);
    t->depth--;
  }
  uint64_t out[8];
  int n = ftsan__history_restore(t, e, out, 8, NULL);
  CHECK_EQ(n, 3);
  CHECK_EQ(out[0], 0x700);
  CHECK_EQ(out[1], 0x600);
  CHECK_EQ(out[2], 0x500);
  /* an access in a later block, rebuilt from that block's snapshot */
  uint64_t late = ftsan__history_add(t, 0xa00);
  n = ftsan__history_restore(t, late, out, 8, NULL);
  CHECK_EQ(n, 2);
  CHECK_EQ(out[0], 0xa00);
  CHECK_EQ(out[1], 0x500);
  /* an event that is not an access, or in the future, gives nothing */
  CHECK_EQ(ftsan__history_restore(t, e + 1, out, 8, NULL), 0);
  CHECK_EQ(ftsan__history_restore(t, t->epoch + 5, out, 8, NULL), 0);
}

TEST(history_forgets_overwritten_events) {
  ftsan_thread *t = new_thread();
  uint64_t first = ftsan__history_add(t, 0x700);
  for (uint64_t i = 0; i <= t->hist_mask; i++) ftsan__history_add(t, 0x900);
  uint64_t out[4];
  CHECK_EQ(ftsan__history_restore(t, first, out, 4, NULL), 0);
}

int main(void) {
  ftsan__opt.history_size = 12;
  if (ftsan__shadow_init() != 0 || ftsan__clock_init() != 0) return 2;
  a = new_thread();
  b = new_thread();
  RUN(unordered_writes_race);
  RUN(write_then_read_races_read_then_read_does_not);
  RUN(release_acquire_orders_accesses);
  RUN(acquire_of_unknown_or_forgotten_sync_gives_nothing);
  RUN(atomics_do_not_race_with_atomics_but_with_plain_accesses);
  RUN(different_bytes_of_one_granule_do_not_race);
  RUN(cleared_memory_forgets_accesses);
  RUN(thread_creation_and_join_order_accesses);
  RUN(same_thread_never_races_with_itself);
  RUN(ordered_plain_write_supersedes_what_it_covers);
  RUN(ordered_access_keeps_what_it_does_not_supersede);
  RUN(a_range_checks_every_byte_and_no_other);
  RUN(shadow_covers_user_space_only);
  RUN(cell_encoding_round_trips);
  RUN(history_rebuilds_the_stack_of_an_old_access);
  RUN(history_forgets_overwritten_events);
  return CHECK_DONE();
}
