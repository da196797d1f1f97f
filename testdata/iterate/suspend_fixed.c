/* suspend_fixed.c: the twin of suspend_buggy.c. The list is copied (PySequence_List takes
 * the list's critical section itself) and the private copy is walked: a blocking call in the
 * loop can no longer leave it looking at a list that changed. */
#include <Python.h>

static PyObject *apply_all(PyObject *module, PyObject *args) {
  PyObject *list, *fn;
  if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &list, &fn)) return NULL;
  PyObject *copy = PySequence_List(list);
  if (!copy) return NULL;
  long total = 0;
  int failed = 0;
  Py_ssize_t n = PyList_GET_SIZE(copy);
  for (Py_ssize_t i = 0; i < n && !failed; i++) {
    PyObject *r = PyObject_CallOneArg(fn, PyList_GET_ITEM(copy, i));
    if (!r) {
      failed = 1;
    } else {
      total += PyLong_AsLong(r);
      Py_DECREF(r);
    }
  }
  Py_DECREF(copy);
  if (failed) return NULL;
  return PyLong_FromLong(total);
}

static PyMethodDef methods[] = {
    {"apply_all", apply_all, METH_VARARGS, "sum of fn(item) over a list"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "suspend_fixed", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_suspend_fixed(void) { return PyModuleDef_Init(&module_def); }
