/* main.c: the ftsan command: the table of subcommands and the shared helpers. */
#define _GNU_SOURCE 1
#include "cli.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
  const char *name;
  ftsan_cmd_fn fn;
  const char *help;
} commands[] = {
    {"run", cmd_run, "run a command with the ftsan runtime preloaded"},
    {"report", cmd_report, "print the findings and events recorded in traces"},
    {"top", cmd_top, "rank the objects, types and sites threads contend on"},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: ftsan <command> [options]\n"
          "\n"
          "ftsan finds data races and GIL assumptions in C extensions running in free-threaded\n"
          "CPython. Build the extension with CC=ftsan-cc, run it under 'ftsan run', then read\n"
          "'ftsan report'.\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\n'ftsan <command> --help' describes a command's options.\n"
             "  --version  print the version\n");
}

int ftsan_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("ftsan: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 2;
}

const char *ftsan_libdir(void) {
  static char dir[PATH_MAX];
  if (dir[0]) return dir;
  const char *env = getenv("FTSAN_LIBDIR");
  if (env && *env) {
    snprintf(dir, sizeof dir, "%s", env);
    return dir;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return NULL;
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  if (!slash) return NULL;
  *slash = 0;
  snprintf(dir, sizeof dir, "%s/../lib/ftsan", exe);
  char *real = realpath(dir, NULL);
  if (real) {
    snprintf(dir, sizeof dir, "%s", real);
    free(real);
  }
  return dir;
}

void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (*p < 0x20) fprintf(f, "\\u%04x", *p);
      else fputc(*p, f);
    }
  }
  fputc('"', f);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
    printf("ftsan %s\n", FTSAN_VERSION_STRING);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  ftsan_error("unknown command '%s' (see 'ftsan --help')", cmd);
  return 2;
}
