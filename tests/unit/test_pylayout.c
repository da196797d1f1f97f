/* test_pylayout.c: the debug-offset layouts of 3.13 and 3.14 and the frame walk, on hand-made
 * _Py_DebugOffsets blobs and frames. The blobs are declared here as C structs that mirror the
 * interpreters' own struct _Py_DebugOffsets field by field (up to the PyObject group), so the
 * positions come from the compiler, not from the table under test. */
#include "check.h"
#include "rt_pylayout.h"

#define U64 uint64_t
struct head { char cookie[8]; U64 version, free_threaded; };
struct runtime_state { U64 size, finalizing, interpreters_head; };
struct thread_state { U64 size, prev, next, interp, current_frame, thread_id, native_thread_id, datastack_chunk, status; };

typedef struct { /* Include/internal/pycore_runtime.h of 3.13 */
  struct head h;
  struct runtime_state rs;
  struct { U64 size, id, next, threads_head, gc, imports_modules, sysdict, builtins, ceval_gil,
           gil_runtime_state, gil_runtime_state_enabled, gil_runtime_state_locked, gil_runtime_state_holder; } is;
  struct thread_state ts;
  struct { U64 size, previous, executable, instr_ptr, localsplus, owner; } fr;
  struct { U64 size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames,
           localspluskinds, co_code_adaptive; } co;
  struct { U64 size, ob_type; } ob;
} offsets313;

typedef struct { /* Include/internal/pycore_debug_offsets.h of 3.14 */
  struct head h;
  struct runtime_state rs;
  struct { U64 size, id, next, threads_head, threads_main, gc, imports_modules, sysdict, builtins, ceval_gil,
           gil_runtime_state, gil_runtime_state_enabled, gil_runtime_state_locked, gil_runtime_state_holder,
           code_object_generation, tlbc_generation; } is;
  struct thread_state ts;
  struct { U64 size, previous, executable, instr_ptr, localsplus, owner, stackpointer, tlbc_index; } fr;
  struct { U64 size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames,
           localspluskinds, co_code_adaptive, co_tlbc; } co;
  struct { U64 size, ob_type; } ob;
} offsets314;

/* The made-up layout of the objects below (any values would do, as long as the walk reads
 * them through the blob). */
enum { F_EXEC = 0, F_PREV = 8, F_INSTR = 56, F_TLBC = 64, F_OWNER = 70, F_LOCALS = 80, F_SIZE = 96 };
enum { C_TYPE = 24, C_FILE = 96, C_QUAL = 112, C_TLBC = 184, C_CODE = 200, C_SIZE = 512 };

static char code_type[64], none_type[64];
static char code1[C_SIZE] __attribute__((aligned(16))), code2[C_SIZE] __attribute__((aligned(16)));
static char none_obj[64] __attribute__((aligned(16)));
static char frames[6][F_SIZE] __attribute__((aligned(16)));
static char copy1[64], copy2[64];
static struct { int64_t size; char *entries[3]; } tlbc1;

static void put(char *base, int off, uintptr_t v) { memcpy(base + off, &v, sizeof v); }

static void fill_common(struct head *h, struct runtime_state *rs, struct thread_state *ts, uint32_t version) {
  memcpy(h->cookie, "xdebugpy", 8);
  h->version = version;
  h->free_threaded = 1;
  rs->interpreters_head = 48;
  ts->current_frame = 72;
}

static void make_objects(void) {
  memset(frames, 0, sizeof frames);
  put(code1, C_TYPE, (uintptr_t)code_type);
  put(code2, C_TYPE, (uintptr_t)code_type);
  put(none_obj, C_TYPE, (uintptr_t)none_type);
  tlbc1.size = 3;
  tlbc1.entries[0] = code1 + C_CODE;
  tlbc1.entries[1] = copy1;
  tlbc1.entries[2] = copy2;
  put(code1, C_TLBC, (uintptr_t)&tlbc1);
  put(code2, C_TLBC, 0);
  for (int i = 0; i < 5; i++) put(frames[i], F_PREV, (uintptr_t)frames[i + 1]);
  put(frames[5], F_PREV, 0);
}

TEST(unknown_versions_and_bad_cookies_are_refused) {
  offsets314 o = {0};
  ftsan_pylayout l;
  CHECK_EQ(ftsan_pylayout_read((const char *)&o, &l), -1);
  fill_common(&o.h, &o.rs, &o.ts, 0x030c05f0);
  CHECK_EQ(ftsan_pylayout_read((const char *)&o, &l), -1);
  CHECK_EQ(l.version, 0x030c05f0);
  o.h.version = 0x030f00a1;
  CHECK_EQ(ftsan_pylayout_read((const char *)&o, &l), -1);
  CHECK_EQ(ftsan_pylayout_read(NULL, &l), -1);
}

