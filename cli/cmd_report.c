/* cmd_report.c: 'ftsan report': reads traces, symbolizes, and prints what the runtime found
 * (text for people, JSON for tools; docs/report-format.md). */
#define _GNU_SOURCE 1
#include "cli.h"
#include "findings.h"
#include "symbolize.h"
#include "trace_reader.h"

#include <stdlib.h>
#include <string.h>

enum { FMT_TEXT, FMT_JSON };

static void report_usage(FILE *f) {
  fprintf(f,
          "usage: ftsan report [--format text|json] [--suppressions FILE] [--stats] PATH...\n"
          "\n"
          "PATH is a trace file or a directory of ftsan.*.trace files (default ./ftsan-out).\n"
          "  --format text|json   text for people (default), JSON for tools\n"
          "  --suppressions FILE  race:PATTERN / race_top:PATTERN lines, as in ThreadSanitizer\n"
          "  --stats              also print the events seen per instrumented function\n"
          "  --exit-code          exit with 66 when there are findings\n");
}

/* Events of one function of an instrumented module, summed over sites and threads. */
typedef struct fn_stats {
  char function[256];
  char file[512];
  int line;                  /* first line seen for the function's sites */
  const char *module;
  uint64_t counts[5];        /* by FTSAN_EV_* */
  uint64_t thread_mask;      /* threads 0..63 that touched it */
} fn_stats;

