/* elf_lookup.h: finds a function symbol's run-time address and size by name in the objects loaded into this process. */
#ifndef FTSAN_ELF_LOOKUP_H
#define FTSAN_ELF_LOOKUP_H

#include <stddef.h>

/* Why this exists: with a python built by plain ./configure, libpython is linked into the
 * executable, so calls between interpreter functions are direct and LD_PRELOAD cannot
 * interpose them; the runtime must find each function's address (including static ones that
 * only .symtab names, e.g. _PyObject_Free) and patch its entry (see patch.h).
 *
 * Search order: the main program first, then the other loaded objects in dl_iterate_phdr
 * order (the dynamic linker's order). Both .dynsym and .symtab are read from the object's
 * file on disk (/proc/self/exe for the main program). Only defined STT_FUNC symbols count.
 * A global (STB_GLOBAL or STB_WEAK) definition anywhere wins over a local one; among globals
 * the first object in search order wins, and inside one object the default symbol version
 * (@@) wins over hidden ones; if that winner is an STT_GNU_IFUNC (glibc's memcpy, strlen...)
 * the lookup fails with FTSAN_ELF_EIFUNC rather than return the resolver. If only locals match, the first one in search order is returned
 * and `ambiguous` is set when other locals of that name have other addresses.
 *
 * Safe to call from a library constructor: no malloc, no stdio, no pthread calls; files are
 * opened and mapped with raw syscalls (so an interceptor for open/mmap in the same runtime is
 * never re-entered), and the state lives in static storage. Lookups are serialized by a spin
 * lock. Objects dlopen'ed during a begin/end batch are not seen until the batch ends. */

#define FTSAN_ELF_ERRORS(X)                                                                  \
  X(FTSAN_ELF_OK, 0, "found")                                                                \
  X(FTSAN_ELF_EINVAL, -1, "invalid argument")                                                \
  X(FTSAN_ELF_ENOTFOUND, -2, "no defined function of that name in any loaded object")        \
  X(FTSAN_ELF_EIFUNC, -3, "the definition calls bind to is an STT_GNU_IFUNC (the symbol is its resolver)") \
  X(FTSAN_ELF_ENOOBJECT, -4, "no loaded object matched the requested object name")

enum ftsan_elf_error {
#define FTSAN__ELF_ENUM(name, value, text) name = value,
  FTSAN_ELF_ERRORS(FTSAN__ELF_ENUM)
#undef FTSAN__ELF_ENUM
};

typedef struct ftsan_elf_sym {
  void *addr;         /* run-time address (load bias + st_value) */
  size_t size;        /* st_size; 0 when the symbol table did not record one */
  int is_local;       /* 1 for STB_LOCAL (static functions, hidden symbols after linking) */
  int ambiguous;      /* 1 when other local definitions of the name have other addresses */
  const char *object; /* path of the object that defined it ("/proc/self/exe" for main) */
} ftsan_elf_sym;

/* Looks `name` up in all loaded objects. Returns 0 and fills *out, or a negative FTSAN_ELF_E*. */
int ftsan_elf_lookup(const char *name, ftsan_elf_sym *out);

/* Like ftsan_elf_lookup, restricted to one object: NULL means all objects, "" the main
 * program, anything else an object whose file name (the part after the last '/') starts with
 * it, e.g. "libc.so". */
int ftsan_elf_lookup_in(const char *object, const char *name, ftsan_elf_sym *out);

/* Optional batching: between begin and end each object's file stays mapped, so a series of
 * lookups parses every file once. Nestable; without them each lookup maps and unmaps. */
void ftsan_elf_lookup_begin(void);
void ftsan_elf_lookup_end(void);

const char *ftsan_elf_strerror(int code);

#endif
