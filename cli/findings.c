/* findings.c: builds findings from RACE records (format: include/ftsan_trace.h) and prints
 * them as text (in the spirit of ThreadSanitizer's reports) and JSON
 * (docs/report-format.md). */
#define _GNU_SOURCE 1
#include "findings.h"

#include "cli.h"
#include "ftsan_abi.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

static const char *base(const char *p) {
  const char *s = p ? strrchr(p, '/') : NULL;
  return s ? s + 1 : (p ? p : "");
}

/* ---- symbolized stacks ------------------------------------------------------------------ */

/* Every PC in a trace is a return address: the call instruction is one byte before. */
static void symbolize_stack(const ftsan_trace *t, ftsan_symbolizer *sym, const uint64_t *pcs,
                            uint32_t n, ftsan_stack *out) {
  out->locs = calloc((size_t)n * 8 + 1, sizeof(ftsan_loc));
  out->n = 0;
  for (uint32_t i = 0; i < n && out->n < FTSAN_MAX_FRAMES; i++) {
    const ftsan_module *m = ftsan_trace_module_for(t, pcs[i]);
    /* The runtime's own frames (interceptors) are noise in a user's stack. */
    if (out->n == 0 && m && m->path && strstr(base(m->path), "libftsan-rt")) continue;
    ftsan_frame fr[8];
    int nf = m ? ftsan_symbolize_code(sym, m->path, pcs[i] - m->bias - 1, fr, 8) : 0;
    if (nf <= 0) {
      ftsan_loc *l = &out->locs[out->n++];
      l->pc = pcs[i];
      l->module = m;
      memset(&l->frame, 0, sizeof l->frame);
      continue;
    }
    for (int k = 0; k < nf; k++) {
      ftsan_loc *l = &out->locs[out->n++];
      l->pc = pcs[i];
      l->module = m;
      l->frame = fr[k];
    }
  }
}

/* The frame a summary names: the first one outside CPython's headers (Py_TYPE,
 * PyBytes_GET_SIZE ... inlined into the caller say less than the caller's own line). */
static const ftsan_loc *summary_loc(const ftsan_stack *s) {
  for (int i = 0; i < s->n; i++)
    if (!strstr(s->locs[i].frame.file, "/include/python3")) return &s->locs[i];
  return s->n ? &s->locs[0] : NULL;
}

/* "function file:line", the identity of a frame in keys and summaries. */
static void loc_str(const ftsan_loc *l, char *buf, size_t n) {
  if (!l) {
    snprintf(buf, n, "?");
  } else if (l->frame.file[0]) {
    snprintf(buf, n, "%.250s %.250s:%d", l->frame.function[0] ? l->frame.function : "??",
             base(l->frame.file), l->frame.line);
  } else {
    snprintf(buf, n, "%.250s %.250s+0x%llx", l->frame.function[0] ? l->frame.function : "??",
             l->module ? base(l->module->path) : "?",
             (unsigned long long)(l->module ? l->pc - l->module->bias : l->pc));
  }
}

/* ---- suppressions ------------------------------------------------------------------------ */

struct ftsan_suppressions {
  int n;
  struct { int top_only; char *pattern; } *rules;
};

ftsan_suppressions *ftsan_suppressions_load(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s: cannot read suppressions file", path);
    return NULL;
  }
  ftsan_suppressions *s = calloc(1, sizeof *s);
  char line[1024];
  int lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    p[strcspn(p, "\r\n")] = 0;
    for (char *e = p + strlen(p); e > p && (e[-1] == ' ' || e[-1] == '\t'); e--) e[-1] = 0;
    if (!*p || *p == '#') continue;
    int top = 0;
    if (!strncmp(p, "race_top:", 9)) {
      top = 1;
      p += 9;
    } else if (!strncmp(p, "race:", 5)) {
      p += 5;
    } else {
      snprintf(err, errlen, "%s:%d: unknown suppression type (expected race: or race_top:)", path, lineno);
      fclose(f);
      ftsan_suppressions_free(s);
      return NULL;
    }
    if (!*p) {
      snprintf(err, errlen, "%s:%d: empty suppression pattern", path, lineno);
      fclose(f);
      ftsan_suppressions_free(s);
      return NULL;
    }
    s->rules = realloc(s->rules, (size_t)(s->n + 1) * sizeof *s->rules);
    s->rules[s->n].top_only = top;
    s->rules[s->n].pattern = strdup(p);
    s->n++;
  }
  fclose(f);
  return s;
}

void ftsan_suppressions_free(ftsan_suppressions *s) {
  if (!s) return;
  for (int i = 0; i < s->n; i++) free(s->rules[i].pattern);
  free(s->rules);
  free(s);
}

