/* suspend_buggy.c: apply_all() walks a list inside Py_BEGIN_CRITICAL_SECTION and calls a
 * Python function on each item. The function blocks (it waits for an event), which suspends the critical
 * section: the list's lock is released, another thread appends and pops, and the loop goes
 * on with the size it read before (the pattern of a use-after-free found in a JSON encoder:
 * every access is ordered by the lock, so it is not a data race, but the section was not
 * the atomic block the code assumed). */
#include <Python.h>

static PyObject *apply_all(PyObject *module, PyObject *args) {
  PyObject *list, *fn;
  if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &list, &fn)) return NULL;
  long total = 0;
  int failed = 0;
  Py_BEGIN_CRITICAL_SECTION(list);
  Py_ssize_t n = PyList_GET_SIZE(list);
  for (Py_ssize_t i = 0; i < n && !failed; i++) {
    PyObject *item = PyList_GET_ITEM(list, i); /* ftsan: interrupted */
    PyObject *r = PyObject_CallOneArg(fn, item); /* may block: the section is suspended */
    if (!r) {
      failed = 1;
    } else {
      total += PyLong_AsLong(r);
      Py_DECREF(r);
    }
  }
  Py_END_CRITICAL_SECTION();
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
    PyModuleDef_HEAD_INIT, "suspend_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_suspend_buggy(void) { return PyModuleDef_Init(&module_def); }
