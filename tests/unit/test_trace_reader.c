/* test_trace_reader.c: unit tests of the CLI's trace reader on synthetic traces: valid,
 * truncated, corrupt, wrong version, unknown record kinds. */
#include "check.h"
#include "trace_reader.h"

#include <unistd.h>

static char dir[] = "/tmp/ftsan-trace-test-XXXXXX";

/* A trace builder: header, then records appended with add(). */
static unsigned char buf[1 << 16];
static size_t len;

static void begin(uint16_t major) {
  struct ftsan_trace_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, FTSAN_TRACE_MAGIC, 8);
  h.major = major;
  h.minor = 3;
  h.pointer_size = 8;
  h.byte_order = FTSAN_TRACE_LITTLE_ENDIAN;
  h.header_size = sizeof h;
  h.pid = 4242;
  memcpy(buf, &h, sizeof h);
  len = sizeof h;
}

static void add(const void *rec, size_t n) {
  memcpy(buf + len, rec, n);
  len += n;
}

static void add_module(uint64_t start, uint64_t end, uint32_t flags, const char *path) {
  unsigned char r[256];
  memset(r, 0, sizeof r);
  struct ftsan_rec_module *m = (struct ftsan_rec_module *)r;
  size_t plen = strlen(path) + 1;
  m->h.kind = FTSAN_REC_MODULE;
  m->h.size = (uint32_t)((sizeof *m + 2 + plen + 7) & ~7u);
  m->bias = start;
  m->start = start;
  m->end = end;
  m->build_id_len = 2;
  m->flags = flags;
  r[sizeof *m] = 0xab;
  r[sizeof *m + 1] = 0x01;
  memcpy(r + sizeof *m + 2, path, plen);
  add(r, m->h.size);
}

static void add_end(void) {
  struct ftsan_rec_end e;
  memset(&e, 0, sizeof e);
  e.h.kind = FTSAN_REC_END;
  e.h.size = sizeof e;
  e.threads = 3;
  add(&e, sizeof e);
}

static const char *save(const char *name) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  fwrite(buf, 1, len, f);
  fclose(f);
  return path;
}

TEST(valid_trace_with_modules_stats_and_end) {
  begin(FTSAN_TRACE_MAJOR);
  add_module(0x1000, 0x2000, FTSAN_MOD_MAIN, "/usr/bin/python3.13t");
  add_module(0x7000, 0x8000, 0, "/tmp/ext.so");
  add_module(0x7000, 0x8000, FTSAN_MOD_INSTRUMENTED, "/tmp/ext.so"); /* replaces */
  struct { struct ftsan_rec_site_stats s; struct ftsan_site_count c[2]; } st;
  memset(&st, 0, sizeof st);
  st.s.h.kind = FTSAN_REC_SITE_STATS;
  st.s.h.size = sizeof st;
  st.s.tid = 2;
  st.s.count = 2;
  st.c[0] = (struct ftsan_site_count){0x7010, FTSAN_EV_READ, 0, 5};
  st.c[1] = (struct ftsan_site_count){0x7020, FTSAN_EV_WRITE, 0, 7};
  add(&st, sizeof st);
  add_end();
  ftsan_trace t;
  char err[256] = "";
  CHECK_EQ(ftsan_trace_load(save("ftsan.1.trace"), &t, err, sizeof err), 0);
  CHECK_EQ(t.header.pid, 4242);
  CHECK_EQ(t.nmodules, 2);
  CHECK_EQ(t.complete, 1);
  CHECK_EQ(t.end.threads, 3);
  const ftsan_module *m = ftsan_trace_module_for(&t, 0x7010);
  CHECK(m != NULL);
  if (m) {
    CHECK_STR(m->path, "/tmp/ext.so");
    CHECK_EQ(m->flags, FTSAN_MOD_INSTRUMENTED);
    CHECK_STR(m->build_id, "ab01");
  }
  CHECK(ftsan_trace_module_for(&t, 0x9000) == NULL);
  CHECK_EQ(t.nsites, 2);
  CHECK_EQ(t.sites[1].count, 7);
  CHECK_EQ(t.sites[1].tid, 2);
  ftsan_trace_free(&t);
}

TEST(truncated_trace_is_read_and_marked_incomplete) {
  begin(FTSAN_TRACE_MAJOR);
  add_module(0x1000, 0x2000, FTSAN_MOD_MAIN, "/usr/bin/python3.13t");
  add_module(0x7000, 0x8000, 0, "/tmp/ext.so");
  len -= 5; /* cut in the middle of the last record */
  ftsan_trace t;
  char err[256] = "";
  CHECK_EQ(ftsan_trace_load(save("ftsan.2.trace"), &t, err, sizeof err), 0);
  CHECK_EQ(t.nmodules, 1);
  CHECK_EQ(t.complete, 0);
  ftsan_trace_free(&t);
}

