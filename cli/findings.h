/* findings.h: turns the RACE records of traces into findings: symbolized stacks, what the
 * memory is, deduplicated by the pair of source locations, filtered by suppressions. */
#ifndef FTSAN_FINDINGS_H
#define FTSAN_FINDINGS_H

#include <stdio.h>

#include "symbolize.h"
#include "trace_reader.h"

#define FTSAN_MAX_FRAMES 96

typedef struct ftsan_loc {
  uint64_t pc;
  const ftsan_module *module;
  ftsan_frame frame;       /* symbolized (one entry per inlined level) */
} ftsan_loc;

typedef struct ftsan_stack {
  ftsan_loc *locs;
  int n;
} ftsan_stack;

typedef struct ftsan_pyframe {
  const char *file, *function; /* point into the trace */
  int line;
} ftsan_pyframe;

typedef struct ftsan_access {
  uint32_t tid;
  int size, write, atomic, stack_full;
  int gilstate;            /* made between PyGILState_Ensure and PyGILState_Release */
  ftsan_stack stack;
  ftsan_pyframe *py;       /* Python frames, innermost first */
  int npy;
} ftsan_access;

typedef struct ftsan_finding {
  uint32_t kind;
  const ftsan_trace *trace;
  uint64_t addr;
  ftsan_access cur, prev;
  uint32_t mem_kind;
  uint64_t object_addr, object_size;
  char type_name[128];
  uint32_t alloc_tid;      /* FTSAN_MEM_HEAP: allocating thread */
  ftsan_stack alloc;       /* FTSAN_MEM_HEAP: allocation stack (may be empty) */
  int has_global;
  ftsan_data_sym global;   /* when the address is a static variable of a module */
  const ftsan_module *global_module;
  uint32_t borrow_api;     /* use-after-free: FTSAN_BORROW_APIS id of the borrowing call */
  char module[256];        /* gil-enabled: the module whose import enabled the GIL */
  char module_file[512];
  int gil_enabled_in_process;
  char key[1200];          /* deduplication key */
  int count;               /* records merged into this finding */
  int suppressed;
} ftsan_finding;

typedef struct ftsan_suppressions ftsan_suppressions;
/* Reads TSan-style suppressions (race:PATTERN, race_top:PATTERN, # comments). Returns NULL
 * with a message in err on a read or syntax error. */
ftsan_suppressions *ftsan_suppressions_load(const char *path, char *err, size_t errlen);
void ftsan_suppressions_free(ftsan_suppressions *);

/* Collects the findings of all traces; suppressed ones are dropped. Returns the count. */
size_t ftsan_findings_collect(ftsan_trace *traces, size_t ntraces, ftsan_symbolizer *sym,
                              const ftsan_suppressions *supp, ftsan_finding **out,
                              size_t *nsuppressed);
void ftsan_findings_free(ftsan_finding *f, size_t n);

void ftsan_finding_print_text(FILE *o, const ftsan_finding *f, ftsan_symbolizer *sym);
void ftsan_finding_print_json(FILE *o, const ftsan_finding *f, ftsan_symbolizer *sym);
const char *ftsan_finding_kind_name(uint32_t kind);

/* Finding kinds the CLI makes from other records than RACE. */
#define FTSAN_FINDING_GIL_ENABLED 100

#endif
