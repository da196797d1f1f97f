/* rt_options.c: parses FTSAN_OPTIONS into the one options table (rt_options.inc). */
#include "rt_internal.h"

#include <stdlib.h>
#include <string.h>

struct ftsan_options ftsan__opt = {
#define FTSAN_OPTION(type, name, def, desc) .name = def,
#include "rt_options.inc"
#undef FTSAN_OPTION
};

static void set_option(const char *name, size_t name_len, const char *val, size_t val_len) {
#define FTSAN_OPTION(type, oname, def, desc)                                        \
  if (name_len == sizeof(#oname) - 1 && memcmp(name, #oname, name_len) == 0) {     \
    ftsan__opt_set_##type(&ftsan__opt.oname, val, val_len);                        \
    return;                                                                        \
  }
#include "rt_options.inc"
#undef FTSAN_OPTION
  ftsan__warn(FTSAN_WARN_GENERIC, "unknown option '%.*s' in FTSAN_OPTIONS ignored", (int)name_len, name);
}

void ftsan__opt_set_bool(int *dst, const char *v, size_t n) {
  *dst = !(n == 0 || (n == 1 && (v[0] == '0' || v[0] == 'n')) ||
           (n == 5 && memcmp(v, "false", 5) == 0) || (n == 2 && memcmp(v, "no", 2) == 0));
}

void ftsan__opt_set_int(int *dst, const char *v, size_t n) {
  char buf[32];
  if (n >= sizeof buf) n = sizeof buf - 1;
  memcpy(buf, v, n);
  buf[n] = 0;
  *dst = (int)strtol(buf, NULL, 0);
}

void ftsan__opt_set_str(const char **dst, const char *v, size_t n) {
  char *s = ftsan__alloc(n + 1);
  if (!s) return;
  memcpy(s, v, n);
  s[n] = 0;
  *dst = s;
}

void ftsan__options_init(void) {
  const char *env = getenv("FTSAN_OPTIONS");
  const char *out = getenv("FTSAN_OUT");
  if (out && *out) ftsan__opt.out = out;
  if (env) {
    const char *p = env;
    while (*p) {
      while (*p == ':' || *p == ' ' || *p == ',') p++;
      if (!*p) break;
      const char *name = p;
      while (*p && *p != '=' && *p != ':' && *p != ' ' && *p != ',') p++;
      size_t name_len = (size_t)(p - name);
      const char *val = p;
      size_t val_len = 0;
      if (*p == '=') {
        val = ++p;
        while (*p && *p != ':' && *p != ' ' && *p != ',') p++;
        val_len = (size_t)(p - val);
      } else {
        val = "1";
        val_len = 1;
      }
      set_option(name, name_len, val, val_len);
    }
  }
  if (!*ftsan__opt.out && *ftsan__opt.log_path) ftsan__opt.out = ftsan__opt.log_path;
  if (ftsan__opt.history_size < 10) ftsan__opt.history_size = 10;
  if (ftsan__opt.history_size > 24) ftsan__opt.history_size = 24;
}
