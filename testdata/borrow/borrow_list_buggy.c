/* borrow_list_buggy.c: first_size() reads the size of a list's first item after running a
 * callback, during which another thread replaces that item; the item was borrowed with PyList_GetItem, so the replaced item may already be freed when it is read (the bug ftsan reports). */
#include <Python.h>

static PyObject *first_size(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyList_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "first_size(list, callback)");
    return NULL;
  }
  PyObject *item = PyList_GetItem(args[0], 0); /* borrowed */
  if (!item) return NULL;
  PyObject *r = PyObject_CallNoArgs(args[1]); /* another thread replaces the item meanwhile */
  if (!r) return NULL;
  Py_DECREF(r);
  Py_ssize_t n = PyBytes_GET_SIZE(item); /* ftsan: use-after-free */
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
    PyModuleDef_HEAD_INIT, "borrow_list_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_borrow_list_buggy(void) { return PyModuleDef_Init(&module_def); }