/* TSan's matching: a pattern matches a substring; '*' is a wildcard; '^' and '$' anchor. */
static int pattern_match(const char *pat, const char *text) {
  if (!text || !*text) return 0;
  char g[1100];
  size_t plen = strlen(pat);
  int anchored_start = pat[0] == '^', anchored_end = plen > 0 && pat[plen - 1] == '$';
  snprintf(g, sizeof g, "%s%.*s%s", anchored_start ? "" : "*",
           (int)(plen - anchored_start - anchored_end), pat + anchored_start, anchored_end ? "" : "*");
  return fnmatch(g, text, 0) == 0;
}

static int loc_matches(const ftsan_loc *l, const char *pat) {
  return pattern_match(pat, l->frame.function) || pattern_match(pat, l->frame.file) ||
         (l->module && pattern_match(pat, l->module->path));
}

static int suppressed(const ftsan_suppressions *s, const ftsan_finding *f) {
  if (!s) return 0;
  for (int i = 0; i < s->n; i++) {
    const ftsan_access *acc[2] = {&f->cur, &f->prev};
    for (int a = 0; a < 2; a++) {
      const ftsan_stack *st = &acc[a]->stack;
      int n = s->rules[i].top_only ? (st->n > 0 ? 1 : 0) : st->n;
      for (int k = 0; k < n; k++)
        if (loc_matches(&st->locs[k], s->rules[i].pattern)) return 1;
    }
    if (!s->rules[i].top_only && f->has_global && pattern_match(s->rules[i].pattern, f->global.name))
      return 1;
  }
  return 0;
}

/* ---- collection --------------------------------------------------------------------------- */

const char *ftsan_finding_kind_name(uint32_t kind) {
  switch (kind) {
  case FTSAN_FINDING_DATA_RACE: return "data-race";
  case FTSAN_FINDING_USE_AFTER_FREE: return "use-after-free";
  case FTSAN_FINDING_CS_INTERRUPTED: return "critical-section-interrupted";
  case FTSAN_FINDING_GIL_ENABLED: return "gil-enabled";
  default: return "unknown";
  }
}

static int parse_race(const ftsan_trace *t, const ftsan_raw_record *rec, ftsan_symbolizer *sym,
                      ftsan_finding *f) {
  struct ftsan_rec_race r;
  if (rec->size < sizeof r) return -1;
  memcpy(&r, rec->data, sizeof r);
  uint64_t need = sizeof r + 8ull * r.cur.stack_len + 8ull * r.prev.stack_len +
                  8ull * r.alloc_stack_len + 8ull * r.cur_py_len + 8ull * r.prev_py_len + r.type_name_len;
  if (need > rec->size || r.cur.stack_len > 4096 || r.prev.stack_len > 4096 || r.alloc_stack_len > 4096)
    return -1;
  memset(f, 0, sizeof *f);
  f->kind = r.kind;
  f->trace = t;
  f->addr = r.addr;
  f->mem_kind = r.mem_kind;
  f->object_addr = r.object_addr;
  f->object_size = r.object_size;
  f->count = 1;
  const uint64_t *cur = (const uint64_t *)(rec->data + sizeof r);
  uint32_t nstacks = r.cur.stack_len + r.prev.stack_len + r.alloc_stack_len + r.cur_py_len + r.prev_py_len;
  uint64_t *tmp = malloc(8ull * (nstacks + 1));
  memcpy(tmp, cur, 8ull * nstacks);
  const struct ftsan_race_access *ra[2] = {&r.cur, &r.prev};
  ftsan_access *fa[2] = {&f->cur, &f->prev};
  const uint64_t *stacks[2] = {tmp, tmp + r.cur.stack_len};
  for (int i = 0; i < 2; i++) {
    fa[i]->tid = ra[i]->tid;
    fa[i]->size = ra[i]->size;
    fa[i]->write = ra[i]->write;
    fa[i]->atomic = ra[i]->atomic;
    fa[i]->stack_full = ra[i]->stack_full;
    fa[i]->gilstate = (ra[i]->flags & FTSAN_ACC_GILSTATE) != 0;
    symbolize_stack(t, sym, stacks[i], ra[i]->stack_len, &fa[i]->stack);
  }
  const uint64_t *py_ids[2] = {tmp + r.cur.stack_len + r.prev.stack_len + r.alloc_stack_len,
                               tmp + r.cur.stack_len + r.prev.stack_len + r.alloc_stack_len + r.cur_py_len};
  uint32_t py_lens[2] = {r.cur_py_len, r.prev_py_len};
  for (int i = 0; i < 2; i++) {
    fa[i]->py = calloc(py_lens[i] + 1, sizeof(ftsan_pyframe));
    for (uint32_t k = 0; k < py_lens[i]; k++) {
      ftsan_pyframe *p = &fa[i]->py[fa[i]->npy];
      if (ftsan_trace_pysite(t, py_ids[i][k], &p->file, &p->function, &p->line)) fa[i]->npy++;
    }
  }
  f->alloc_tid = r.alloc_tid;
  f->borrow_api = r.borrow_api;
  symbolize_stack(t, sym, tmp + r.cur.stack_len + r.prev.stack_len, r.alloc_stack_len, &f->alloc);
  free(tmp);
  if (r.type_name_len)
    snprintf(f->type_name, sizeof f->type_name, "%.*s", (int)r.type_name_len,
             (const char *)(rec->data + sizeof r + 8ull * nstacks));
  if (f->mem_kind == FTSAN_MEM_UNKNOWN || f->mem_kind == FTSAN_MEM_PYOBJECT) {
    const ftsan_module *m = ftsan_trace_module_for(t, f->addr);
    if (m && ftsan_symbolize_data(sym, m->path, f->addr - m->bias, &f->global)) {
      f->has_global = 1;
      f->global_module = m;
      /* The runtime recognises a PyObject by its header; a static variable whose storage
       * does not also hold that header (a static PyObject, a static type) is not one. */
      uint64_t start = f->global.start + m->bias;
      if (f->mem_kind == FTSAN_MEM_PYOBJECT &&
          (f->object_addr < start || f->object_addr >= start + f->global.size))
        f->mem_kind = FTSAN_MEM_UNKNOWN;
    }
  }
  /* Same finding = same kind and the same unordered pair of source locations. */
  char a[600], b[600];
  loc_str(f->cur.stack.n ? &f->cur.stack.locs[0] : NULL, a, sizeof a);
  loc_str(f->prev.stack.n ? &f->prev.stack.locs[0] : NULL, b, sizeof b);
  if (strcmp(a, b) > 0) snprintf(f->key, sizeof f->key, "%u|%.590s|%.590s", f->kind, b, a);
  else snprintf(f->key, sizeof f->key, "%u|%.590s|%.590s", f->kind, a, b);
  return 0;
}

