/* basic_ext.c: a correctly synchronized extension for the foundation tests: its functions
 * read and write memory (a caller's buffer, a PyMutex-protected counter, a critical section
 * on an object) so that the tests can see the instrumented events arrive. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyMutex calls_lock;
static long calls; /* guarded by calls_lock */

/* checksum(data: bytes) -> int: a rolling checksum over the bytes. */
static PyObject *checksum(PyObject *module, PyObject *arg) {
  char *data;
  Py_ssize_t n;
  if (PyBytes_AsStringAndSize(arg, &data, &n) < 0) return NULL;
  unsigned long sum = 0;
  for (Py_ssize_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)data[i];
  PyMutex_Lock(&calls_lock);
  calls++;
  PyMutex_Unlock(&calls_lock);
  return PyLong_FromUnsignedLong(sum);
}

/* calls() -> int: how many times checksum ran. */
static PyObject *get_calls(PyObject *module, PyObject *unused) {
  PyMutex_Lock(&calls_lock);
  long n = calls;
  PyMutex_Unlock(&calls_lock);
  return PyLong_FromLong(n);
}

/* append_locked(lst, item) -> None: appends under the list's critical section. */
static PyObject *append_locked(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyList_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "append_locked(list, item)");
    return NULL;
  }
  int rc;
  Py_BEGIN_CRITICAL_SECTION(args[0]);
  rc = PyList_Append(args[0], args[1]);
  Py_END_CRITICAL_SECTION();
  if (rc < 0) return NULL;
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"checksum", checksum, METH_O, "rolling checksum of bytes"},
    {"calls", get_calls, METH_NOARGS, "number of checksum calls"},
    {"append_locked", (PyCFunction)(void (*)(void))append_locked, METH_FASTCALL, "append under a critical section"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "basic_ext", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_basic_ext(void) { return PyModuleDef_Init(&module_def); }
