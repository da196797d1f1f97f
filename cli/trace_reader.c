/* trace_reader.c: parses and validates ftsan trace files (format: include/ftsan_trace.h,
 * docs/trace-format.md). */
#define _GNU_SOURCE 1
#include "trace_reader.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

static char *dup_str(const unsigned char *p, size_t max) {
  size_t n = strnlen((const char *)p, max);
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, p, n);
  s[n] = 0;
  return s;
}

#define GROW(arr, n, cap)                                                       \
  do {                                                                          \
    if ((n) == (cap)) {                                                         \
      size_t nc = (cap) ? (cap) * 2 : 16;                                       \
      void *p = realloc((arr), nc * sizeof *(arr));                             \
      if (!p) return fail(err, errlen, "%s: out of memory", path);              \
      (arr) = p;                                                                \
      (cap) = nc;                                                               \
    }                                                                           \
  } while (0)

int ftsan_trace_load(const char *path, ftsan_trace *t, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  FILE *f = fopen(path, "rb");
  if (!f) return fail(err, errlen, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return fail(err, errlen, "%s: not a regular file", path);
  }
  t->len = (size_t)st.st_size;
  t->bytes = malloc(t->len ? t->len : 1);
  if (!t->bytes || fread(t->bytes, 1, t->len, f) != t->len) {
    fclose(f);
    return fail(err, errlen, "%s: cannot read", path);
  }
  fclose(f);
  t->path = strdup(path);

  if (t->len < 8 || memcmp(t->bytes, FTSAN_TRACE_MAGIC, 8) != 0)
    return fail(err, errlen, "%s: not an ftsan trace (bad magic)", path);
  if (t->len < sizeof(struct ftsan_trace_header))
    return fail(err, errlen, "%s: truncated trace header", path);
  memcpy(&t->header, t->bytes, sizeof t->header);
  if (t->header.major != FTSAN_TRACE_MAJOR)
    return fail(err, errlen, "%s: trace format version %u.%u is not supported (this ftsan reads %u.x)",
                path, t->header.major, t->header.minor, FTSAN_TRACE_MAJOR);
  if (t->header.byte_order != FTSAN_TRACE_LITTLE_ENDIAN)
    return fail(err, errlen, "%s: big-endian traces are not supported", path);
  if (t->header.header_size < sizeof t->header || t->header.header_size > t->len)
    return fail(err, errlen, "%s: corrupt trace header (header size %u)", path, t->header.header_size);

  size_t cap_mod = 0, cap_thr = 0, cap_site = 0, cap_warn = 0, cap_rec = 0;
  size_t off = t->header.header_size;
  while (off < t->len) {
    if (t->len - off < sizeof(struct ftsan_rec_header)) {
      t->complete = 0;
      break; /* a record cut in the middle: truncated */
    }
    struct ftsan_rec_header h;
    memcpy(&h, t->bytes + off, sizeof h);
    if (h.size < sizeof h || h.size % 8 != 0)
      return fail(err, errlen, "%s: corrupt record at offset %zu (size %u)", path, off, h.size);
    if (h.size > t->len - off) break; /* truncated */
    const unsigned char *r = t->bytes + off;
    size_t rs = h.size;
    switch (h.kind) {
    case FTSAN_REC_PROCESS: {
      struct ftsan_rec_process p;
      if (rs < sizeof p) return fail(err, errlen, "%s: corrupt process record", path);
      memcpy(&p, r, sizeof p);
      if (p.exe_len > rs - sizeof p) return fail(err, errlen, "%s: corrupt process record", path);
      t->ppid = p.ppid;
      t->python_version = p.python_version;
      t->proc_flags = p.flags;
      free(t->exe);
      free(t->cmdline);
      t->exe = dup_str(r + sizeof p, p.exe_len);
      t->cmdline = dup_str(r + sizeof p + p.exe_len, rs - sizeof p - p.exe_len);
      break;
    }
    case FTSAN_REC_MODULE: {
      struct ftsan_rec_module m;
      if (rs < sizeof m) return fail(err, errlen, "%s: corrupt module record", path);
      memcpy(&m, r, sizeof m);
      if (m.build_id_len > rs - sizeof m) return fail(err, errlen, "%s: corrupt module record", path);
      ftsan_module *dst = NULL;
      for (size_t i = 0; i < t->nmodules; i++)
        if (t->modules[i].start == m.start) dst = &t->modules[i]; /* a later record replaces */
      if (!dst) {
        GROW(t->modules, t->nmodules, cap_mod);
        dst = &t->modules[t->nmodules++];
        memset(dst, 0, sizeof *dst);
      }
      free(dst->path);
      dst->bias = m.bias;
      dst->start = m.start;
      dst->end = m.end;
      dst->flags = m.flags;
      dst->path = dup_str(r + sizeof m + m.build_id_len, rs - sizeof m - m.build_id_len);
      size_t k = 0;
      for (uint32_t i = 0; i < m.build_id_len && k + 2 < sizeof dst->build_id; i++, k += 2)
        snprintf(dst->build_id + k, 3, "%02x", r[sizeof m + i]);
      dst->build_id[k] = 0;
      break;
    }
    case FTSAN_REC_THREAD: {
      struct ftsan_rec_thread th;
      if (rs < sizeof th) return fail(err, errlen, "%s: corrupt thread record", path);
      memcpy(&th, r, sizeof th);
      if (((uint64_t)th.stack_len + th.py_len) * 8 > rs - sizeof th)
        return fail(err, errlen, "%s: corrupt thread record", path);
      GROW(t->threads, t->nthreads, cap_thr);
      ftsan_thread_info *ti = &t->threads[t->nthreads++];
      ti->tid = th.tid;
      ti->parent_tid = th.parent_tid;
      ti->os_tid = th.os_tid;
      ti->stack_len = th.stack_len;
      ti->stack = malloc(8 * (th.stack_len + 1));
      if (ti->stack) memcpy(ti->stack, r + sizeof th, 8 * th.stack_len);
      ti->py_len = th.py_len;
      ti->py = malloc(8 * (th.py_len + 1));
      if (ti->py) memcpy(ti->py, r + sizeof th + 8 * th.stack_len, 8 * th.py_len);
      size_t skip = sizeof th + 8 * ((size_t)th.stack_len + th.py_len);
      ti->name = dup_str(r + skip, rs - skip);
      break;
    }
    case FTSAN_REC_SITE_STATS: {
      struct ftsan_rec_site_stats s;
      if (rs < sizeof s) return fail(err, errlen, "%s: corrupt stats record", path);
      memcpy(&s, r, sizeof s);
      if ((uint64_t)s.count * sizeof(struct ftsan_site_count) > rs - sizeof s)
        return fail(err, errlen, "%s: corrupt stats record", path);
      t->sites_dropped += s.dropped;
      for (uint32_t i = 0; i < s.count; i++) {
        struct ftsan_site_count c;
        memcpy(&c, r + sizeof s + i * sizeof c, sizeof c);
        GROW(t->sites, t->nsites, cap_site);
        t->sites[t->nsites++] = (ftsan_site){c.pc, c.kind, s.tid, c.count};
      }
      break;
    }
    case FTSAN_REC_WARNING: {
      struct ftsan_rec_warning w;
      if (rs < sizeof w) return fail(err, errlen, "%s: corrupt warning record", path);
      memcpy(&w, r, sizeof w);
      GROW(t->warnings, t->nwarnings, cap_warn);
      t->warnings[t->nwarnings].code = w.code;
      t->warnings[t->nwarnings].msg = dup_str(r + sizeof w, rs - sizeof w);
      t->nwarnings++;
      break;
    }
    case FTSAN_REC_END:
      if (rs < sizeof t->end) return fail(err, errlen, "%s: corrupt end record", path);
      memcpy(&t->end, r, sizeof t->end);
      t->complete = 1;
      break;
    case FTSAN_REC_RACE:
    case FTSAN_REC_REFCOUNT:
    case FTSAN_REC_LOCK:
    case FTSAN_REC_TYPE:
    case FTSAN_REC_PYSITE:
    case FTSAN_REC_GIL_ENABLED:
    case FTSAN_REC_OBJECT:
      GROW(t->records, t->nrecords, cap_rec);
      t->records[t->nrecords++] = (ftsan_raw_record){h.kind, h.size, r};
      break;
    default:
      t->unknown_records++;
      break;
    }
    /* Only a trace whose last record is END is complete (a forked child's file ends the
     * same way; records after an END would mean two writers, so they reset it). */
    if (h.kind != FTSAN_REC_END) t->complete = 0;
    off += rs;
  }
  return 0;
}

