/* list_items_buggy.c: sum_items() and max_item() walk a list with PyList_GET_ITEM and
 * PySequence_Fast_ITEMS while other threads append to it and pop from it; without a critical
 * section the loops read an item array that the other threads reallocate and rewrite (the
 * bug ftsan reports; with the GIL, nothing could run in between). */
#include <Python.h>

static PyObject *sum_items(PyObject *module, PyObject *list) {
  if (!PyList_Check(list)) {
    PyErr_SetString(PyExc_TypeError, "sum_items(list)");
    return NULL;
  }
  long total = 0;
  Py_ssize_t n = PyList_GET_SIZE(list);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *item = PyList_GET_ITEM(list, i); /* ftsan: race */
    if (PyLong_Check(item)) total += PyLong_AsLong(item);
  }
  return PyLong_FromLong(total);
}

static PyObject *max_item(PyObject *module, PyObject *seq) {
  PyObject *fast = PySequence_Fast(seq, "max_item(sequence)");
  if (!fast) return NULL;
  long best = -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  PyObject **items = PySequence_Fast_ITEMS(fast); /* ftsan: race-fast */
  for (Py_ssize_t i = 0; i < n; i++)
    if (PyLong_Check(items[i]) && PyLong_AsLong(items[i]) > best) best = PyLong_AsLong(items[i]);
  Py_DECREF(fast);
  return PyLong_FromLong(best);
}

static PyMethodDef methods[] = {
    {"sum_items", sum_items, METH_O, "sum of a list's int items"},
    {"max_item", max_item, METH_O, "largest int item of a sequence"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "list_items_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_list_items_buggy(void) { return PyModuleDef_Init(&module_def); }