static const char *basename_of(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static int popcount64(uint64_t v) { return __builtin_popcountll(v); }

static int cmp_fn(const void *a, const void *b) {
  const fn_stats *x = a, *y = b;
  uint64_t sx = 0, sy = 0;
  for (int i = 0; i < 5; i++) sx += x->counts[i], sy += y->counts[i];
  if (sx != sy) return sx < sy ? 1 : -1;
  return strcmp(x->function, y->function);
}

static size_t collect_functions(const ftsan_trace *t, ftsan_symbolizer *sym, fn_stats **out) {
  size_t n = 0, cap = 0;
  fn_stats *fs = NULL;
  for (size_t i = 0; i < t->nsites; i++) {
    const ftsan_site *s = &t->sites[i];
    const ftsan_module *m = ftsan_trace_module_for(t, s->pc);
    ftsan_frame fr[16];
    int nf = m ? ftsan_symbolize_code(sym, m->path, s->pc - m->bias - 1, fr, 16) : 0;
    const ftsan_frame *outer = nf > 0 ? &fr[nf - 1] : NULL;
    const char *fname = outer && outer->function[0] ? outer->function : "??";
    fn_stats *f = NULL;
    for (size_t k = 0; k < n; k++)
      if (fs[k].module == (m ? m->path : NULL) && !strcmp(fs[k].function, fname)) f = &fs[k];
    if (!f) {
      if (n == cap) {
        cap = cap ? cap * 2 : 32;
        fs = realloc(fs, cap * sizeof *fs);
      }
      f = &fs[n++];
      memset(f, 0, sizeof *f);
      snprintf(f->function, sizeof f->function, "%s", fname);
      f->module = m ? m->path : NULL;
      if (outer) {
        snprintf(f->file, sizeof f->file, "%s", outer->file);
        f->line = outer->line;
      }
    }
    if (s->kind < 5) f->counts[s->kind] += s->count;
    if (s->tid < 64) f->thread_mask |= 1ull << s->tid;
    if (s->kind == FTSAN_EV_FUNC_ENTRY && outer && outer->line && (f->line == 0 || outer->line < f->line))
      f->line = outer->line;
  }
  if (n) qsort(fs, n, sizeof *fs, cmp_fn);
  *out = fs;
  return n;
}

static void python_version_str(uint32_t v, char *buf, size_t n) {
  if (!v) snprintf(buf, n, "not python");
  else snprintf(buf, n, "%u.%u.%u", v >> 24 & 0xff, v >> 16 & 0xff, v >> 8 & 0xff);
}


static void text_process(const ftsan_trace *t, ftsan_symbolizer *sym, int show_stats) {
  char ver[32];
  python_version_str(t->python_version, ver, sizeof ver);
  printf("== process %u: %s ==\n", t->header.pid, t->cmdline ? t->cmdline : "?");
  printf("   python %s%s%s%s\n", ver,
         t->proc_flags & FTSAN_PROC_FREE_THREADED ? ", free-threaded" : "",
         !t->python_version ? ""
         : !(t->proc_flags & FTSAN_PROC_FREE_THREADED) ? ", a GIL build (races may be hidden)"
         : ftsan_trace_gil_enabled(t) ? ", GIL ENABLED (races may be hidden)" : ", GIL disabled",
         t->complete ? "" : ", trace TRUNCATED (the process crashed or was killed)");
  for (size_t w = 0; w < t->nwarnings; w++) printf("   warning: %s\n", t->warnings[w].msg);
  int any = 0;
  for (size_t i = 0; i < t->nmodules; i++)
    if (t->modules[i].flags & FTSAN_MOD_INSTRUMENTED) {
      if (!any) printf("   instrumented modules:\n");
      any = 1;
      printf("     %s\n", t->modules[i].path);
    }
  if (!any) printf("   no instrumented module was loaded\n");
  /* Threads are recorded when they end: a trace cut short misses the ones still running. */
  if (t->complete) printf("   threads: %zu\n", t->nthreads);
  else printf("   threads: %zu finished before the trace ended\n", t->nthreads);
  if (!show_stats) return;
  fn_stats *fs;
  size_t n = collect_functions(t, sym, &fs);
  if (n) {
    printf("   events by function:\n");
    printf("     %-28s %-28s %9s %9s %9s %8s %6s %7s\n", "function", "location", "calls", "reads",
           "writes", "atomics", "sync", "threads");
    for (size_t i = 0; i < n; i++) {
      char loc[64];
      if (fs[i].file[0]) snprintf(loc, sizeof loc, "%s:%d", basename_of(fs[i].file), fs[i].line);
      else snprintf(loc, sizeof loc, "%s", fs[i].module ? basename_of(fs[i].module) : "?");
      printf("     %-28s %-28s %9llu %9llu %9llu %8llu %6llu %7d\n", fs[i].function, loc,
             (unsigned long long)fs[i].counts[FTSAN_EV_FUNC_ENTRY],
             (unsigned long long)fs[i].counts[FTSAN_EV_READ],
             (unsigned long long)fs[i].counts[FTSAN_EV_WRITE],
             (unsigned long long)fs[i].counts[FTSAN_EV_ATOMIC],
             (unsigned long long)fs[i].counts[FTSAN_EV_SYNC], popcount64(fs[i].thread_mask));
    }
  }
  free(fs);
}

static void json_process(FILE *o, const ftsan_trace *t, ftsan_symbolizer *sym) {
  char ver[32];
  python_version_str(t->python_version, ver, sizeof ver);
  fprintf(o, "{\"pid\": %u, \"command\": ", t->header.pid);
  json_str(o, t->cmdline);
  fprintf(o, ", \"python_version\": ");
  json_str(o, t->python_version ? ver : "");
  fprintf(o, ", \"free_threaded\": %s, \"gil_enabled\": %s, \"complete\": %s, \"threads\": %zu",
          t->proc_flags & FTSAN_PROC_FREE_THREADED ? "true" : "false",
          ftsan_trace_gil_enabled(t) ? "true" : "false", t->complete ? "true" : "false", t->nthreads);
  fprintf(o, ", \"warnings\": [");
  for (size_t w = 0; w < t->nwarnings; w++) {
    if (w) fputs(", ", o);
    json_str(o, t->warnings[w].msg);
  }
  fprintf(o, "], \"instrumented_modules\": [");
  int first = 1;
  for (size_t i = 0; i < t->nmodules; i++)
    if (t->modules[i].flags & FTSAN_MOD_INSTRUMENTED) {
      if (!first) fputs(", ", o);
      first = 0;
      json_str(o, t->modules[i].path);
    }
  fprintf(o, "], \"functions\": [");
  fn_stats *fs;
  size_t n = collect_functions(t, sym, &fs);
  for (size_t i = 0; i < n; i++) {
    fprintf(o, "%s{\"function\": ", i ? ", " : "");
    json_str(o, fs[i].function);
    fprintf(o, ", \"file\": ");
    json_str(o, fs[i].file);
    fprintf(o, ", \"line\": %d, \"module\": ", fs[i].line);
    json_str(o, fs[i].module);
    fprintf(o, ", \"calls\": %llu, \"reads\": %llu, \"writes\": %llu, \"atomics\": %llu, \"sync\": %llu, \"threads\": %d}",
            (unsigned long long)fs[i].counts[FTSAN_EV_FUNC_ENTRY],
            (unsigned long long)fs[i].counts[FTSAN_EV_READ],
            (unsigned long long)fs[i].counts[FTSAN_EV_WRITE],
            (unsigned long long)fs[i].counts[FTSAN_EV_ATOMIC],
            (unsigned long long)fs[i].counts[FTSAN_EV_SYNC], popcount64(fs[i].thread_mask));
  }
  free(fs);
  fprintf(o, "]}");
}

int cmd_report(int argc, char **argv) {
  int fmt = FMT_TEXT;
  const char *supp_path = NULL;
  int show_stats = 0, exit_code = 0;
  const char *paths[256];
  int npaths = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      report_usage(stdout);
      return 0;
    } else if ((!strcmp(a, "--format") || !strcmp(a, "-f")) && i + 1 < argc) {
      a = argv[++i];
      if (!strcmp(a, "text")) fmt = FMT_TEXT;
      else if (!strcmp(a, "json")) fmt = FMT_JSON;
      else return ftsan_error("report: unknown format '%s' (text or json)", a);
    } else if (!strncmp(a, "--format=", 9)) {
      if (!strcmp(a + 9, "text")) fmt = FMT_TEXT;
      else if (!strcmp(a + 9, "json")) fmt = FMT_JSON;
      else return ftsan_error("report: unknown format '%s' (text or json)", a + 9);
    } else if (!strcmp(a, "--suppressions") && i + 1 < argc) {
      supp_path = argv[++i];
    } else if (!strncmp(a, "--suppressions=", 15)) {
      supp_path = a + 15;
    } else if (!strcmp(a, "--stats")) {
      show_stats = 1;
    } else if (!strcmp(a, "--exit-code")) {
      exit_code = 1;
    } else if (a[0] == '-' && a[1]) {
      return ftsan_error("report: unknown option '%s' (see 'ftsan report --help')", a);
    } else if (npaths < 256) {
      paths[npaths++] = a;
    }
  }
  if (npaths == 0) paths[npaths++] = "ftsan-out";

  ftsan_trace *traces = NULL;
  size_t ntraces = 0;
  char err[512];
  for (int p = 0; p < npaths; p++) {
    char **files;
    int n = ftsan_trace_list(paths[p], &files, err, sizeof err);
    if (n < 0) return ftsan_error("report: %s", err);
    for (int k = 0; k < n; k++) {
      traces = realloc(traces, (ntraces + 1) * sizeof *traces);
      if (ftsan_trace_load(files[k], &traces[ntraces], err, sizeof err) != 0) {
        ftsan_trace_free(&traces[ntraces]);
        return ftsan_error("report: %s", err);
      }
      ntraces++;
      free(files[k]);
    }
    free(files);
  }

  ftsan_suppressions *supp = NULL;
  if (supp_path && !(supp = ftsan_suppressions_load(supp_path, err, sizeof err)))
    return ftsan_error("report: %s", err);
  ftsan_symbolizer *sym = ftsan_symbolizer_new();
  ftsan_finding *fs = NULL;
  size_t nsupp = 0;
  size_t nf = ftsan_findings_collect(traces, ntraces, sym, supp, &fs, &nsupp);
  if (fmt == FMT_TEXT) {
    for (size_t i = 0; i < nf; i++) {
      ftsan_finding_print_text(stdout, &fs[i], sym);
      printf("\n");
    }
    printf("ftsan report: %zu finding%s in %zu process%s", nf, nf == 1 ? "" : "s", ntraces,
           ntraces == 1 ? "" : "es");
    if (nsupp) printf(" (%zu report%s suppressed)", nsupp, nsupp == 1 ? "" : "s");
    printf("\n\n");
    for (size_t i = 0; i < ntraces; i++) {
      text_process(&traces[i], sym, show_stats);
      printf("\n");
    }
  } else {
    printf("{\"version\": 1, \"findings\": [");
    for (size_t i = 0; i < nf; i++) {
      if (i) printf(", ");
      ftsan_finding_print_json(stdout, &fs[i], sym);
    }
    printf("], \"suppressed\": %zu, \"processes\": [", nsupp);
    for (size_t i = 0; i < ntraces; i++) {
      if (i) printf(", ");
      json_process(stdout, &traces[i], sym);
    }
    printf("]}\n");
  }
  ftsan_findings_free(fs, nf);
  ftsan_suppressions_free(supp);
  ftsan_symbolizer_free(sym);
  for (size_t i = 0; i < ntraces; i++) ftsan_trace_free(&traces[i]);
  free(traces);
  return exit_code && nf > 0 ? 66 : 0;
}
