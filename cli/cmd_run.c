/* cmd_run.c: 'ftsan run': runs a command with the runtime preloaded, traces going to an
 * output directory, then prints a summary and exits with the command's status, or with a
 * distinct status (66 unless --exitcode says otherwise) when findings exist, as
 * ThreadSanitizer does. */
#define _GNU_SOURCE 1
#include "cli.h"
#include "findings.h"
#include "trace_reader.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void run_usage(FILE *f) {
  fprintf(f,
          "usage: ftsan run [options] -- COMMAND [ARGS...]\n"
          "\n"
          "Runs COMMAND with the ftsan runtime preloaded. Each process writes\n"
          "ftsan.<pid>.trace into the output directory; old traces there are removed first.\n"
          "\n"
          "options:\n"
          "  --out DIR       output directory (default ./ftsan-out)\n"
          "  --mode MODE     race (default: races and contention) or contention (only\n"
          "                  reference-count and lock contention, much cheaper; see ftsan top)\n"
          "  --options OPTS  runtime options, as in FTSAN_OPTIONS (name=value:name=value)\n"
          "  --exitcode N    exit status when findings exist (default 66; 0 keeps COMMAND's)\n"
          "  --suppressions FILE  race:/race_top: patterns of findings not to count\n"
          "  -q, --quiet     no summary and no per-race lines on stderr\n");
}

static int mkdir_p(const char *dir) {
  char path[PATH_MAX];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof path) return -1;
  memcpy(path, dir, n + 1);
  for (size_t i = 1; i < n; i++)
    if (path[i] == '/') {
      path[i] = 0;
      if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
      path[i] = '/';
    }
  if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
  return 0;
}

static void remove_old_traces(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (strncmp(e->d_name, "ftsan.", 6) == 0 && len > 12 && !strcmp(e->d_name + len - 6, ".trace")) {
      char p[PATH_MAX];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  }
  closedir(d);
}

/* The value of NAME in a runtime options string ("a=1:b=2", also separated by spaces or
 * commas), or NULL. ftsan run honours the options it shares with the runtime (exitcode,
 * suppressions) so that both agree. */
static char *runtime_option(const char *opts, const char *name) {
  if (!opts) return NULL;
  size_t n = strlen(name);
  const char *p = opts;
  while (*p) {
    while (*p == ':' || *p == ' ' || *p == ',') p++;
    const char *start = p;
    while (*p && *p != ':' && *p != ' ' && *p != ',') p++;
    if ((size_t)(p - start) > n && !strncmp(start, name, n) && start[n] == '=')
      return strndup(start + n + 1, (size_t)(p - start) - n - 1);
  }
  return NULL;
}

