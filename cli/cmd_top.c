/* cmd_top.c: 'ftsan top': which objects, types and call sites the threads fight over:
 * cross-thread reference-count traffic and lock waits, ranked, from the REFCOUNT, LOCK,
 * TYPE and PYSITE records of traces (docs/report-format.md). */
#define _GNU_SOURCE 1
#include "cli.h"
#include "symbolize.h"
#include "trace_reader.h"

#include <stdlib.h>
#include <string.h>

enum { BY_OBJECT, BY_TYPE, BY_SITE };
enum { OUT_TEXT, OUT_JSON, OUT_FOLDED };

#define MAX_SITES 4

/* A site: an instrumented C location or a Python line, printable. */
typedef struct site {
  char label[600];      /* "func file:line" or "file:line (func)" */
  char function[256], file[512];
  int line;
  int python;
  char folded[1200];    /* frames root first, separated by ';' */
} site;

typedef struct site_count {
  int site;             /* index into the site table */
  uint64_t count;
} site_count;

typedef struct row {
  char key[700];
  uint32_t pid;
  uint64_t object;      /* BY_OBJECT */
  char type[256];
  int is_static, immortal, deferred, heap_type;
  uint64_t shared, owner, immortal_ops, queued, merged;
  uint64_t thread_mask;
  uint64_t waits, wait_ns, max_wait_ns;
  uint32_t lock_flags;
  site_count c_sites[MAX_SITES * 4], py_sites[MAX_SITES * 4];
  int nc, npy;
  int created;          /* site index of the Python line that created the object, or -1 */
} row;

typedef struct ctx {
  ftsan_symbolizer *sym;
  site *sites;
  size_t nsites, cap_sites;
  row *rows;
  size_t nrows, cap_rows;
  uint64_t total_refcount, total_waits;
} ctx;

static const char *base(const char *p) {
  const char *s = p ? strrchr(p, '/') : NULL;
  return s ? s + 1 : (p ? p : "");
}

static void top_usage(FILE *f) {
  fprintf(f,
          "usage: ftsan top [--by object|type|site] [--format text|json|folded] [--limit N]\n"
          "                 [--min-shared N] PATH...\n"
          "\n"
          "Ranks what threads contend on: cross-thread reference-count operations (every\n"
          "non-owner Py_INCREF/Py_DECREF is an atomic on the object's shared count) and lock\n"
          "waits (critical sections, PyMutex, threading.Lock, pthread mutexes).\n"
          "PATH is a trace file or a directory of them (default ./ftsan-out).\n"
          "  --by object|type|site  what a row is (default object)\n"
          "  --format folded        'frame;frame;... count' lines, root first, for flame graphs\n"
          "  --limit N              rows to print (default 20)\n"
          "  --min-shared N         hide rows with fewer shared operations and no lock wait\n"
          "                         (default 1)\n");
}