void ftsan_trace_free(ftsan_trace *t) {
  for (size_t i = 0; i < t->nmodules; i++) free(t->modules[i].path);
  for (size_t i = 0; i < t->nthreads; i++) {
    free(t->threads[i].name);
    free(t->threads[i].stack);
    free(t->threads[i].py);
  }
  for (size_t i = 0; i < t->nwarnings; i++) free(t->warnings[i].msg);
  free(t->modules);
  free(t->threads);
  free(t->sites);
  free(t->warnings);
  free(t->records);
  free(t->exe);
  free(t->cmdline);
  free(t->bytes);
  free(t->path);
  memset(t, 0, sizeof *t);
}

int ftsan_trace_gil_enabled(const ftsan_trace *t) {
  for (size_t w = 0; w < t->nwarnings; w++)
    if (t->warnings[w].code == FTSAN_WARN_GIL_ENABLED) return 1;
  for (size_t i = 0; i < t->nrecords; i++)
    if (t->records[i].kind == FTSAN_REC_GIL_ENABLED) return 1;
  return 0;
}

const ftsan_module *ftsan_trace_module_for(const ftsan_trace *t, uint64_t pc) {
  for (size_t i = 0; i < t->nmodules; i++)
    if (pc >= t->modules[i].start && pc < t->modules[i].end) return &t->modules[i];
  return NULL;
}