static int parse_gil_enabled(const ftsan_trace *t, const ftsan_raw_record *rec, ftsan_finding *f) {
  struct ftsan_rec_gil_enabled r;
  if (rec->size < sizeof r) return -1;
  memcpy(&r, rec->data, sizeof r);
  if (8ull * r.py_len + r.name_len + r.file_len > rec->size - sizeof r || r.py_len > 4096) return -1;
  memset(f, 0, sizeof *f);
  f->kind = FTSAN_FINDING_GIL_ENABLED;
  f->trace = t;
  f->count = 1;
  f->cur.tid = r.tid;
  const unsigned char *p = rec->data + sizeof r;
  f->cur.py = calloc(r.py_len + 1, sizeof(ftsan_pyframe));
  for (uint32_t k = 0; k < r.py_len; k++) {
    uint64_t id;
    memcpy(&id, p + 8 * k, 8);
    ftsan_pyframe *py = &f->cur.py[f->cur.npy];
    if (ftsan_trace_pysite(t, id, &py->file, &py->function, &py->line)) f->cur.npy++;
  }
  p += 8ull * r.py_len;
  snprintf(f->module, sizeof f->module, "%.*s", (int)r.name_len, (const char *)p);
  snprintf(f->module_file, sizeof f->module_file, "%.*s", (int)r.file_len, (const char *)p + r.name_len);
  /* While the extension initializes it has no __file__ yet: take the loaded object whose
   * file name is the module's last name component followed by a dot. */
  if (!f->module_file[0]) {
    const char *leaf = strrchr(f->module, '.');
    leaf = leaf ? leaf + 1 : f->module;
    size_t n = strlen(leaf);
    for (size_t i = 0; i < t->nmodules; i++) {
      const char *b = base(t->modules[i].path);
      if (!strncmp(b, leaf, n) && b[n] == '.') {
        snprintf(f->module_file, sizeof f->module_file, "%s", t->modules[i].path);
        break;
      }
    }
  }
  snprintf(f->key, sizeof f->key, "%u|%u|%s", f->kind, t->header.pid, f->module);
  return 0;
}


static void free_finding(ftsan_finding *f) {
  free(f->cur.py);
  free(f->prev.py);
  free(f->alloc.locs);
  free(f->cur.stack.locs);
  free(f->prev.stack.locs);
}