static int intern_site(ctx *c, const ftsan_trace *t, uint64_t value, int python,
                       const ftsan_raw_record **pysites, size_t npysites) {
  char label[600] = "", function[256] = "", file[512] = "", folded[1200] = "";
  int line = 0;
  if (python) {
    for (size_t i = 0; i < npysites; i++) {
      struct ftsan_rec_pysite p;
      memcpy(&p, pysites[i]->data, sizeof p);
      if (p.id != value) continue;
      const char *pf = (const char *)pysites[i]->data + sizeof p;
      size_t room = pysites[i]->size - sizeof p;
      if (p.file_len > room || p.func_len > room - p.file_len) break;
      snprintf(file, sizeof file, "%.*s", (int)p.file_len, pf);
      snprintf(function, sizeof function, "%.*s", (int)p.func_len, pf + p.file_len);
      line = (int)p.line;
      break;
    }
    if (!file[0]) snprintf(file, sizeof file, "<python>");
    snprintf(label, sizeof label, "%s:%d (%s)", base(file), line, function);
    snprintf(folded, sizeof folded, "py:%s:%d %s", base(file), line, function);
  } else {
    const ftsan_module *m = ftsan_trace_module_for(t, value);
    ftsan_frame fr[8];
    int n = m ? ftsan_symbolize_code(c->sym, m->path, value - m->bias - 1, fr, 8) : 0;
    if (n > 0) {
      snprintf(function, sizeof function, "%s", fr[0].function);
      snprintf(file, sizeof file, "%s", fr[0].file);
      line = fr[0].line;
      snprintf(label, sizeof label, "%s %s:%d", fr[0].function, base(fr[0].file), fr[0].line);
      size_t k = 0;
      for (int i = n - 1; i >= 0 && k < sizeof folded - 1; i--)
        k += (size_t)snprintf(folded + k, sizeof folded - k, "%s%s (%s:%d)", i == n - 1 ? "" : ";",
                              fr[i].function, base(fr[i].file), fr[i].line);
    } else {
      snprintf(label, sizeof label, "%s+0x%llx", m ? base(m->path) : "?",
               (unsigned long long)(m ? value - m->bias : value));
      snprintf(folded, sizeof folded, "%s", label);
    }
  }
  for (size_t i = 0; i < c->nsites; i++)
    if (c->sites[i].python == python && !strcmp(c->sites[i].label, label)) return (int)i;
  if (c->nsites == c->cap_sites) {
    c->cap_sites = c->cap_sites ? c->cap_sites * 2 : 64;
    c->sites = realloc(c->sites, c->cap_sites * sizeof *c->sites);
  }
  site *s = &c->sites[c->nsites];
  memset(s, 0, sizeof *s);
  snprintf(s->label, sizeof s->label, "%s", label);
  snprintf(s->function, sizeof s->function, "%s", function);
  snprintf(s->file, sizeof s->file, "%s", file);
  snprintf(s->folded, sizeof s->folded, "%s", folded);
  s->line = line;
  s->python = python;
  return (int)c->nsites++;
}

static row *find_row(ctx *c, const char *key) {
  for (size_t i = 0; i < c->nrows; i++)
    if (!strcmp(c->rows[i].key, key)) return &c->rows[i];
  if (c->nrows == c->cap_rows) {
    c->cap_rows = c->cap_rows ? c->cap_rows * 2 : 64;
    c->rows = realloc(c->rows, c->cap_rows * sizeof *c->rows);
  }
  row *r = &c->rows[c->nrows++];
  memset(r, 0, sizeof *r);
  r->created = -1;
  snprintf(r->key, sizeof r->key, "%s", key);
  return r;
}

static void add_site(site_count *arr, int *n, int site, uint64_t count) {
  for (int i = 0; i < *n; i++)
    if (arr[i].site == site) {
      arr[i].count += count;
      return;
    }
  if (*n < MAX_SITES * 4) arr[(*n)++] = (site_count){site, count};
}

static const char *type_name(const ftsan_raw_record **types, size_t ntypes, uint64_t type, int *heap) {
  for (size_t i = 0; i < ntypes; i++) {
    struct ftsan_rec_type r;
    memcpy(&r, types[i]->data, sizeof r);
    if (r.type != type) continue;
    if (heap) *heap = !(r.flags & 1);
    if (r.name_len > types[i]->size - sizeof r) return "?";
    return (const char *)types[i]->data + sizeof r;
  }
  return type ? "?" : "";
}

