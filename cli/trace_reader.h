/* trace_reader.h: reads ftsan trace files (include/ftsan_trace.h) into memory, validating
 * every length so that corrupt or truncated files give one clear error, never a crash. */
#ifndef FTSAN_TRACE_READER_H
#define FTSAN_TRACE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "ftsan_trace.h"

typedef struct ftsan_module {
  uint64_t bias, start, end;
  uint32_t flags;
  char *path;
  char build_id[41 * 2];  /* hex, possibly truncated */
} ftsan_module;

typedef struct ftsan_thread_info {
  uint32_t tid, parent_tid;
  uint64_t os_tid;
  char *name;
  uint64_t *stack;
  uint32_t stack_len;
  uint64_t *py;             /* PYSITE ids of the Python stack that started it */
  uint32_t py_len;
} ftsan_thread_info;

typedef struct ftsan_site {
  uint64_t pc;
  uint32_t kind;
  uint32_t tid;
  uint64_t count;
} ftsan_site;

typedef struct ftsan_warning {
  uint32_t code;
  char *msg;
} ftsan_warning;

/* A record the reader keeps as raw bytes for later analyses (races, ...). */
typedef struct ftsan_raw_record {
  uint32_t kind, size;
  const unsigned char *data;  /* whole record including its header */
} ftsan_raw_record;

typedef struct ftsan_trace {
  char *path;
  unsigned char *bytes;
  size_t len;
  struct ftsan_trace_header header;
  uint32_t ppid, python_version, proc_flags;
  char *exe, *cmdline;
  ftsan_module *modules; size_t nmodules;
  ftsan_thread_info *threads; size_t nthreads;
  ftsan_site *sites; size_t nsites;
  uint64_t sites_dropped;
  ftsan_warning *warnings; size_t nwarnings;
  ftsan_raw_record *records; size_t nrecords;  /* kinds kept raw: RACE, REFCOUNT, LOCK, TYPE, PYSITE */
  int complete;               /* an END record was seen */
  struct ftsan_rec_end end;
  uint32_t unknown_records;   /* records of kinds this version does not know, skipped */
} ftsan_trace;

/* Returns 0, or -1 with a one-line message (no trailing newline) in err. */
int ftsan_trace_load(const char *path, ftsan_trace *out, char *err, size_t errlen);
void ftsan_trace_free(ftsan_trace *t);
/* The GIL was enabled during the run (an import enabled it, or it was found on at exit). */
int ftsan_trace_gil_enabled(const ftsan_trace *t);
/* The module containing pc, or NULL. */
const ftsan_module *ftsan_trace_module_for(const ftsan_trace *t, uint64_t pc);
const ftsan_thread_info *ftsan_trace_thread(const ftsan_trace *t, uint32_t tid);
/* A Python line recorded as a PYSITE record: 1 and the fields, or 0 if the id is unknown.
 * file and func point into the trace's bytes. */
int ftsan_trace_pysite(const ftsan_trace *t, uint64_t id, const char **file, const char **func, int *line);

/* Expands PATH (a trace file or a directory holding ftsan.*.trace files) into a sorted list
 * of file paths. Returns the count, or -1 with a message in err. */
int ftsan_trace_list(const char *path, char ***files, char *err, size_t errlen);

#endif
