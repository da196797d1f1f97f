/* hitcounter.c: the bundled demo extension: a page-hit counter written the way GIL-era
 * extensions often are, a static table updated without a lock. Under free-threaded python
 * two threads counting hits race on the table. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define SLOTS 64

static long hits[SLOTS];
static long total;

/* hit(page: int) -> None: counts one hit of a page. */
static PyObject *hit(PyObject *module, PyObject *arg) {
  long page = PyLong_AsLong(arg);
  if (page == -1 && PyErr_Occurred()) return NULL;
  hits[page % SLOTS] += 1;
  total += 1;
  Py_RETURN_NONE;
}

/* total() -> int: hits counted so far. */
static PyObject *get_total(PyObject *module, PyObject *unused) {
  return PyLong_FromLong(total);
}

static PyMethodDef methods[] = {
    {"hit", hit, METH_O, "count one hit of a page"},
    {"total", get_total, METH_NOARGS, "hits counted so far"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "hitcounter", "a racy page-hit counter (ftsan demo)", 0,
    methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_hitcounter(void) { return PyModuleDef_Init(&module_def); }