static void collect(ctx *c, ftsan_trace *t, int by) {
  const ftsan_raw_record **types = calloc(t->nrecords + 1, sizeof *types);
  const ftsan_raw_record **pysites = calloc(t->nrecords + 1, sizeof *pysites);
  size_t ntypes = 0, npysites = 0;
  for (size_t i = 0; i < t->nrecords; i++) {
    const ftsan_raw_record *r = &t->records[i];
    if (r->kind == FTSAN_REC_TYPE && r->size >= sizeof(struct ftsan_rec_type)) types[ntypes++] = r;
    if (r->kind == FTSAN_REC_PYSITE && r->size >= sizeof(struct ftsan_rec_pysite)) pysites[npysites++] = r;
  }
  for (size_t i = 0; i < t->nrecords; i++) {
    const ftsan_raw_record *rec = &t->records[i];
    int is_rc = rec->kind == FTSAN_REC_REFCOUNT, is_lk = rec->kind == FTSAN_REC_LOCK;
    if (!is_rc && !is_lk) continue;
    struct ftsan_rec_refcount hdr; /* same layout as ftsan_rec_lock's header */
    if (rec->size < sizeof hdr) continue;
    memcpy(&hdr, rec->data, sizeof hdr);
    size_t esize = is_rc ? sizeof(struct ftsan_refcount_entry) : sizeof(struct ftsan_lock_entry);
    if ((uint64_t)hdr.count * esize > rec->size - sizeof hdr) continue;
    for (uint32_t k = 0; k < hdr.count; k++) {
      const unsigned char *p = rec->data + sizeof hdr + k * esize;
      uint64_t object, type, sitev, count = 0, waits = 0, wait_ns = 0, max_ns = 0;
      uint32_t flags;
      int python;
      if (is_rc) {
        struct ftsan_refcount_entry e;
        memcpy(&e, p, sizeof e);
        object = e.object, type = e.type, sitev = e.site, flags = e.flags, count = e.count;
        python = (flags & FTSAN_RCF_PYSITE) != 0;
      } else {
        struct ftsan_lock_entry e;
        memcpy(&e, p, sizeof e);
        object = e.object ? e.object : e.lock, type = e.type, sitev = e.site, flags = e.flags;
        waits = e.waits, wait_ns = e.wait_ns, max_ns = e.max_wait_ns;
        python = (flags & FTSAN_LKF_PYSITE) != 0;
      }
      int heap = 0;
      const char *tn = type_name(types, ntypes, type, &heap);
      int site_idx = sitev ? intern_site(c, t, sitev, python, pysites, npysites) : -1;
      char key[700];
      if (by == BY_OBJECT) snprintf(key, sizeof key, "%u:%llx", t->header.pid, (unsigned long long)object);
      else if (by == BY_TYPE) snprintf(key, sizeof key, "%s", tn[0] ? tn : (is_lk ? "<lock>" : "?"));
      else snprintf(key, sizeof key, "%d", site_idx);
      row *r = find_row(c, key);
      r->pid = t->header.pid;
      r->object = object;
      if (!r->type[0]) snprintf(r->type, sizeof r->type, "%s", tn[0] ? tn : (is_lk && !type ? "lock" : "?"));
      r->heap_type |= heap;
      const ftsan_module *m = ftsan_trace_module_for(t, object);
      if (m) r->is_static = 1;
      if (by == BY_OBJECT && r->created < 0 && !m) {
        /* Where the object was created (OBJECT records), for heap objects. */
        for (size_t j = 0; j < t->nrecords; j++) {
          const ftsan_raw_record *o = &t->records[j];
          if (o->kind != FTSAN_REC_OBJECT || o->size < sizeof(struct ftsan_rec_object)) continue;
          struct ftsan_rec_object oh;
          memcpy(&oh, o->data, sizeof oh);
          if ((uint64_t)oh.count * sizeof(struct ftsan_object_entry) > o->size - sizeof oh) continue;
          for (uint32_t q = 0; q < oh.count && r->created < 0; q++) {
            struct ftsan_object_entry oe;
            memcpy(&oe, o->data + sizeof oh + q * sizeof oe, sizeof oe);
            if (oe.object == object) r->created = intern_site(c, t, oe.site, 1, pysites, npysites);
          }
          if (r->created >= 0) break;
        }
      }
      if (hdr.tid < 64) r->thread_mask |= 1ull << hdr.tid;
      if (is_rc) {
        c->total_refcount += count;
        if (flags & FTSAN_RCF_IMMORTAL) r->immortal = 1, r->immortal_ops += count;
        if (flags & FTSAN_RCF_SHARED) r->shared += count;
        if (flags & FTSAN_RCF_OWNER) r->owner += count;
        if (flags & FTSAN_RCF_DEFERRED) r->deferred = 1;
        if (flags & FTSAN_RCF_QUEUED) r->queued += count;
        if (flags & FTSAN_RCF_MERGED) r->merged += count;
      } else {
        c->total_waits += waits;
        r->waits += waits;
        r->wait_ns += wait_ns;
        if (max_ns > r->max_wait_ns) r->max_wait_ns = max_ns;
        r->lock_flags |= flags;
        count = waits;
      }
      /* Sites rank by what matters there: cross-thread operations and waits. */
      uint64_t weight = is_rc ? ((flags & FTSAN_RCF_SHARED) ? count : 0) : waits;
      if (site_idx >= 0 && weight) {
        if (python) add_site(r->py_sites, &r->npy, site_idx, weight);
        else add_site(r->c_sites, &r->nc, site_idx, weight);
      }
    }
  }
  free(types);
  free(pysites);
}

