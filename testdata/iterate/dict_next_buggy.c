/* dict_next_buggy.c: sum_values() adds up a dict's int values with PyDict_Next while other
 * threads add and delete keys; without a critical section the iteration reads entries the other threads are changing (the bug ftsan reports; with the GIL, nothing could run in between). */
#include <Python.h>

static PyObject *sum_values(PyObject *module, PyObject *d) {
  if (!PyDict_Check(d)) {
    PyErr_SetString(PyExc_TypeError, "sum_values(dict)");
    return NULL;
  }
  long total = 0;
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (PyDict_Next(d, &pos, &key, &value)) { /* ftsan: race */
    if (PyLong_Check(value)) total += PyLong_AsLong(value);
  }
  return PyLong_FromLong(total);
}

static PyMethodDef methods[] = {
    {"sum_values", sum_values, METH_O, "sum of a dict's int values"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "dict_next_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_dict_next_buggy(void) { return PyModuleDef_Init(&module_def); }