TEST(layout_313) {
  offsets313 o = {0};
  fill_common(&o.h, &o.rs, &o.ts, 0x030d05f0);
  o.is.gil_runtime_state = 1234;
  o.fr.previous = F_PREV, o.fr.executable = F_EXEC, o.fr.instr_ptr = F_INSTR, o.fr.localsplus = F_LOCALS,
  o.fr.owner = F_OWNER;
  o.co.filename = C_FILE, o.co.qualname = C_QUAL, o.co.co_code_adaptive = C_CODE;
  o.ob.ob_type = C_TYPE;
  ftsan_pylayout l;
  CHECK_EQ(ftsan_pylayout_read((const char *)&o, &l), 0);
  CHECK_EQ(l.gil_state, 1234);
  CHECK_EQ(l.ts_current_frame, 72);
  CHECK_EQ(l.co_qualname, C_QUAL);
  CHECK_EQ(l.co_tlbc, 0);

  make_objects();
  /* 0: a C-stack entry frame (owner 3 in 3.13) */
  frames[0][F_OWNER] = 3;
  put(frames[0], F_EXEC, (uintptr_t)code2);
  /* 1: code1 at instruction byte 10 */
  put(frames[1], F_EXEC, (uintptr_t)code1);
  put(frames[1], F_INSTR, (uintptr_t)(code1 + C_CODE + 10));
  /* 2: an executable that is not a code object */
  put(frames[2], F_EXEC, (uintptr_t)none_obj);
  /* 3: code2 at byte 6 */
  put(frames[3], F_EXEC, (uintptr_t)code2);
  put(frames[3], F_INSTR, (uintptr_t)(code2 + C_CODE + 6));
  /* 4, 5: owned by a generator (1) and a frame object (2): still Python frames */
  frames[4][F_OWNER] = 1;
  put(frames[4], F_EXEC, (uintptr_t)code2);
  put(frames[4], F_INSTR, (uintptr_t)(code2 + C_CODE + 2));
  frames[5][F_OWNER] = 2;
  put(frames[5], F_EXEC, (uintptr_t)code1);
  put(frames[5], F_INSTR, (uintptr_t)(code1 + C_CODE));
  uintptr_t codes[8];
  int offs[8];
  CHECK_EQ(ftsan_pylayout_walk(&l, frames[0], (uintptr_t)code_type, codes, offs, 8), 4);
  CHECK_EQ(codes[0], (uintptr_t)code1);
  CHECK_EQ(offs[0], 10);
  CHECK_EQ(codes[1], (uintptr_t)code2);
  CHECK_EQ(offs[1], 6);
  CHECK_EQ(offs[2], 2);
  CHECK_EQ(codes[3], (uintptr_t)code1);
  CHECK_EQ(offs[3], 0);
  /* max is honoured */
  CHECK_EQ(ftsan_pylayout_walk(&l, frames[0], (uintptr_t)code_type, codes, offs, 1), 1);
}

TEST(layout_314_stackrefs_interpreter_frames_and_thread_local_bytecode) {
  offsets314 o = {0};
  fill_common(&o.h, &o.rs, &o.ts, 0x030e00f0);
  o.is.gil_runtime_state = 1234;
  o.is.gil_runtime_state_enabled = 1240;
  o.fr.previous = F_PREV, o.fr.executable = F_EXEC, o.fr.instr_ptr = F_INSTR, o.fr.localsplus = F_LOCALS,
  o.fr.owner = F_OWNER, o.fr.stackpointer = 88, o.fr.tlbc_index = F_TLBC;
  o.co.filename = C_FILE, o.co.qualname = C_QUAL, o.co.co_code_adaptive = C_CODE, o.co.co_tlbc = C_TLBC;
  o.ob.ob_type = C_TYPE;
  ftsan_pylayout l;
  CHECK_EQ(ftsan_pylayout_read((const char *)&o, &l), 0);
  CHECK_EQ(l.gil_state, 1234);
  CHECK_EQ(l.gil_enabled, 1240);
  CHECK_EQ(l.ts_current_frame, 72);
  CHECK_EQ(l.if_tlbc_index, F_TLBC);
  CHECK_EQ(l.co_tlbc, C_TLBC);
  CHECK_EQ(l.co_filename, C_FILE);

  make_objects();
  /* 0: the C-stack entry frame (owner 4 in 3.14) */
  frames[0][F_OWNER] = 4;
  put(frames[0], F_EXEC, (uintptr_t)code2);
  /* 1: code1 through a deferred (tagged) reference, running thread-local copy 2 at byte 10 */
  put(frames[1], F_EXEC, (uintptr_t)code1 | 1);
  int32_t idx = 2;
  memcpy(frames[1] + F_TLBC, &idx, 4);
  put(frames[1], F_INSTR, (uintptr_t)(copy2 + 10));
  /* 2: the interpreter's own entry frame (owner 3) */
  frames[2][F_OWNER] = 3;
  put(frames[2], F_EXEC, (uintptr_t)code1);
  /* 3: code2 on the main copy (index 0) at byte 6 */
  put(frames[3], F_EXEC, (uintptr_t)code2);
  put(frames[3], F_INSTR, (uintptr_t)(code2 + C_CODE + 6));
  /* 4: an index past the array: the main copy is used */
  put(frames[4], F_EXEC, (uintptr_t)code1);
  idx = 7;
  memcpy(frames[4] + F_TLBC, &idx, 4);
  put(frames[4], F_INSTR, (uintptr_t)(code1 + C_CODE + 4));
  /* 5: not a code object */
  put(frames[5], F_EXEC, (uintptr_t)none_obj | 1);
  uintptr_t codes[8];
  int offs[8];
  CHECK_EQ(ftsan_pylayout_walk(&l, frames[0], (uintptr_t)code_type, codes, offs, 8), 3);
  CHECK_EQ(codes[0], (uintptr_t)code1);
  CHECK_EQ(offs[0], 10);
  CHECK_EQ(codes[1], (uintptr_t)code2);
  CHECK_EQ(offs[1], 6);
  CHECK_EQ(codes[2], (uintptr_t)code1);
  CHECK_EQ(offs[2], 4);
  CHECK_EQ(ftsan_pylayout_frame_code(&l, frames[2], (uintptr_t)code_type), 0);
}

int main(void) {
  RUN(unknown_versions_and_bad_cookies_are_refused);
  RUN(layout_313);
  RUN(layout_314_stackrefs_interpreter_frames_and_thread_local_bytecode);
  return CHECK_DONE();
}