TEST(unknown_record_kinds_are_skipped) {
  begin(FTSAN_TRACE_MAJOR);
  uint64_t future[4] = {0};
  struct ftsan_rec_header *h = (struct ftsan_rec_header *)future;
  h->kind = 999;
  h->size = sizeof future;
  add(future, sizeof future);
  add_module(0x1000, 0x2000, FTSAN_MOD_MAIN, "/bin/x");
  add_end();
  ftsan_trace t;
  char err[256] = "";
  CHECK_EQ(ftsan_trace_load(save("ftsan.3.trace"), &t, err, sizeof err), 0);
  CHECK_EQ(t.unknown_records, 1);
  CHECK_EQ(t.nmodules, 1);
  CHECK_EQ(t.complete, 1);
  ftsan_trace_free(&t);
}

TEST(corrupt_record_size_is_an_error) {
  begin(FTSAN_TRACE_MAJOR);
  struct ftsan_rec_header h = {FTSAN_REC_MODULE, 12}; /* not a multiple of 8 */
  add(&h, sizeof h);
  ftsan_trace t;
  char err[256] = "";
  CHECK_EQ(ftsan_trace_load(save("ftsan.4.trace"), &t, err, sizeof err), -1);
  CHECK(strstr(err, "corrupt record") != NULL);
  ftsan_trace_free(&t);
}

TEST(record_with_lengths_beyond_its_size_is_an_error) {
  begin(FTSAN_TRACE_MAJOR);
  struct { struct ftsan_rec_site_stats s; } st;
  memset(&st, 0, sizeof st);
  st.s.h.kind = FTSAN_REC_SITE_STATS;
  st.s.h.size = sizeof st;
  st.s.count = 1000000; /* claims far more entries than the record holds */
  add(&st, sizeof st);
  ftsan_trace t;
  char err[256] = "";
  CHECK_EQ(ftsan_trace_load(save("ftsan.5.trace"), &t, err, sizeof err), -1);
  CHECK(strstr(err, "corrupt stats record") != NULL);
  ftsan_trace_free(&t);
}

TEST(unknown_major_version_is_rejected) {
  begin(FTSAN_TRACE_MAJOR + 1);
  ftsan_trace t;
  char err[256] = "";
  CHECK_EQ(ftsan_trace_load(save("ftsan.6.trace"), &t, err, sizeof err), -1);
  CHECK(strstr(err, "not supported") != NULL);
  ftsan_trace_free(&t);
}

TEST(bad_magic_and_short_files_are_rejected) {
  memcpy(buf, "NOTATRACE-------------------------------", 40);
  len = 40;
  ftsan_trace t;
  char err[256] = "";
  CHECK_EQ(ftsan_trace_load(save("ftsan.7.trace"), &t, err, sizeof err), -1);
  CHECK(strstr(err, "bad magic") != NULL);
  ftsan_trace_free(&t);
  memcpy(buf, FTSAN_TRACE_MAGIC, 8);
  len = 12;
  CHECK_EQ(ftsan_trace_load(save("ftsan.8.trace"), &t, err, sizeof err), -1);
  CHECK(strstr(err, "truncated trace header") != NULL);
  ftsan_trace_free(&t);
  CHECK_EQ(ftsan_trace_load("/nonexistent/ftsan.trace", &t, err, sizeof err), -1);
  ftsan_trace_free(&t);
}

TEST(directory_listing_finds_only_traces_sorted) {
  char **files;
  char err[256];
  int n = ftsan_trace_list(dir, &files, err, sizeof err);
  CHECK_EQ(n, 8);
  if (n >= 2) {
    CHECK(strstr(files[0], "ftsan.1.trace") != NULL);
    CHECK(strstr(files[1], "ftsan.2.trace") != NULL);
  }
  for (int i = 0; i < n; i++) free(files[i]);
  free(files);
  CHECK_EQ(ftsan_trace_list("/nonexistent-dir", &files, err, sizeof err), -1);
}

int main(void) {
  if (!mkdtemp(dir)) return 2;
  RUN(valid_trace_with_modules_stats_and_end);
  RUN(truncated_trace_is_read_and_marked_incomplete);
  RUN(unknown_record_kinds_are_skipped);
  RUN(corrupt_record_size_is_an_error);
  RUN(record_with_lengths_beyond_its_size_is_an_error);
  RUN(unknown_major_version_is_rejected);
  RUN(bad_magic_and_short_files_are_rejected);
  RUN(directory_listing_finds_only_traces_sorted);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 2;
  return CHECK_DONE();
}
