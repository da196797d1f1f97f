/* bench_ext.c: the extension of the overhead benchmark (tests/bench/run.sh). Every workload
 * is correctly synchronized, so neither ftsan nor ThreadSanitizer should report anything:
 *   private_work  heavy loads/stores on a buffer each call mallocs for itself;
 *   locked_update short critical sections on a shared table under one PyMutex;
 *   pysync_step   a shared C accumulator guarded only by the caller's threading.Lock;
 *   pysync_fill   writes into a bytearray handed between threads through queue.Queue;
 *   refcount_spin Py_NewRef/Py_DECREF on a shared module-level tuple and its items. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- (a) private: a private 64 KiB buffer, a few passes of prefix sum and stencil ---- */

#define PRIV_WORDS (64 * 1024 / sizeof(uint32_t))

/* private_work(passes: int) -> int: mallocs a 64 KiB buffer, runs `passes` rounds of a
 * prefix sum and a 3-point stencil over it, frees it and returns a checksum. */
static PyObject *private_work(PyObject *module, PyObject *arg) {
  (void)module;
  long passes = PyLong_AsLong(arg);
  if (passes == -1 && PyErr_Occurred()) return NULL;
  uint32_t *buf = malloc(PRIV_WORDS * sizeof *buf);
  uint32_t *tmp = malloc(PRIV_WORDS * sizeof *tmp);
  if (!buf || !tmp) {
    free(buf);
    free(tmp);
    return PyErr_NoMemory();
  }
  for (size_t i = 0; i < PRIV_WORDS; i++) buf[i] = (uint32_t)(i * 2654435761u);
  for (long p = 0; p < passes; p++) {
    uint32_t run = 0;
    for (size_t i = 0; i < PRIV_WORDS; i++) { /* prefix sum, in place */
      run += buf[i];
      buf[i] = run;
    }
    tmp[0] = buf[0];
    tmp[PRIV_WORDS - 1] = buf[PRIV_WORDS - 1];
    for (size_t i = 1; i + 1 < PRIV_WORDS; i++) /* stencil into tmp, then back */
      tmp[i] = (buf[i - 1] >> 1) + buf[i] + (buf[i + 1] >> 2);
    for (size_t i = 0; i < PRIV_WORDS; i++) buf[i] = tmp[i] ^ (uint32_t)p;
  }
  uint32_t sum = 0;
  for (size_t i = 0; i < PRIV_WORDS; i += 97) sum ^= buf[i];
  free(tmp);
  free(buf);
  return PyLong_FromUnsignedLong(sum);
}

/* ---- (b) locked: a shared table under one PyMutex, short critical sections ---- */

#define TABLE_SLOTS 256

static PyMutex table_lock;
static uint64_t table[TABLE_SLOTS]; /* guarded by table_lock */
static uint64_t table_updates;      /* guarded by table_lock */

/* locked_update(n: int, seed: int) -> None: n times, takes the lock, updates two slots and
 * the update count, releases the lock. */
static PyObject *locked_update(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  (void)module;
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "locked_update(n, seed)");
    return NULL;
  }
  long n = PyLong_AsLong(args[0]);
  long seed = PyLong_AsLong(args[1]);
  if (PyErr_Occurred()) return NULL;
  uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
  for (long i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    unsigned a = (unsigned)(x % TABLE_SLOTS), b = (unsigned)((x >> 20) % TABLE_SLOTS);
    PyMutex_Lock(&table_lock);
    table[a] += 1;
    table[b] ^= table[a] + x;
    table_updates++;
    PyMutex_Unlock(&table_lock);
  }
  Py_RETURN_NONE;
}

/* table_updates() -> int: how many updates locked_update made. */
static PyObject *get_table_updates(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  PyMutex_Lock(&table_lock);
  uint64_t n = table_updates;
  PyMutex_Unlock(&table_lock);
  return PyLong_FromUnsignedLongLong(n);
}

/* ---- (c) pysync: state guarded by Python-level synchronization only ---- */

#define ACC_SLOTS 64

static uint64_t acc[ACC_SLOTS]; /* guarded by the caller's threading.Lock */
static uint64_t acc_steps;      /* guarded by the caller's threading.Lock */