size_t ftsan_findings_collect(ftsan_trace *traces, size_t ntraces, ftsan_symbolizer *sym,
                              const ftsan_suppressions *supp, ftsan_finding **out,
                              size_t *nsuppressed) {
  size_t n = 0, cap = 0, nsup = 0;
  ftsan_finding *fs = NULL;
  for (size_t ti = 0; ti < ntraces; ti++) {
    ftsan_trace *t = &traces[ti];
    for (size_t i = 0; i < t->nrecords; i++) {
      ftsan_finding f;
      if (t->records[i].kind == FTSAN_REC_RACE) {
        if (parse_race(t, &t->records[i], sym, &f) != 0) continue;
        f.gil_enabled_in_process = ftsan_trace_gil_enabled(t);
      } else if (t->records[i].kind == FTSAN_REC_GIL_ENABLED) {
        if (parse_gil_enabled(t, &t->records[i], &f) != 0) continue;
      } else {
        continue;
      }
      if (suppressed(supp, &f)) {
        nsup++;
        free_finding(&f);
        continue;
      }
      ftsan_finding *dup = NULL;
      for (size_t k = 0; k < n; k++)
        if (!strcmp(fs[k].key, f.key)) dup = &fs[k];
      if (dup) {
        dup->count++;
        /* Keep the variant with the most information: a previous stack beats none. */
        if (dup->prev.stack.n == 0 && f.prev.stack.n > 0) {
          int c = dup->count;
          free_finding(dup);
          *dup = f;
          dup->count = c;
        } else {
          free_finding(&f);
        }
        continue;
      }
      if (n == cap) {
        cap = cap ? cap * 2 : 16;
        fs = realloc(fs, cap * sizeof *fs);
      }
      fs[n++] = f;
    }
  }
  if (nsuppressed) *nsuppressed = nsup;
  *out = fs;
  return n;
}

void ftsan_findings_free(ftsan_finding *f, size_t n) {
  for (size_t i = 0; i < n; i++) free_finding(&f[i]);
  free(f);
}

/* The race is on a container's contents as ftsan models them (runtime/rt_hooks.c): C code
 * reading one field that stands for the contents (PyDict_Next reads a dict's ma_used;
 * PyList_GET_ITEM and PySequence_Fast_ITEMS load a list's ob_item) against the
 * interpreter's mutations, which write that field. */
typedef struct {
  const char *type;
  uint64_t offset;
  const char *what;   /* JSON location.what */
  const char *advice; /* text report */
} container_field;

static const container_field container_fields[] = {
    {"dict", 32, "dict contents: PyDict_Next during a mutation",
     "  This is the dict's contents: C code iterated it with PyDict_Next while another thread\n"
     "  changed it. Hold Py_BEGIN_CRITICAL_SECTION(dict) around the whole iteration.\n"},
    {"list", 40, "list items: PyList_GET_ITEM during a mutation",
     "  This is the list's item array (ob_item): C code read it with PyList_GET_ITEM or\n"
     "  PySequence_Fast_ITEMS while another thread changed the list (the array can be\n"
     "  reallocated, items replaced and freed). Hold Py_BEGIN_CRITICAL_SECTION(list) around the\n"
     "  whole loop, or iterate a copy (PySequence_List) or use PyList_GetItemRef.\n"},
};

static const container_field *container_contents(const ftsan_finding *f) {
  if (f->kind != FTSAN_FINDING_DATA_RACE || f->mem_kind != FTSAN_MEM_PYOBJECT) return NULL;
  for (size_t i = 0; i < sizeof container_fields / sizeof container_fields[0]; i++)
    if (!strcmp(f->type_name, container_fields[i].type) && f->addr - f->object_addr == container_fields[i].offset)
      return &container_fields[i];
  return NULL;
}

/* ---- text ---------------------------------------------------------------------------------- */

#define TEXT_FRAMES 24

static void print_stack_text(FILE *o, const ftsan_stack *s, int max) {
  if (s->n == 0) {
    fprintf(o, "    [stack no longer in the thread's history; raise FTSAN_OPTIONS=history_size]\n");
    return;
  }
  int shown = s->n < max ? s->n : max;
  for (int i = 0; i < shown; i++) {
    const ftsan_loc *l = &s->locs[i];
    const char *fn = l->frame.function[0] ? l->frame.function : "<unknown>";
    unsigned long long off = l->module ? l->pc - l->module->bias : l->pc;
    if (l->frame.file[0])
      fprintf(o, "    #%d %s %s:%d%s (%s+0x%llx)\n", i, fn, l->frame.file, l->frame.line,
              l->frame.inlined ? " [inlined]" : "", l->module ? base(l->module->path) : "?", off);
    else
      fprintf(o, "    #%d %s (%s+0x%llx)\n", i, fn, l->module ? base(l->module->path) : "?", off);
  }
  if (s->n > shown) fprintf(o, "    ... %d more frames\n", s->n - shown);
}

/* A thread's name, unless it is only the name every thread inherits from the program. */
static const char *thread_name(const ftsan_trace *t, uint32_t tid) {
  const ftsan_thread_info *ti = ftsan_trace_thread(t, tid);
  if (!ti || !ti->name || !ti->name[0]) return NULL;
  if (t->exe && !strncmp(base(t->exe), ti->name, 15)) return NULL;
  return ti->name;
}

