/* cli.h: what the ftsan command's subcommands share: the command signature, error output,
 * paths of the installed pieces, and the JSON writer. */
#ifndef FTSAN_CLI_H
#define FTSAN_CLI_H

#include <stdio.h>

#ifndef FTSAN_VERSION_STRING
#define FTSAN_VERSION_STRING "0"
#endif

/* Every subcommand: argv[0] is the subcommand's name. Returns the process exit status. */
typedef int (*ftsan_cmd_fn)(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_top(int argc, char **argv);

/* "ftsan: <message>" on stderr; returns 2 (the status for usage and input errors). */
int ftsan_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The directory holding the runtime and the plugin, next to this executable:
 * <prefix>/bin/ftsan -> <prefix>/lib/ftsan. */
const char *ftsan_libdir(void);

/* Minimal JSON output with correct string escaping. */
void json_str(FILE *f, const char *s);

#endif