int cmd_run(int argc, char **argv) {
  const char *out = "ftsan-out";
  const char *options = NULL;
  const char *supp_path = NULL;
  const char *mode = NULL;
  int exitcode = -1, quiet = 0;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      run_usage(stdout);
      return 0;
    } else if (!strcmp(a, "--out") && i + 1 < argc) {
      out = argv[++i];
    } else if (!strncmp(a, "--out=", 6)) {
      out = a + 6;
    } else if (!strcmp(a, "--mode") && i + 1 < argc) {
      mode = argv[++i];
      if (strcmp(mode, "race") && strcmp(mode, "contention"))
        return ftsan_error("run: --mode takes race or contention, not '%s'", mode);
    } else if (!strcmp(a, "--options") && i + 1 < argc) {
      options = argv[++i];
    } else if (!strcmp(a, "--exitcode") && i + 1 < argc) {
      exitcode = atoi(argv[++i]);
    } else if (!strcmp(a, "--suppressions") && i + 1 < argc) {
      supp_path = argv[++i];
    } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
      quiet = 1;
    } else if (a[0] == '-') {
      return ftsan_error("run: unknown option '%s' (see 'ftsan run --help')", a);
    } else {
      break; /* COMMAND without "--" */
    }
  }
  if (i >= argc) return ftsan_error("run: no command given (usage: ftsan run [options] -- COMMAND...)");
  const char *opts = options ? options : getenv("FTSAN_OPTIONS");
  if (exitcode < 0) {
    char *v = runtime_option(opts, "exitcode");
    exitcode = v ? atoi(v) : 66;
    free(v);
  }
  char *supp_opt = NULL;
  if (!supp_path && (supp_opt = runtime_option(opts, "suppressions"))) supp_path = supp_opt;

  const char *libdir = ftsan_libdir();
  char runtime[PATH_MAX];
  const char *env_rt = getenv("FTSAN_RUNTIME");
  snprintf(runtime, sizeof runtime, "%s", env_rt && *env_rt ? env_rt : "");
  if (!runtime[0]) snprintf(runtime, sizeof runtime, "%s/libftsan-rt.so", libdir ? libdir : ".");
  if (access(runtime, R_OK) != 0)
    return ftsan_error("run: runtime library %s not found (set FTSAN_RUNTIME or reinstall)", runtime);

  if (mkdir_p(out) != 0) return ftsan_error("run: cannot create output directory %s: %s", out, strerror(errno));
  char outabs[PATH_MAX];
  if (!realpath(out, outabs)) return ftsan_error("run: %s: %s", out, strerror(errno));
  remove_old_traces(outabs);

  char *preload = NULL;
  const char *old = getenv("LD_PRELOAD");
  if (asprintf(&preload, "%s%s%s", runtime, old && *old ? ":" : "", old && *old ? old : "") < 0)
    return ftsan_error("run: out of memory");

  pid_t pid = fork();
  if (pid < 0) return ftsan_error("run: fork: %s", strerror(errno));
  if (pid == 0) {
    setenv("LD_PRELOAD", preload, 1);
    setenv("FTSAN_OUT", outabs, 1);
    if (options) setenv("FTSAN_OPTIONS", options, 1);
    if (mode) {
      const char *o = getenv("FTSAN_OPTIONS");
      char *q = NULL;
      if (asprintf(&q, "%s%smode=%s", o && *o ? o : "", o && *o ? ":" : "", mode) >= 0)
        setenv("FTSAN_OPTIONS", q, 1);
    }
    if (quiet) {
      /* -q also silences the runtime's per-race lines; later options win. */
      const char *o = getenv("FTSAN_OPTIONS");
      char *q = NULL;
      if (asprintf(&q, "%s%sreport_to_stderr=0", o && *o ? o : "", o && *o ? ":" : "") >= 0)
        setenv("FTSAN_OPTIONS", q, 1);
    }
    execvp(argv[i], argv + i);
    fprintf(stderr, "ftsan: run: cannot execute %s: %s\n", argv[i], strerror(errno));
    _exit(127);
  }
  /* The command owns the terminal's signals; ftsan waits for it and reports. */
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return ftsan_error("run: waitpid: %s", strerror(errno));
  free(preload);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return 127;

  char err[512];
  ftsan_suppressions *supp = NULL;
  if (supp_path && !(supp = ftsan_suppressions_load(supp_path, err, sizeof err)))
    return ftsan_error("run: %s", err);
  char **files = NULL;
  int n = ftsan_trace_list(outabs, &files, err, sizeof err);
  ftsan_trace *loaded = calloc(n > 0 ? (size_t)n : 1, sizeof *loaded);
  int gil = 0, truncated = 0, traces = 0;
  for (int k = 0; k < n; k++) {
    if (ftsan_trace_load(files[k], &loaded[traces], err, sizeof err) == 0) {
      ftsan_trace *t = &loaded[traces++];
      if (!t->complete) truncated++;
      if (ftsan_trace_gil_enabled(t)) gil = 1;
    } else {
      ftsan_trace_free(&loaded[traces]);
      if (!quiet) fprintf(stderr, "ftsan: %s\n", err);
    }
    free(files[k]);
  }
  free(files);
  ftsan_symbolizer *sym = ftsan_symbolizer_new();
  ftsan_finding *fs = NULL;
  size_t nsupp = 0;
  size_t findings = ftsan_findings_collect(loaded, (size_t)traces, sym, supp, &fs, &nsupp);
  ftsan_findings_free(fs, findings);
  ftsan_symbolizer_free(sym);
  ftsan_suppressions_free(supp);
  for (int k = 0; k < traces; k++) ftsan_trace_free(&loaded[k]);
  free(loaded);
  if (!quiet) {
    if (traces == 0)
      fprintf(stderr, "ftsan: no trace was written (did the command start a dynamically linked program?)\n");
    else
      fprintf(stderr, "ftsan: %zu finding%s in %d process%s%s; details: ftsan report %s\n",
              findings, findings == 1 ? "" : "s", traces, traces == 1 ? "" : "es",
              nsupp ? " (some suppressed)" : "", out);
    if (truncated) fprintf(stderr, "ftsan: %d trace%s ended early (the process crashed or was killed)\n",
                           truncated, truncated == 1 ? "" : "s");
    if (gil) fprintf(stderr, "ftsan: the GIL was enabled during the run: races may be hidden\n");
  }
  if (findings > 0 && exitcode != 0) return exitcode;
  return code;
}