/* pysync_step(k: int) -> int: a little C work on the shared accumulator. The caller holds a
 * threading.Lock; the C code takes no lock of its own. */
static PyObject *pysync_step(PyObject *module, PyObject *arg) {
  (void)module;
  long k = PyLong_AsLong(arg);
  if (k == -1 && PyErr_Occurred()) return NULL;
  uint64_t h = (uint64_t)k;
  for (int i = 0; i < 16; i++) {
    h = h * 6364136223846793005ull + 1442695040888963407ull;
    acc[(h >> 58) % ACC_SLOTS] += h >> 32;
  }
  acc_steps++;
  return PyLong_FromUnsignedLongLong(acc_steps);
}

/* pysync_fill(buf: bytearray, k: int) -> None: reads and rewrites every byte of a buffer
 * that the caller owns for now (it came out of a queue.Queue and goes back into it). */
static PyObject *pysync_fill(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  (void)module;
  if (nargs != 2 || !PyByteArray_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "pysync_fill(bytearray, k)");
    return NULL;
  }
  long k = PyLong_AsLong(args[1]);
  if (k == -1 && PyErr_Occurred()) return NULL;
  unsigned char *p = (unsigned char *)PyByteArray_AS_STRING(args[0]);
  Py_ssize_t n = PyByteArray_GET_SIZE(args[0]);
  unsigned char c = (unsigned char)k;
  for (Py_ssize_t i = 0; i < n; i++) {
    c = (unsigned char)(c * 31 + p[i]);
    p[i] = c;
  }
  Py_RETURN_NONE;
}

/* pysync_total() -> int: steps made by pysync_step (call with no other thread running). */
static PyObject *pysync_total(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  return PyLong_FromUnsignedLongLong(acc_steps);
}

/* ---- (d) refcount: references to a shared module-level object ---- */

#define SHARED_ITEMS 16

static PyObject *shared_tuple; /* set once at module exec, before any thread runs */

/* refcount_spin(n: int) -> int: n times, takes a new reference to the shared tuple and to
 * one of its items, and drops both. */
static PyObject *refcount_spin(PyObject *module, PyObject *arg) {
  (void)module;
  long n = PyLong_AsLong(arg);
  if (n == -1 && PyErr_Occurred()) return NULL;
  PyObject *t = shared_tuple;
  long hits = 0;
  for (long i = 0; i < n; i++) {
    PyObject *o = Py_NewRef(t);
    PyObject *item = Py_NewRef(PyTuple_GET_ITEM(o, i % SHARED_ITEMS));
    hits += Py_TYPE(item) == &PyLong_Type;
    Py_DECREF(item);
    Py_DECREF(o);
  }
  return PyLong_FromLong(hits);
}

static int bench_exec(PyObject *module) {
  if (shared_tuple == NULL) {
    PyObject *t = PyTuple_New(SHARED_ITEMS);
    if (!t) return -1;
    for (Py_ssize_t i = 0; i < SHARED_ITEMS; i++) {
      PyObject *v = PyLong_FromLong(1000003 + (long)i); /* not a small, immortal int */
      if (!v) {
        Py_DECREF(t);
        return -1;
      }
      PyTuple_SET_ITEM(t, i, v);
    }
    shared_tuple = t;
  }
  return PyModule_AddObjectRef(module, "shared", shared_tuple);
}

static PyMethodDef methods[] = {
    {"private_work", private_work, METH_O, "private 64 KiB buffer: prefix sums and stencils"},
    {"locked_update", (PyCFunction)(void (*)(void))locked_update, METH_FASTCALL,
     "updates of a shared table under a PyMutex"},
    {"table_updates", get_table_updates, METH_NOARGS, "updates made by locked_update"},
    {"pysync_step", pysync_step, METH_O, "C work on state guarded by the caller's lock"},
    {"pysync_fill", (PyCFunction)(void (*)(void))pysync_fill, METH_FASTCALL,
     "rewrites a bytearray the caller owns"},
    {"pysync_total", pysync_total, METH_NOARGS, "steps made by pysync_step"},
    {"refcount_spin", refcount_spin, METH_O, "new/drop references to a shared tuple"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, bench_exec},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "bench_ext", "workloads of the ftsan overhead benchmark", 0,
    methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_bench_ext(void) { return PyModuleDef_Init(&module_def); }
