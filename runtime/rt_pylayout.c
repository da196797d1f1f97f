/* rt_pylayout.c: where each offset sits in _Py_DebugOffsets, per minor version, and the frame
 * walk that uses them (see rt_pylayout.h). */
#include "rt_pylayout.h"

#include <string.h>

/* Positions (byte offsets inside _Py_DebugOffsets) of the fields ftsan reads. 3.14 added
 * interpreter_state.threads_main before gc and code_object_generation/tlbc_generation after
 * the GIL fields, interpreter_frame.stackpointer/tlbc_index and code_object.co_tlbc, which
 * shifts everything after them. Layouts checked against the headers of 3.13.5 (by running
 * it) and 3.14 (struct _Py_DebugOffsets as released; no 3.14 interpreter was at hand). */
typedef struct {
  uint16_t minor;
  uint16_t interpreters_head, gil_state, gil_enabled, ts_current_frame;
  uint16_t if_previous, if_executable, if_instr_ptr, if_localsplus, if_owner, if_tlbc_index;
  uint16_t co_filename, co_qualname, co_code_adaptive, co_tlbc, ob_type;
  uint8_t executable_tagged, incomplete_owner;
} positions;

static const positions known[] = {
    /* 3.13: FRAME_OWNED_BY_CSTACK = 3 is the only owner past the Python ones. */
    {13, 40, 120, 128, 184, 232, 240, 248, 256, 264, 0, 280, 296, 344, 0, 360, 0, 3},
    /* 3.14: FRAME_OWNED_BY_INTERPRETER = 3 and FRAME_OWNED_BY_CSTACK = 4. */
    {14, 40, 128, 136, 208, 256, 264, 272, 280, 288, 304, 320, 336, 384, 392, 408, 1, 3},
};

#define DO_VERSION 8
#define DO_FREE_THREADED 16

static uint64_t u64_at(const char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

int ftsan_pylayout_read(const char *rt, ftsan_pylayout *l) {
  memset(l, 0, sizeof *l);
  if (!rt || memcmp(rt, "xdebugpy", 8) != 0) return -1;
  l->version = (uint32_t)u64_at(rt + DO_VERSION);
  l->free_threaded = u64_at(rt + DO_FREE_THREADED) != 0;
  if ((l->version >> 24) != 3) return -1;
  const positions *p = NULL;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (known[i].minor == ((l->version >> 16) & 0xff)) p = &known[i];
  if (!p) return -1;
  l->interpreters_head = u64_at(rt + p->interpreters_head);
  l->gil_state = u64_at(rt + p->gil_state);
  l->gil_enabled = u64_at(rt + p->gil_enabled);
  l->ts_current_frame = u64_at(rt + p->ts_current_frame);
  l->if_previous = u64_at(rt + p->if_previous);
  l->if_executable = u64_at(rt + p->if_executable);
  l->if_instr_ptr = u64_at(rt + p->if_instr_ptr);
  l->if_localsplus = u64_at(rt + p->if_localsplus);
  l->if_owner = u64_at(rt + p->if_owner);
  l->if_tlbc_index = p->if_tlbc_index ? u64_at(rt + p->if_tlbc_index) : 0;
  l->co_filename = u64_at(rt + p->co_filename);
  l->co_qualname = u64_at(rt + p->co_qualname);
  l->co_code_adaptive = u64_at(rt + p->co_code_adaptive);
  l->co_tlbc = p->co_tlbc ? u64_at(rt + p->co_tlbc) : 0;
  l->ob_type = u64_at(rt + p->ob_type);
  l->executable_tagged = p->executable_tagged;
  l->incomplete_owner = p->incomplete_owner;
  /* A frame's previous pointer at offset 0 would make the walk loop on itself; executable
   * and instr_ptr can legitimately be 0 only when they are the first field. */
  if (!l->if_previous || !l->co_code_adaptive || !l->ob_type) return -1;
  return 0;
}

uintptr_t ftsan_pylayout_frame_code(const ftsan_pylayout *l, const char *frame, uintptr_t code_type) {
  if (*(const uint8_t *)(frame + l->if_owner) >= l->incomplete_owner) return 0;
  uintptr_t co = *(const uintptr_t *)(frame + l->if_executable);
  /* _PyStackRef: deferred references carry tag bits; objects are at least 8-aligned. */
  if (l->executable_tagged) co &= ~(uintptr_t)7;
  if (!co || *(const uintptr_t *)(co + l->ob_type) != code_type) return 0;
  return co;
}

int ftsan_pylayout_frame_offset(const ftsan_pylayout *l, const char *frame, uintptr_t code) {
  uintptr_t ip = *(const uintptr_t *)(frame + l->if_instr_ptr);
  uintptr_t base = code + l->co_code_adaptive;
  if (l->co_tlbc && l->if_tlbc_index) {
    const char *arr = *(const char *const *)(code + l->co_tlbc);
    int32_t idx;
    memcpy(&idx, frame + l->if_tlbc_index, sizeof idx);
    if (arr && idx > 0 && idx < *(const int64_t *)arr) {
      uintptr_t copy = *(const uintptr_t *)(arr + 8 + 8 * (uint64_t)idx);
      if (copy && ip >= copy) base = copy;
    }
  }
  if (ip < base || ip - base > (1u << 30)) return -1;
  return (int)(ip - base);
}

int ftsan_pylayout_walk(const ftsan_pylayout *l, const char *frame, uintptr_t code_type, uintptr_t *codes,
                        int *offsets, int max) {
  int n = 0;
  for (int depth = 0; frame && depth < 256 && n < max; depth++, frame = ftsan_pylayout_previous(l, frame)) {
    uintptr_t co = ftsan_pylayout_frame_code(l, frame, code_type);
    if (!co) continue;
    int off = ftsan_pylayout_frame_offset(l, frame, co);
    if (off < 0) break;
    codes[n] = co;
    offsets[n] = off;
    n++;
  }
  return n;
}
