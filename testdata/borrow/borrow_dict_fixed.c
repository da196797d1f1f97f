/* borrow_dict_fixed.c: value_size() reads the size of a dict's value for a key after running a
 * callback, during which another thread deletes that key; this twin takes a strong reference with PyDict_GetItemRef, which keeps the value alive. */
#include <Python.h>

static PyObject *value_size(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 3 || !PyDict_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "value_size(dict, key, callback)");
    return NULL;
  }
  PyObject *item;
  int found = PyDict_GetItemRef(args[0], args[1], &item); /* a strong reference */
  if (found <= 0) return found < 0 ? NULL : PyLong_FromLong(-1);
  PyObject *r = PyObject_CallNoArgs(args[2]); /* another thread deletes the key meanwhile */
  if (!r) {
    Py_DECREF(item);
    return NULL;
  }
  Py_DECREF(r);
  Py_ssize_t n = PyBytes_GET_SIZE(item);
  Py_DECREF(item);
  return PyLong_FromSsize_t(n);
}

static PyMethodDef methods[] = {
    {"value_size", (PyCFunction)(void (*)(void))value_size, METH_FASTCALL, "size of d[key] after a callback"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "borrow_dict_fixed", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_borrow_dict_fixed(void) { return PyModuleDef_Init(&module_def); }
