/* rt_pylayout.h: the interpreter's data layout as its debug offsets describe it.
 *
 * _PyRuntime starts with _Py_DebugOffsets (Include/internal/pycore_debug_offsets.h): a
 * cookie "xdebugpy", PY_VERSION_HEX, a free-threaded flag, then groups of uint64 offsets
 * (runtime state, interpreter state, thread state, interpreter frame, code object, ...).
 * The offsets themselves are read from the running interpreter; what differs between minor
 * versions is where in _Py_DebugOffsets each one sits, and how a frame names its code and
 * its instruction. This file knows both for 3.13 and 3.14 and is pure: it reads memory it
 * is given and calls nothing, so the unit tests can run it on hand-made frames. */
#ifndef FTSAN_RT_PYLAYOUT_H
#define FTSAN_RT_PYLAYOUT_H

#include <stdint.h>

typedef struct {
  uint32_t version;  /* PY_VERSION_HEX */
  int free_threaded;
  /* offsets, read from the debug offsets */
  uint64_t interpreters_head;  /* in _PyRuntimeState */
  uint64_t gil_state;          /* in PyInterpreterState: struct _gil_runtime_state */
  uint64_t gil_enabled;        /* in PyInterpreterState: its `enabled` (0 when not given) */
  uint64_t ts_current_frame;   /* in PyThreadState */
  uint64_t if_previous, if_executable, if_instr_ptr, if_localsplus, if_owner;
  uint64_t if_tlbc_index;      /* 3.14 free-threaded: int32 index into co_tlbc, else 0 */
  uint64_t co_filename, co_qualname, co_code_adaptive;
  uint64_t co_tlbc;            /* 3.14 free-threaded: _PyCodeArray *, else 0 */
  uint64_t ob_type;
  /* how frames are read */
  int executable_tagged;       /* f_executable is a _PyStackRef (3.14): low bits are tags */
  uint8_t incomplete_owner;    /* frames with owner >= this are not Python frames */
} ftsan_pylayout;

/* Fills *l from the debug offsets at rt. Returns 0, or -1 when rt is not a _Py_DebugOffsets
 * or its version's layout is unknown (l->version is still set when the cookie matched). */
int ftsan_pylayout_read(const char *rt, ftsan_pylayout *l);

/* The code object a frame executes, or 0 when the frame is not a complete Python frame
 * (a C-stack or interpreter entry frame, or an executable that is not of code_type). */
uintptr_t ftsan_pylayout_frame_code(const ftsan_pylayout *l, const char *frame, uintptr_t code_type);

/* The byte offset of the frame's current instruction in its code's bytecode, or -1. In
 * 3.14 free-threaded builds the frame may run a thread-local copy of the bytecode
 * (co_tlbc->entries[tlbc_index]); the offset is the same in every copy. */
int ftsan_pylayout_frame_offset(const ftsan_pylayout *l, const char *frame, uintptr_t code);

/* Walks the frame chain from frame outwards (at most 256 frames): the code objects of the
 * Python frames and their instruction offsets, innermost first. Returns how many. */
int ftsan_pylayout_walk(const ftsan_pylayout *l, const char *frame, uintptr_t code_type, uintptr_t *codes,
                        int *offsets, int max);

/* The next frame out. */
static inline const char *ftsan_pylayout_previous(const ftsan_pylayout *l, const char *frame) {
  return *(const char *const *)(frame + l->if_previous);
}

#endif