static void print_access_text(FILE *o, const ftsan_finding *f, const ftsan_access *a, int previous) {
  const char *what = a->atomic ? (a->write ? "atomic write" : "atomic read") : (a->write ? "write" : "read");
  char buf[64];
  snprintf(buf, sizeof buf, "%s%s", previous ? "Previous " : "", what);
  if (!previous) buf[0] = (char)(buf[0] - 'a' + 'A');
  const char *name = thread_name(f->trace, a->tid);
  fprintf(o, "  %s of size %d at 0x%llx by thread T%u%s%s%s:\n", buf, a->size,
          (unsigned long long)f->addr, a->tid, name ? " '" : "", name ? name : "", name ? "'" : "");
  print_stack_text(o, &a->stack, TEXT_FRAMES);
  if (a->gilstate)
    fprintf(o, "    (made between PyGILState_Ensure and PyGILState_Release: in a free-threaded build they\n"
               "     attach the thread and exclude nobody; protect the data with a PyMutex or a critical section)\n");
  if (a->npy) {
    fprintf(o, "    Python %s:\n", previous ? "(the call into C that led to it)" : "stack");
    for (int i = 0; i < a->npy; i++)
      fprintf(o, "      #%d %s %s:%d\n", i, a->py[i].function, a->py[i].file, a->py[i].line);
  }
}

static void print_thread_text(FILE *o, const ftsan_finding *f, uint32_t tid, ftsan_symbolizer *sym) {
  const ftsan_thread_info *ti = ftsan_trace_thread(f->trace, tid);
  if (!ti) return;
  const char *name = thread_name(f->trace, tid);
  char label[128] = "";
  if (name) snprintf(label, sizeof label, " '%s'", name);
  if (ti->parent_tid == UINT32_MAX) {
    fprintf(o, "  Thread T%u%s (tid=%llu) is the main thread\n", tid, label, (unsigned long long)ti->os_tid);
    return;
  }
  fprintf(o, "  Thread T%u%s (tid=%llu) created by thread T%u at:\n", tid, label,
          (unsigned long long)ti->os_tid, ti->parent_tid);
  ftsan_stack s;
  symbolize_stack(f->trace, sym, ti->stack, ti->stack_len, &s);
  print_stack_text(o, &s, ti->py_len ? 4 : 8); /* for Python threads the Python stack says more */
  free(s.locs);
  int shown = 0;
  for (uint32_t i = 0; i < ti->py_len; i++) {
    const char *file, *func;
    int line;
    if (!ftsan_trace_pysite(f->trace, ti->py[i], &file, &func, &line)) continue;
    if (!shown++) fprintf(o, "    Python:\n");
    fprintf(o, "      #%d %s %s:%d\n", shown - 1, func, file, line);
  }
}

/* "SUMMARY: ftsan: <what> file:line in function" (no newline), TSan's closing line. */
static void print_summary(FILE *o, const char *what, const ftsan_finding *f) {
  char where[600];
  loc_str(summary_loc(&f->cur.stack), where, sizeof where);
  char *sp = strchr(where, ' ');
  if (sp) {
    *sp = 0;
    fprintf(o, "SUMMARY: ftsan: %s %s in %s", what, sp + 1, where);
  } else {
    fprintf(o, "SUMMARY: ftsan: %s %s", what, where);
  }
}

static const char *borrow_api_name(uint32_t id) {
#define NAME(i, name, fix) if (id == i) return #name;
  FTSAN_BORROW_APIS(NAME)
#undef NAME
  return "a borrowed-reference API";
}

static const char *borrow_api_fix(uint32_t id) {
#define FIX(i, name, fix) if (id == i) return fix;
  FTSAN_BORROW_APIS(FIX)
#undef FIX
  return "a strong reference";
}



static void print_uaf_text(FILE *o, const ftsan_finding *f) {
  fprintf(o, "==================\n");
  fprintf(o, "WARNING: ftsan: use-after-free of a borrowed reference (pid=%u)\n", f->trace->header.pid);
  print_access_text(o, f, &f->cur, 0);
  const char *name = thread_name(f->trace, f->prev.tid);
  fprintf(o, "\n  The object (%s%s%s at 0x%llx, %llu bytes) was freed by thread T%u%s%s%s:\n",
          f->type_name[0] ? "a '" : "a Python object", f->type_name, f->type_name[0] ? "'" : "",
          (unsigned long long)f->object_addr, (unsigned long long)f->object_size, f->prev.tid,
          name ? " '" : "", name ? name : "", name ? "'" : "");
  print_stack_text(o, &f->prev.stack, TEXT_FRAMES);
  if (f->prev.npy) {
    fprintf(o, "    Python stack:\n");
    for (int i = 0; i < f->prev.npy; i++)
      fprintf(o, "      #%d %s %s:%d\n", i, f->prev.py[i].function, f->prev.py[i].file, f->prev.py[i].line);
  }
  fprintf(o, "\n  The pointer is a borrowed reference from %s, called at:\n", borrow_api_name(f->borrow_api));
  print_stack_text(o, &f->alloc, 4);
  fprintf(o, "  Fix: take a strong reference with %s and release it when done; a borrowed reference\n"
             "  is only safe while nothing else can drop the last reference, which in a free-threaded\n"
             "  build is never guaranteed.\n", borrow_api_fix(f->borrow_api));
  print_summary(o, "use-after-free", f);
  fprintf(o, "\n==================\n");
}

