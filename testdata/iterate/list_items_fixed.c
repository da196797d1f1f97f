/* list_items_fixed.c: the twin of list_items_buggy.c. Both loops hold the list's critical
 * section, which the interpreter's list mutators take too, so the size read and the items
 * walked belong to one state of the list. */
#include <Python.h>

static PyObject *sum_items(PyObject *module, PyObject *list) {
  if (!PyList_Check(list)) {
    PyErr_SetString(PyExc_TypeError, "sum_items(list)");
    return NULL;
  }
  long total = 0;
  Py_BEGIN_CRITICAL_SECTION(list);
  Py_ssize_t n = PyList_GET_SIZE(list);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *item = PyList_GET_ITEM(list, i);
    if (PyLong_Check(item)) total += PyLong_AsLong(item);
  }
  Py_END_CRITICAL_SECTION();
  return PyLong_FromLong(total);
}

static PyObject *max_item(PyObject *module, PyObject *seq) {
  long best = -1;
  Py_BEGIN_CRITICAL_SECTION(seq);
  PyObject *fast = PySequence_Fast(seq, "max_item(sequence)");
  if (fast) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++)
      if (PyLong_Check(items[i]) && PyLong_AsLong(items[i]) > best) best = PyLong_AsLong(items[i]);
    Py_DECREF(fast);
  }
  Py_END_CRITICAL_SECTION();
  if (PyErr_Occurred()) return NULL;
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
    PyModuleDef_HEAD_INIT, "list_items_fixed", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_list_items_fixed(void) { return PyModuleDef_Init(&module_def); }