const ftsan_thread_info *ftsan_trace_thread(const ftsan_trace *t, uint32_t tid) {
  for (size_t i = 0; i < t->nthreads; i++)
    if (t->threads[i].tid == tid) return &t->threads[i];
  return NULL;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int ftsan_trace_list(const char *path, char ***files, char *err, size_t errlen) {
  struct stat st;
  *files = NULL;
  if (stat(path, &st) != 0) return fail(err, errlen, "%s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode)) {
    *files = malloc(sizeof(char *));
    (*files)[0] = strdup(path);
    return 1;
  }
  DIR *d = opendir(path);
  if (!d) return fail(err, errlen, "%s: %s", path, strerror(errno));
  size_t n = 0, cap = 0;
  char **list = NULL;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (strncmp(e->d_name, "ftsan.", 6) != 0 || len < 7 || strcmp(e->d_name + len - 6, ".trace") != 0)
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 8;
      list = realloc(list, cap * sizeof *list);
    }
    if (asprintf(&list[n], "%s/%s", path, e->d_name) < 0) break;
    n++;
  }
  closedir(d);
  if (n == 0) {
    free(list);
    return fail(err, errlen, "%s: no ftsan.*.trace files in this directory", path);
  }
  qsort(list, n, sizeof *list, cmp_str);
  *files = list;
  return (int)n;
}

int ftsan_trace_pysite(const ftsan_trace *t, uint64_t id, const char **file, const char **func, int *line) {
  for (size_t i = 0; i < t->nrecords; i++) {
    const ftsan_raw_record *r = &t->records[i];
    if (r->kind != FTSAN_REC_PYSITE || r->size < sizeof(struct ftsan_rec_pysite)) continue;
    struct ftsan_rec_pysite p;
    memcpy(&p, r->data, sizeof p);
    if (p.id != id) continue;
    size_t room = r->size - sizeof p;
    if (p.file_len == 0 || p.func_len == 0 || p.file_len > room || p.func_len > room - p.file_len) return 0;
    const char *s = (const char *)r->data + sizeof p;
    if (s[p.file_len - 1] != 0 || s[p.file_len + p.func_len - 1] != 0) return 0;
    *file = s;
    *func = s + p.file_len;
    *line = (int)p.line;
    return 1;
  }
  return 0;
}