static void print_gil_enabled_text(FILE *o, const ftsan_finding *f) {
  fprintf(o, "==================\n");
  fprintf(o, "WARNING: ftsan: the GIL was enabled (pid=%u)\n", f->trace->header.pid);
  fprintf(o, "  Importing module '%s'%s%s%s enabled the GIL for the rest of the process: the module does\n"
             "  not declare Py_mod_gil = Py_MOD_GIL_NOT_USED. Threads no longer run in parallel, so\n"
             "  races after this point may be hidden.\n",
          f->module, f->module_file[0] ? " (" : "", f->module_file, f->module_file[0] ? ")" : "");
  if (f->cur.npy) {
    fprintf(o, "  Imported from (Python stack, thread T%u):\n", f->cur.tid);
    for (int i = 0; i < f->cur.npy; i++)
      fprintf(o, "    #%d %s %s:%d\n", i, f->cur.py[i].function, f->cur.py[i].file, f->cur.py[i].line);
  }
  fprintf(o, "  Fix: once the module is thread-safe, add {Py_mod_gil, Py_MOD_GIL_NOT_USED} to its\n"
             "  PyModuleDef slots (PyUnstable_Module_SetGIL for single-phase init). To look for races\n"
             "  meanwhile, run with PYTHON_GIL=0.\n");
  const ftsan_pyframe *importer = NULL;
  for (int i = 0; i < f->cur.npy && !importer; i++)
    if (!strstr(f->cur.py[i].file, "<frozen") && !strstr(f->cur.py[i].file, "/importlib/"))
      importer = &f->cur.py[i];
  if (importer)
    fprintf(o, "SUMMARY: ftsan: gil-enabled module '%s' imported at %s:%d\n", f->module, base(importer->file), importer->line);
  else
    fprintf(o, "SUMMARY: ftsan: gil-enabled module '%s'\n", f->module);
  fprintf(o, "==================\n");
}

