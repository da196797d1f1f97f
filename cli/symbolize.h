/* symbolize.h: the CLI's offline symbolizer, turning module-relative code and data addresses into function/file:line frames (with inlining) and variable names via DWARF and ELF symbols. */
#ifndef FTSAN_SYMBOLIZE_H
#define FTSAN_SYMBOLIZE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Holds every opened module (keyed by path) and a per-address result cache; not thread-safe,
 * the CLI symbolizes from one thread. */
typedef struct ftsan_symbolizer ftsan_symbolizer;

typedef struct ftsan_frame {
  char function[256]; /* "" if unknown */
  char file[512];     /* full path (comp_dir joined when relative); "" if unknown */
  int line;           /* 0 if unknown */
  int column;         /* 0 if unknown */
  int inlined;        /* 1 when this frame is an inlined call inside the next (outer) frame */
} ftsan_frame;

typedef struct ftsan_data_sym {
  char name[256];
  uint64_t start; /* vaddr of the variable's first byte */
  uint64_t size;  /* 0 if unknown */
  char file[512]; /* declaration file, "" if unknown */
  int line;       /* declaration line, 0 if unknown */
} ftsan_data_sym;

/* Returns NULL only when out of memory. */
ftsan_symbolizer *ftsan_symbolizer_new(void);
void ftsan_symbolizer_free(ftsan_symbolizer *);

/* Symbolize a code address given as an offset relative to the module's load bias (the ELF
 * virtual address for PIE/shared objects). Fills up to max frames, innermost (most deeply
 * inlined) first, the last being the real function containing the address. Returns the number
 * of frames written (>=1 when at least a function name is known), 0 if nothing is known or the
 * file is missing/unreadable. Callers symbolizing return addresses subtract 1 themselves. */
int ftsan_symbolize_code(ftsan_symbolizer *, const char *module_path, uint64_t vaddr,
                         ftsan_frame *out, int max);

/* Describe a data address inside a static/global variable: DWARF DW_TAG_variable with a
 * DW_OP_addr/DW_OP_addrx location first, ELF OBJECT symbols as fallback. Returns 1 if found. */
int ftsan_symbolize_data(ftsan_symbolizer *, const char *module_path, uint64_t vaddr,
                         ftsan_data_sym *out);

/* The module's GNU build-id as lowercase hex into buf (NUL-terminated). Returns the number of
 * hex characters written, 0 when the module has none or cannot be read. Lets the CLI warn when
 * the file on disk is not the one the runtime recorded. */
int ftsan_symbolizer_build_id(ftsan_symbolizer *, const char *module_path, char *buf,
                              int buflen);

#ifdef __cplusplus
}
#endif

#endif
