/* rt_report.c: the slow path of a race: deduplication, the two stacks (the current one
 * unwound, the previous one rebuilt from its thread's history), what the memory is, and the
 * RACE record in the trace. */
#define _GNU_SOURCE 1
#include "rt_borrow.h"
#include "rt_heap.h"
#include "rt_race.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define MAX_STACK 64
#define MAX_PY 32
#define SEEN_SIZE (1u << 16)

static uint64_t seen_pairs[SEEN_SIZE];  /* lock-free set of reported (pc, pc) pairs */
static uint64_t seen_sites[SEEN_SIZE];  /* lock-free set of (pc, granule) already handled */
static uint32_t nfindings;              /* atomic */

static uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x7F4A7C159E3779B9ull + (a << 6) + (a >> 2));
  h ^= h >> 31;
  return h ? h : 1;
}

/* Inserts key; returns 1 if it was new. The set saturates (returns 0) when full. */
static int set_insert(uint64_t *set, uint64_t key) {
  for (uint32_t i = 0; i < 64; i++) {
    uint64_t *slot = &set[(key + i) & (SEEN_SIZE - 1)];
    uint64_t v = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (v == key) return 0;
    if (v == 0 && __atomic_compare_exchange_n(slot, &v, key, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
      return 1;
    if (v == key) return 0;
  }
  return 0;
}

/* A RACE record's view of an access, from its shadow cell. */
static struct ftsan_race_access access_of(uint32_t tid, uint64_t cell, int full, uint32_t nstack) {
  return (struct ftsan_race_access){tid, (uint8_t)(1u << CELL_LOG(cell)), (uint8_t)CELL_WRITE(cell),
                                    (uint8_t)CELL_ATOMIC(cell), (uint8_t)full, nstack,
                                    CELL_GILSTATE(cell) ? FTSAN_ACC_GILSTATE : 0, CELL_EPOCH(cell)};
}

uint32_t ftsan__findings(void) { return __atomic_load_n(&nfindings, __ATOMIC_RELAXED); }

/* Reads memory that may not be mapped: process_vm_readv fails instead of faulting. */
int ftsan__safe_read(void *dst, uintptr_t src, size_t n) {
  struct iovec local = {dst, n}, remote = {(void *)src, n};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}
#define safe_read ftsan__safe_read

/* The type of the object whose header would be at c, or 0 when c does not look like one:
 * ob_type (at +24) must be a ready type object, i.e. its own type is `type` or a metaclass
 * (a type whose flags say it subclasses type). (Testing the metatype's type instead would
 * accept every ordinary object: any pointer to an object stored at c + 24 would do.) */
uint64_t ftsan__pyobject_type(uintptr_t c) {
  static uintptr_t type_type;
  if (!type_type) type_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyType_Type");
  uintptr_t tp, meta;
  uint64_t tp_flags, meta_flags;
  if (!type_type || c < 4096) return 0;
  if (safe_read(&tp, c + 24, 8) || tp < 4096 || (tp & 7)) return 0;
  if (safe_read(&meta, tp + 24, 8) || meta < 4096 || (meta & 7)) return 0;
  if (meta != type_type && (safe_read(&meta_flags, meta + FTSAN_PY_TP_FLAGS, 8) ||
                            !(meta_flags & FTSAN_PY_TPFLAGS_TYPE_SUBCLASS)))
    return 0;
  if (safe_read(&tp_flags, tp + FTSAN_PY_TP_FLAGS, 8) || !(tp_flags & FTSAN_PY_TPFLAGS_READY)) return 0;
  return tp;
}

/* Looks for the PyObject that contains addr: walks back from addr for a header (see
 * ftsan__pyobject_type) whose size covers addr. PyVarObject: ob_size at +32. */
static int find_pyobject(uintptr_t addr, uintptr_t *obj, uint64_t *size, char *name, size_t n) {
  for (uintptr_t c = addr & ~(uintptr_t)7; c + 4096 > addr && c > 4096; c -= 8) {
    uintptr_t tp = (uintptr_t)ftsan__pyobject_type(c);
    if (!tp) continue;
    int64_t basic, item, obsize = 0;
    if (safe_read(&basic, tp + FTSAN_PY_TP_BASICSIZE, 8) || safe_read(&item, tp + FTSAN_PY_TP_ITEMSIZE, 8)) continue;
    if (basic < 32 || basic > (1 << 20) || item < 0 || item > (1 << 16)) continue;
    if (item > 0 && (safe_read(&obsize, c + 32, 8) || obsize < 0 || obsize > (1 << 28))) continue;
    uint64_t extent = (uint64_t)basic + (uint64_t)item * (uint64_t)obsize;
    if (addr >= c + extent) return 0; /* the nearest header does not cover addr */
    uintptr_t tp_name;
    name[0] = 0;
    if (safe_read(&tp_name, tp + FTSAN_PY_TP_NAME, 8) == 0 && tp_name) {
      size_t k = 0;
      for (; k + 1 < n; k++)
        if (safe_read(&name[k], tp_name + k, 1) || name[k] == 0) break;
      name[k] = 0;
    }
    *obj = c;
    *size = (uint64_t)basic;
    return 1;
  }
  return 0;
}

static int current_stack(uint64_t pc, uint64_t *out, int max, ftsan_thread *t) {
  void *pcs[MAX_STACK + 16];
  int n = unw_backtrace(pcs, MAX_STACK + 16);
  int start = -1;
  for (int i = 0; i < n; i++)
    if ((uint64_t)(uintptr_t)pcs[i] == pc) {
      start = i;
      break;
    }
  if (start >= 0) {
    int k = 0;
    for (int i = start; i < n && k < max; i++) out[k++] = (uint64_t)(uintptr_t)pcs[i];
    return k;
  }
  /* Unwinding failed to pass through the instrumented frame: use the shadow stack. */
  int k = 0;
  out[k++] = pc;
  uint32_t top = t->depth < FTSAN_SHADOW_STACK ? t->depth : FTSAN_SHADOW_STACK;
  for (uint32_t i = top; i > 0 && k < max; i--) out[k++] = t->stack[i - 1];
  return -k;
}

/* extra (CS_INTERRUPTED): where the critical section was suspended, stored in the record's
 * allocation-stack fields (unused for a Python object). */
static void report_pair(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t old, uint64_t pc,
                        uint32_t kind, const uint64_t *extra, uint32_t nextra) {
  if (!set_insert(seen_sites, mix(pc, (addr & ~(uintptr_t)7) ^ ((uint64_t)CELL_TID(old) << 48) ^ kind)))
    return;
  t->ignore++;
  uint32_t otid = CELL_TID(old);
  ftsan_thread *ot = otid < FTSAN_MAX_THREADS ? __atomic_load_n(&ftsan__threads[otid], __ATOMIC_ACQUIRE) : NULL;
  uint64_t prev_stack[MAX_STACK];
  uint64_t prev_pyev = 0;
  int nprev = ftsan__history_restore(ot, CELL_EPOCH(old), prev_stack, MAX_STACK, &prev_pyev);
  if (!set_insert(seen_pairs, mix(pc, (nprev ? prev_stack[0] : 0) ^ kind))) {
    t->ignore--;
    return;
  }
  uint64_t cur_stack[MAX_STACK];
  int ncur = current_stack(pc, cur_stack, MAX_STACK, t);
  int full = ncur > 0;
  if (ncur < 0) ncur = -ncur;

  char type_name[128] = "";
  uintptr_t obj = 0;
  uint64_t obj_size = 0;
  uint32_t mem_kind = FTSAN_MEM_UNKNOWN;
  ftsan_heap_block blk;
  uint32_t nalloc = 0;
  if (ftsan__heap_find(addr, &blk)) {
    mem_kind = FTSAN_MEM_HEAP;
    obj = blk.addr;
    obj_size = blk.size;
    nalloc = blk.nstack;
  } else if (find_pyobject(addr, &obj, &obj_size, type_name, sizeof type_name)) {
    mem_kind = FTSAN_MEM_PYOBJECT;
  }
  const uint64_t *alloc_stack = blk.stack;
  uint32_t alloc_tid = mem_kind == FTSAN_MEM_HEAP ? blk.tid : 0;
  if (kind == FTSAN_FINDING_CS_INTERRUPTED) {
    /* The allocation-stack fields carry the suspension: a container in a malloc'd block
     * (PYTHONMALLOC=malloc) is described without its allocation. */
    if (mem_kind == FTSAN_MEM_HEAP) mem_kind = FTSAN_MEM_UNKNOWN, obj = 0, obj_size = 0;
    nalloc = 0;
  }
  if (mem_kind != FTSAN_MEM_HEAP && nextra) {
    alloc_stack = extra;
    nalloc = nextra < FTSAN_SUSPEND_STACK ? nextra : FTSAN_SUSPEND_STACK;
    alloc_tid = t->tid;
  }

  /* Python frames: the current thread's are walked now; the previous access has the frame
   * that called into C, if its code object is still alive. */
  uint64_t cur_py[MAX_PY], prev_py[1];
  uint32_t ncur_py = ftsan__python_stack_ids(cur_py, MAX_PY), nprev_py = 0;
  {
    uintptr_t pcode = (uintptr_t)(prev_pyev & FTSAN_EV_PC_MASK);
    if (prev_pyev && ftsan__python_is_code(pcode)) {
      uint64_t id = ftsan__pysite(pcode, (int)((prev_pyev >> 48) & 0x3fff));
      if (id) prev_py[nprev_py++] = id;
    }
  }

  size_t name_len = type_name[0] ? strlen(type_name) + 1 : 0;
  uint32_t size = (uint32_t)((sizeof(struct ftsan_rec_race) + 8u * (ncur + nprev + nalloc + ncur_py + nprev_py) +
                              name_len + 7) & ~7u);
  char buf[sizeof(struct ftsan_rec_race) + 8 * (2 * MAX_STACK + FTSAN_SUSPEND_STACK + MAX_PY + 1) + 128 + 8];
  memset(buf, 0, size);
  struct ftsan_rec_race *r = (struct ftsan_rec_race *)buf;
  r->h.kind = FTSAN_REC_RACE;
  r->h.size = size;
  r->kind = kind;
  r->mem_kind = mem_kind;
  r->addr = addr;
  r->cur = access_of(t->tid, cur, full, (uint32_t)ncur);
  r->prev = access_of(otid, old, 0, (uint32_t)nprev);
  r->object_addr = obj;
  r->object_size = obj_size;
  r->type_name_len = (uint32_t)name_len;
  r->alloc_tid = alloc_tid;
  r->alloc_stack_len = nalloc;
  memcpy(buf + sizeof *r, cur_stack, 8u * ncur);
  memcpy(buf + sizeof *r + 8u * ncur, prev_stack, 8u * nprev);
  if (nalloc) memcpy(buf + sizeof *r + 8u * (ncur + nprev), alloc_stack, 8u * nalloc);
  r->cur_py_len = ncur_py;
  r->prev_py_len = nprev_py;
  memcpy(buf + sizeof *r + 8u * (ncur + nprev + nalloc), cur_py, 8u * ncur_py);
  memcpy(buf + sizeof *r + 8u * (ncur + nprev + nalloc + ncur_py), prev_py, 8u * nprev_py);
  memcpy(buf + sizeof *r + 8u * (ncur + nprev + nalloc + ncur_py + nprev_py), type_name, name_len);
  ftsan__trace_write(buf, size);
  uint32_t nth = __atomic_add_fetch(&nfindings, 1, __ATOMIC_RELAXED);
  if (ftsan__opt.report_to_stderr && nth == 11)
    ftsan__log("ftsan: further races are only written to the trace (details: ftsan report)");
  if (ftsan__opt.report_to_stderr && nth <= 10 && kind == FTSAN_FINDING_DATA_RACE)
    ftsan__log("ftsan: data race #%u: %s of size %u at %p by thread T%u races with %s by T%u "
               "(details: ftsan report)", nth, CELL_WRITE(cur) ? "write" : "read",
               1u << CELL_LOG(cur), (void *)addr, t->tid, CELL_WRITE(old) ? "a write" : "a read",
               otid);
  if (ftsan__opt.report_to_stderr && nth <= 10 && kind == FTSAN_FINDING_CS_INTERRUPTED)
    ftsan__log("ftsan: critical section interrupted #%u: thread T%u reads at %p what T%u changed "
               "while T%u's critical section on it was suspended (details: ftsan report)", nth,
               t->tid, (void *)addr, otid, t->tid);
  if (ftsan__opt.halt_on_error) ftsan__halt(ftsan__opt.exitcode);
  t->ignore--;
}

FTSAN_NOINLINE __attribute__((cold)) void ftsan__report_race(ftsan_thread *t, uintptr_t addr,
                                                             uint64_t cur, uint64_t old,
                                                             uint64_t pc) {
  report_pair(t, addr, cur, old, pc, FTSAN_FINDING_DATA_RACE, NULL, 0);
}

FTSAN_NOINLINE __attribute__((cold)) void ftsan__report_cs_interrupted(ftsan_thread *t, uintptr_t addr,
                                                                       uint64_t cur, uint64_t old,
                                                                       uint64_t pc, const uint64_t *susp,
                                                                       uint32_t nsusp) {
  report_pair(t, addr, cur, old, pc, FTSAN_FINDING_CS_INTERRUPTED, susp, nsusp);
}

/* ---- the GIL enabled by an import ---------------------------------------------------------
 * Called from the patch on _PyImport_CheckGILForModule, in the importing thread, attached:
 * the C API may be used to read the module's name and file. */
void ftsan__report_gil_enabled(void *module, void *name) {
  static const char *(*utf8)(void *);
  static void *(*get_filename)(void *);
  static void (*decref)(void *);
  if (!utf8) {
    *(void **)&utf8 = dlsym(RTLD_DEFAULT, "PyUnicode_AsUTF8");
    *(void **)&get_filename = dlsym(RTLD_DEFAULT, "PyModule_GetFilenameObject");
    *(void **)&decref = dlsym(RTLD_DEFAULT, "Py_DecRef");
  }
  if (!utf8 || !get_filename || !decref) return;
  ftsan_thread *t = ftsan__thread();
  t->ignore++;
  /* The import may be failing right now (warnings turned into errors): keep its exception. */
  void *exc = ftsan__python_err_save();
  char mod[256] = "?", file[512] = "";
  const char *s = name ? utf8(name) : NULL;
  if (s) snprintf(mod, sizeof mod, "%s", s);
  void *fobj = module ? get_filename(module) : NULL;
  if (fobj) {
    const char *f = utf8(fobj);
    if (f) snprintf(file, sizeof file, "%s", f);
    decref(fobj);
  }
  ftsan__python_err_restore(exc);
  uint64_t ids[MAX_PY];
  uint32_t nids = ftsan__python_stack_ids(ids, MAX_PY);
  size_t nl = strlen(mod) + 1, fl = strlen(file) + 1;
  char buf[sizeof(struct ftsan_rec_gil_enabled) + 8 * MAX_PY + 256 + 512 + 8];
  uint32_t size = (uint32_t)((sizeof(struct ftsan_rec_gil_enabled) + 8u * nids + nl + fl + 7) & ~7u);
  memset(buf, 0, size);
  struct ftsan_rec_gil_enabled *r = (struct ftsan_rec_gil_enabled *)buf;
  r->h.kind = FTSAN_REC_GIL_ENABLED;
  r->h.size = size;
  r->tid = t->tid;
  r->py_len = nids;
  r->name_len = (uint32_t)nl;
  r->file_len = (uint32_t)fl;
  memcpy(buf + sizeof *r, ids, 8u * nids);
  memcpy(buf + sizeof *r + 8u * nids, mod, nl);
  memcpy(buf + sizeof *r + 8u * nids + nl, file, fl);
  ftsan__trace_write(buf, size);
  __atomic_add_fetch(&nfindings, 1, __ATOMIC_RELAXED);
  ftsan__log("ftsan: importing module '%s' enabled the GIL (it does not declare Py_mod_gil = "
             "Py_MOD_GIL_NOT_USED): races may be hidden from now on (details: ftsan report)", mod);
  t->ignore--;
}

/* ---- use-after-free of a borrowed reference -------------------------------------------- */
void ftsan__report_use_after_free(ftsan_thread *t, uintptr_t addr, uint64_t cur, uint64_t pc,
                                  uintptr_t obj, size_t size, uint32_t free_tid,
                                  const uint64_t *free_stack, uint32_t nfree,
                                  const uint64_t *free_py, uint32_t nfree_py, uint64_t borrow_pc,
                                  uint32_t api, uint64_t borrow_pyev, const char *type_name) {
  (void)borrow_pyev;
  /* One report per (access site, borrowing site): a loop would otherwise report each object. */
  if (!set_insert(seen_pairs, mix(pc ^ 0x5541465541464146ull, borrow_pc))) return;
  t->ignore++;
  uint64_t cur_stack[MAX_STACK];
  int ncur = current_stack(pc, cur_stack, MAX_STACK, t);
  int full = ncur > 0;
  if (ncur < 0) ncur = -ncur;
  uint64_t cur_py[MAX_PY];
  uint32_t ncur_py = ftsan__python_stack_ids(cur_py, MAX_PY);
  if (nfree > MAX_STACK) nfree = MAX_STACK;
  if (nfree_py > MAX_PY) nfree_py = MAX_PY;
  size_t name_len = type_name && type_name[0] ? strlen(type_name) + 1 : 0;
  uint32_t size_rec = (uint32_t)((sizeof(struct ftsan_rec_race) + 8u * (ncur + nfree + 1 + ncur_py + nfree_py) +
                                  name_len + 7) & ~7u);
  char buf[sizeof(struct ftsan_rec_race) + 8 * (2 * MAX_STACK + 1 + 2 * MAX_PY) + 128 + 8];
  memset(buf, 0, size_rec);
  struct ftsan_rec_race *r = (struct ftsan_rec_race *)buf;
  r->h.kind = FTSAN_REC_RACE;
  r->h.size = size_rec;
  r->kind = FTSAN_FINDING_USE_AFTER_FREE;
  r->mem_kind = FTSAN_MEM_PYOBJECT;
  r->addr = addr;
  r->cur = access_of(t->tid, cur, full, (uint32_t)ncur);
  r->prev = (struct ftsan_race_access){free_tid, (uint8_t)size, 1, 0, 1, nfree, 0, 0};
  r->object_addr = obj;
  r->object_size = size;
  r->type_name_len = (uint32_t)name_len;
  r->alloc_tid = t->tid;
  r->alloc_stack_len = 1;
  r->cur_py_len = ncur_py;
  r->prev_py_len = nfree_py;
  r->borrow_api = api;
  char *p = buf + sizeof *r;
  memcpy(p, cur_stack, 8u * ncur), p += 8u * ncur;
  memcpy(p, free_stack, 8u * nfree), p += 8u * nfree;
  memcpy(p, &borrow_pc, 8), p += 8;
  memcpy(p, cur_py, 8u * ncur_py), p += 8u * ncur_py;
  memcpy(p, free_py, 8u * nfree_py), p += 8u * nfree_py;
  if (name_len) memcpy(p, type_name, name_len);
  ftsan__trace_write(buf, size_rec);
  uint32_t nth = __atomic_add_fetch(&nfindings, 1, __ATOMIC_RELAXED);
  if (ftsan__opt.report_to_stderr && nth <= 10)
    ftsan__log("ftsan: use-after-free #%u: thread T%u used a borrowed reference to an object "
               "that thread T%u freed (details: ftsan report)", nth, t->tid, free_tid);
  if (ftsan__opt.halt_on_error) ftsan__halt(ftsan__opt.exitcode);
  t->ignore--;
}