static int cmp_sites(const void *a, const void *b) {
  const site_count *x = a, *y = b;
  return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

static uint64_t score(const row *r) { return r->shared + r->waits * 16; }

static int cmp_rows(const void *a, const void *b) {
  const row *x = a, *y = b;
  uint64_t sx = score(x), sy = score(y);
  if (sx != sy) return sx < sy ? 1 : -1;
  return x->wait_ns < y->wait_ns ? 1 : x->wait_ns > y->wait_ns ? -1 : strcmp(x->key, y->key);
}

static const char *kind_of(const row *r) {
  /* A row by type or by site adds up many objects: immortal ones next to others is "mixed"
   * (their shared operations are the others'). */
  if (r->immortal && (r->shared || r->owner)) return "mixed";
  if (r->immortal) return "immortal";
  if (r->deferred) return "deferred";
  if (r->is_static) return "static";
  if (r->waits && !r->shared && !r->owner && !strcmp(r->type, "lock")) return "lock";
  return "heap";
}

static void advice(const row *r, char *buf, size_t n) {
  buf[0] = 0;
  if (r->waits)
    snprintf(buf, n, "lock contended: %llu waits, %.3f ms in total; shorten the critical section, "
             "or split the data so threads lock different objects",
             (unsigned long long)r->waits, r->wait_ns / 1e6);
  else if (r->immortal && !r->shared)
    snprintf(buf, n, "immortal: reference counting does not write to it, no contention");
  else if (r->shared && r->deferred)
    snprintf(buf, n, "deferred reference counting spares the interpreter, but C code still "
             "increfs it from several threads: keep a borrowed reference where it is safe");
  else if (r->shared && __builtin_popcountll(r->thread_mask) > 1)
    snprintf(buf, n, "shared object not deferred: every non-owner Py_INCREF/Py_DECREF is an atomic "
             "on ob_ref_shared; consider per-thread copies (or an immortal object)");
}

static void json_site_list(FILE *o, const ctx *c, site_count *arr, int n) {
  qsort(arr, (size_t)n, sizeof *arr, cmp_sites);
  fputc('[', o);
  for (int i = 0; i < n && i < MAX_SITES; i++) {
    const site *s = &c->sites[arr[i].site];
    fprintf(o, "%s{\"function\": ", i ? ", " : "");
    json_str(o, s->function);
    fprintf(o, ", \"file\": ");
    json_str(o, s->file);
    fprintf(o, ", \"line\": %d, \"count\": %llu}", s->line, (unsigned long long)arr[i].count);
  }
  fputc(']', o);
}

int cmd_top(int argc, char **argv) {
  int by = BY_OBJECT, fmt = OUT_TEXT, limit = 20;
  uint64_t min_shared = 1;
  const char *paths[256];
  int npaths = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      top_usage(stdout);
      return 0;
    } else if (!strcmp(a, "--by") && i + 1 < argc) {
      a = argv[++i];
      if (!strcmp(a, "object")) by = BY_OBJECT;
      else if (!strcmp(a, "type")) by = BY_TYPE;
      else if (!strcmp(a, "site")) by = BY_SITE;
      else return ftsan_error("top: --by takes object, type or site, not '%s'", a);
    } else if (!strcmp(a, "--format") && i + 1 < argc) {
      a = argv[++i];
      if (!strcmp(a, "text")) fmt = OUT_TEXT;
      else if (!strcmp(a, "json")) fmt = OUT_JSON;
      else if (!strcmp(a, "folded")) fmt = OUT_FOLDED;
      else return ftsan_error("top: --format takes text, json or folded, not '%s'", a);
    } else if (!strcmp(a, "--limit") && i + 1 < argc) {
      limit = atoi(argv[++i]);
    } else if (!strcmp(a, "--min-shared") && i + 1 < argc) {
      min_shared = strtoull(argv[++i], NULL, 10);
    } else if (a[0] == '-' && a[1]) {
      return ftsan_error("top: unknown option '%s' (see 'ftsan top --help')", a);
    } else if (npaths < 256) {
      paths[npaths++] = a;
    }
  }
  if (npaths == 0) paths[npaths++] = "ftsan-out";

  ctx c;
  memset(&c, 0, sizeof c);
  c.sym = ftsan_symbolizer_new();
  char err[512];
  size_t ntraces = 0;
  ftsan_trace *traces = NULL;
  for (int p = 0; p < npaths; p++) {
    char **files;
    int n = ftsan_trace_list(paths[p], &files, err, sizeof err);
    if (n < 0) return ftsan_error("top: %s", err);
    for (int k = 0; k < n; k++) {
      traces = realloc(traces, (ntraces + 1) * sizeof *traces);
      if (ftsan_trace_load(files[k], &traces[ntraces], err, sizeof err) != 0)
        return ftsan_error("top: %s", err);
      collect(&c, &traces[ntraces], by);
      ntraces++;
      free(files[k]);
    }
    free(files);
  }
  qsort(c.rows, c.nrows, sizeof *c.rows, cmp_rows);
  size_t shown = 0;
  const char *by_name = by == BY_OBJECT ? "object" : by == BY_TYPE ? "type" : "site";

  if (fmt == OUT_FOLDED) {
    /* One line per (site, object type, class): frames root first, then the type. */
    for (size_t i = 0; i < c.nrows; i++) {
      row *r = &c.rows[i];
      site_count *lists[2] = {r->py_sites, r->c_sites};
      int ns[2] = {r->npy, r->nc};
      for (int l = 0; l < 2; l++)
        for (int k = 0; k < ns[l]; k++)
          printf("%s;%s%s %llu\n", c.sites[lists[l][k].site].folded, r->type,
                 r->waits ? " [lock wait]" : " [shared refcount]", (unsigned long long)lists[l][k].count);
    }
  } else if (fmt == OUT_JSON) {
    printf("{\"version\": 1, \"by\": \"%s\", \"refcount_operations\": %llu, \"lock_waits\": %llu, \"rows\": [",
           by_name, (unsigned long long)c.total_refcount, (unsigned long long)c.total_waits);
    for (size_t i = 0; i < c.nrows && (int)shown < limit; i++) {
      row *r = &c.rows[i];
      if (r->shared < min_shared && !r->waits && !(r->immortal && by != BY_SITE && min_shared == 0)) continue;
      char adv[512];
      advice(r, adv, sizeof adv);
      printf("%s{", shown++ ? ", " : "");
      if (by == BY_OBJECT) printf("\"object\": \"0x%llx\", \"pid\": %u, ", (unsigned long long)r->object, r->pid);
      if (by == BY_SITE) {
        const site *s = (r->nc || r->npy) ? &c.sites[r->nc ? r->c_sites[0].site : r->py_sites[0].site] : NULL;
        printf("\"site\": ");
        json_str(stdout, s ? s->label : "");
        printf(", ");
      }
      printf("\"type\": ");
      json_str(stdout, r->type);
      printf(", \"kind\": \"%s\", \"shared_ops\": %llu, \"owner_ops\": %llu, \"immortal_ops\": %llu, "
             "\"queued\": %llu, \"merged\": %llu, \"threads\": %d, \"lock_waits\": %llu, "
             "\"lock_wait_ns\": %llu, \"max_wait_ns\": %llu, \"top_c_sites\": ",
             kind_of(r), (unsigned long long)r->shared, (unsigned long long)r->owner,
             (unsigned long long)r->immortal_ops, (unsigned long long)r->queued,
             (unsigned long long)r->merged, __builtin_popcountll(r->thread_mask),
             (unsigned long long)r->waits, (unsigned long long)r->wait_ns,
             (unsigned long long)r->max_wait_ns);
      json_site_list(stdout, &c, r->c_sites, r->nc);
      printf(", \"top_python_sites\": ");
      json_site_list(stdout, &c, r->py_sites, r->npy);
      printf(", \"created_at\": ");
      if (r->created >= 0) {
        const site *s = &c.sites[r->created];
        printf("{\"function\": ");
        json_str(stdout, s->function);
        printf(", \"file\": ");
        json_str(stdout, s->file);
        printf(", \"line\": %d}", s->line);
      } else {
        printf("null");
      }
      printf(", \"advice\": ");
      json_str(stdout, adv);
      printf("}");
    }
    printf("]}\n");
  } else {
    printf("ftsan top: by %s; %llu reference-count operations and %llu lock waits seen in %zu process%s\n\n",
           by_name, (unsigned long long)c.total_refcount, (unsigned long long)c.total_waits, ntraces,
           ntraces == 1 ? "" : "es");
    printf("  %-3s %-40s %-9s %10s %10s %4s %7s %9s  %s\n", "#", by == BY_SITE ? "site" : by_name,
           "kind", "shared", "owner", "thr", "waits", "wait ms", "top sites (C / Python)");
    for (size_t i = 0; i < c.nrows && (int)shown < limit; i++) {
      row *r = &c.rows[i];
      if (r->shared < min_shared && !r->waits) continue;
      char label[256];
      if (by == BY_OBJECT) snprintf(label, sizeof label, "%s at 0x%llx", r->type, (unsigned long long)r->object);
      else if (by == BY_TYPE) snprintf(label, sizeof label, "%s", r->type);
      else {
        const site *s = (r->nc || r->npy) ? &c.sites[r->nc ? r->c_sites[0].site : r->py_sites[0].site] : NULL;
        snprintf(label, sizeof label, "%s", s ? s->label : "?");
      }
      char waitms[32] = "-";
      if (r->waits) snprintf(waitms, sizeof waitms, "%.3f", r->wait_ns / 1e6);
      qsort(r->c_sites, (size_t)r->nc, sizeof *r->c_sites, cmp_sites);
      qsort(r->py_sites, (size_t)r->npy, sizeof *r->py_sites, cmp_sites);
      char top[900] = "";
      if (r->nc) snprintf(top, sizeof top, "%s", c.sites[r->c_sites[0].site].label);
      if (r->npy) {
        size_t k = strlen(top);
        snprintf(top + k, sizeof top - k, "%s%s", k ? " / " : "", c.sites[r->py_sites[0].site].label);
      }
      printf("  %-3zu %-40.40s %-9s %10llu %10llu %4d %7llu %9s  %s\n", ++shown, label, kind_of(r),
             (unsigned long long)r->shared, (unsigned long long)r->owner,
             __builtin_popcountll(r->thread_mask), (unsigned long long)r->waits, waitms, top);
      if (by == BY_OBJECT && r->created >= 0) printf("      created at: %s\n", c.sites[r->created].label);
      char adv[512];
      advice(r, adv, sizeof adv);
      if (adv[0]) printf("      advice: %s\n", adv);
    }
    if (!shown) printf("  (no cross-thread reference counting or lock waits above the threshold)\n");
  }
  ftsan_symbolizer_free(c.sym);
  free(c.sites);
  free(c.rows);
  for (size_t i = 0; i < ntraces; i++) ftsan_trace_free(&traces[i]);
  free(traces);
  return 0;
}
