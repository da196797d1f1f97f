/* borrow_list_fixed.c: first_size() reads the size of a list's first item after running a
 * callback, during which another thread replaces that item; this twin takes a strong reference with PyList_GetItemRef, which keeps the item alive. */
#include <Python.h>

static PyObject *first_size(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyList_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "first_size(list, callback)");
    return NULL;
  }
  PyObject *item = PyList_GetItemRef(args[0], 0); /* a strong reference */
  if (!item) return NULL;
  PyObject *r = PyObject_CallNoArgs(args[1]); /* another thread replaces the item meanwhile */
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
    {"first_size", (PyCFunction)(void (*)(void))first_size, METH_FASTCALL, "size of lst[0] after a callback"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "borrow_list_fixed", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_borrow_list_fixed(void) { return PyModuleDef_Init(&module_def); }