void ftsan_finding_print_text(FILE *o, const ftsan_finding *f, ftsan_symbolizer *sym) {
  if (f->kind == FTSAN_FINDING_GIL_ENABLED) {
    print_gil_enabled_text(o, f);
    return;
  }
  if (f->kind == FTSAN_FINDING_USE_AFTER_FREE) {
    print_uaf_text(o, f);
    return;
  }
  int interrupted = f->kind == FTSAN_FINDING_CS_INTERRUPTED;
  fprintf(o, "==================\n");
  fprintf(o, "WARNING: ftsan: %s (pid=%u)\n", interrupted ? "critical section interrupted" : "data race",
          f->trace->header.pid);
  if (f->gil_enabled_in_process)
    fprintf(o, "  NOTE: the GIL was enabled in this process (see the gil-enabled finding): other races may be hidden\n");
  print_access_text(o, f, &f->cur, 0);
  fprintf(o, "\n");
  print_access_text(o, f, &f->prev, 1);
  fprintf(o, "\n");
  if (f->mem_kind == FTSAN_MEM_PYOBJECT) {
    fprintf(o, "  Location is offset %llu in a Python object of type '%s' at 0x%llx (tp_basicsize %llu)\n",
            (unsigned long long)(f->addr - f->object_addr), f->type_name[0] ? f->type_name : "?",
            (unsigned long long)f->object_addr, (unsigned long long)f->object_size);
    const container_field *c = container_contents(f);
    if (c) fputs(c->advice, o);
  }
  else if (f->has_global) {
    char decl[600] = "";
    if (f->global.file[0])
      snprintf(decl, sizeof decl, ", declared at %s:%d", base(f->global.file), f->global.line);
    fprintf(o, "  Location is global '%s' of size %llu at 0x%llx (%s+0x%llx)%s\n", f->global.name,
            (unsigned long long)f->global.size, (unsigned long long)(f->global.start + f->global_module->bias),
            base(f->global_module->path), (unsigned long long)f->global.start, decl);
  } else if (f->mem_kind == FTSAN_MEM_HEAP) {
    fprintf(o, "  Location is heap block of size %llu at 0x%llx (offset %llu), allocated by thread T%u at:\n",
            (unsigned long long)f->object_size, (unsigned long long)f->object_addr,
            (unsigned long long)(f->addr - f->object_addr), f->alloc_tid);
    print_stack_text(o, &f->alloc, TEXT_FRAMES);
  } else
    fprintf(o, "  Location is heap or stack memory at 0x%llx\n", (unsigned long long)f->addr);
  if (interrupted)
    fprintf(o, "  Thread T%u read this %s inside Py_BEGIN_CRITICAL_SECTION on it, then blocked inside the\n"
               "  section (waited for a lock, slept, did I/O, or ran Python code that did): the interpreter\n"
               "  suspended the section and released the lock, and thread T%u changed the %s meanwhile.\n"
               "  What was read before the blocking call (a size, item pointers) is stale now. Do not call\n"
               "  anything that can block inside the section, or re-read everything after such a call, or\n"
               "  work on a copy made inside the section (PySequence_List, PyDict_Copy).\n",
            f->cur.tid, f->type_name[0] ? f->type_name : "container", f->prev.tid,
            f->type_name[0] ? f->type_name : "container");
  if (interrupted && f->alloc.n) {
    fprintf(o, "\n  The section was suspended (thread T%u blocked) at:\n", f->cur.tid);
    print_stack_text(o, &f->alloc, TEXT_FRAMES + 16);
  }
  fprintf(o, "\n");
  print_thread_text(o, f, f->cur.tid, sym);
  fprintf(o, "\n");
  if (f->prev.tid != f->cur.tid) {
    print_thread_text(o, f, f->prev.tid, sym);
    fprintf(o, "\n");
  }
  print_summary(o, interrupted ? "critical section interrupted" : "data race", f);
  if (f->count > 1) fprintf(o, " (%d reports merged)", f->count);
  fprintf(o, "\n==================\n");
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static void print_stack_json(FILE *o, const ftsan_stack *s) {
  fputc('[', o);
  for (int i = 0; i < s->n; i++) {
    const ftsan_loc *l = &s->locs[i];
    fprintf(o, "%s{\"function\": ", i ? ", " : "");
    json_str(o, l->frame.function);
    fprintf(o, ", \"file\": ");
    json_str(o, l->frame.file);
    fprintf(o, ", \"line\": %d, \"module\": ", l->frame.line);
    json_str(o, l->module ? l->module->path : "");
    fprintf(o, ", \"offset\": %llu, \"inlined\": %s}",
            (unsigned long long)(l->module ? l->pc - l->module->bias : l->pc),
            l->frame.inlined ? "true" : "false");
  }
  fputc(']', o);
}

static void print_access_json(FILE *o, const ftsan_finding *f, const ftsan_access *a) {
  fprintf(o, "{\"thread\": %u, \"thread_name\": ", a->tid);
  json_str(o, thread_name(f->trace, a->tid));
  fprintf(o, ", \"write\": %s, \"size\": %d, \"atomic\": %s, \"stack_complete\": %s, \"stack\": ",
          a->write ? "true" : "false", a->size, a->atomic ? "true" : "false",
          a->stack_full ? "true" : "false");
  print_stack_json(o, &a->stack);
  fprintf(o, ", \"gilstate\": %s, \"python_stack\": [", a->gilstate ? "true" : "false");
  for (int i = 0; i < a->npy; i++) {
    fprintf(o, "%s{\"function\": ", i ? ", " : "");
    json_str(o, a->py[i].function);
    fprintf(o, ", \"file\": ");
    json_str(o, a->py[i].file);
    fprintf(o, ", \"line\": %d}", a->py[i].line);
  }
  fputc(']', o);
  fputc('}', o);
}

static void print_pyframes_json(FILE *o, const ftsan_access *a) {
  fputc('[', o);
  for (int i = 0; i < a->npy; i++) {
    fprintf(o, "%s{\"function\": ", i ? ", " : "");
    json_str(o, a->py[i].function);
    fprintf(o, ", \"file\": ");
    json_str(o, a->py[i].file);
    fprintf(o, ", \"line\": %d}", a->py[i].line);
  }
  fputc(']', o);
}

void ftsan_finding_print_json(FILE *o, const ftsan_finding *f, ftsan_symbolizer *sym) {
  if (f->kind == FTSAN_FINDING_GIL_ENABLED) {
    fprintf(o, "{\"kind\": \"gil-enabled\", \"pid\": %u, \"count\": %d, \"module\": ", f->trace->header.pid, f->count);
    json_str(o, f->module);
    fprintf(o, ", \"file\": ");
    json_str(o, f->module_file);
    fprintf(o, ", \"thread\": %u, \"python_stack\": ", f->cur.tid);
    print_pyframes_json(o, &f->cur);
    fprintf(o, ", \"accesses\": []}");
    return;
  }
  fprintf(o, "{\"kind\": ");
  json_str(o, ftsan_finding_kind_name(f->kind));
  fprintf(o, ", \"pid\": %u, \"address\": \"0x%llx\", \"count\": %d, \"gil_enabled_in_process\": %s, "
          "\"guarded_only_by_gilstate\": %s, \"accesses\": [",
          f->trace->header.pid, (unsigned long long)f->addr, f->count,
          f->gil_enabled_in_process ? "true" : "false",
          f->cur.gilstate && f->prev.gilstate ? "true" : "false");
  print_access_json(o, f, &f->cur);
  fprintf(o, ", ");
  print_access_json(o, f, &f->prev);
  fprintf(o, "], ");
  if (f->kind == FTSAN_FINDING_CS_INTERRUPTED) {
    fprintf(o, "\"suspended_at\": {\"thread\": %u, \"stack\": ", f->cur.tid);
    print_stack_json(o, &f->alloc);
    fprintf(o, "}, ");
  }
  if (f->kind == FTSAN_FINDING_USE_AFTER_FREE) {
    fprintf(o, "\"borrowed_from\": {\"api\": ");
    json_str(o, borrow_api_name(f->borrow_api));
    fprintf(o, ", \"fix\": ");
    json_str(o, borrow_api_fix(f->borrow_api));
    fprintf(o, ", \"thread\": %u, \"stack\": ", f->alloc_tid);
    print_stack_json(o, &f->alloc);
    fprintf(o, "}, ");
  }
  fprintf(o, "\"location\": ");
  if (f->mem_kind == FTSAN_MEM_PYOBJECT) {
    fprintf(o, "{\"kind\": \"pyobject\", \"type\": ");
    json_str(o, f->type_name);
    const container_field *c = container_contents(f);
    fprintf(o, ", \"object\": \"0x%llx\", \"offset\": %llu, \"basicsize\": %llu%s%s%s}",
            (unsigned long long)f->object_addr, (unsigned long long)(f->addr - f->object_addr),
            (unsigned long long)f->object_size, c ? ", \"what\": \"" : "", c ? c->what : "", c ? "\"" : "");
  } else if (f->has_global) {
    fprintf(o, "{\"kind\": \"global\", \"name\": ");
    json_str(o, f->global.name);
    fprintf(o, ", \"size\": %llu, \"offset\": %llu, \"module\": ", (unsigned long long)f->global.size,
            (unsigned long long)(f->addr - f->global_module->bias - f->global.start));
    json_str(o, f->global_module->path);
    fprintf(o, ", \"file\": ");
    json_str(o, f->global.file);
    fprintf(o, ", \"line\": %d}", f->global.line);
  } else if (f->mem_kind == FTSAN_MEM_HEAP) {
    fprintf(o, "{\"kind\": \"heap\", \"block\": \"0x%llx\", \"size\": %llu, \"offset\": %llu, "
            "\"allocated_by\": %u, \"allocated_at\": ", (unsigned long long)f->object_addr,
            (unsigned long long)f->object_size, (unsigned long long)(f->addr - f->object_addr), f->alloc_tid);
    print_stack_json(o, &f->alloc);
    fputc('}', o);
  } else {
    fprintf(o, "{\"kind\": \"unknown\"}");
  }
  fprintf(o, ", \"threads\": [");
  uint32_t tids[2] = {f->cur.tid, f->prev.tid};
  for (int i = 0; i < (tids[0] == tids[1] ? 1 : 2); i++) {
    const ftsan_thread_info *ti = ftsan_trace_thread(f->trace, tids[i]);
    fprintf(o, "%s{\"id\": %u, \"name\": ", i ? ", " : "", tids[i]);
    json_str(o, ti ? ti->name : NULL);
    fprintf(o, ", \"parent\": %d, \"created_at\": ", ti && ti->parent_tid != UINT32_MAX ? (int)ti->parent_tid : -1);
    ftsan_stack s = {0};
    if (ti) symbolize_stack(f->trace, sym, ti->stack, ti->stack_len, &s);
    print_stack_json(o, &s);
    free(s.locs);
    fprintf(o, ", \"created_at_python\": [");
    int shown = 0;
    for (uint32_t k = 0; ti && k < ti->py_len; k++) {
      const char *file, *func;
      int line;
      if (!ftsan_trace_pysite(f->trace, ti->py[k], &file, &func, &line)) continue;
      fprintf(o, "%s{\"function\": ", shown++ ? ", " : "");
      json_str(o, func);
      fprintf(o, ", \"file\": ");
      json_str(o, file);
      fprintf(o, ", \"line\": %d}", line);
    }
    fputc(']', o);
    fputc('}', o);
  }
  fprintf(o, "]}");
}
