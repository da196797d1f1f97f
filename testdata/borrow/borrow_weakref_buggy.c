/* borrow_weakref_buggy.c: referent_size() reads the size of a weak reference's referent (a set)
 * after running a callback, during which another thread drops the last strong reference to
 * the set; the referent was borrowed with PyWeakref_GetObject, so it may already be freed when it is read (the bug ftsan reports). */
#include <Python.h>

static PyObject *referent_size(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyWeakref_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "referent_size(weakref, callback)");
    return NULL;
  }
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  PyObject *obj = PyWeakref_GetObject(args[0]); /* borrowed (deprecated for this reason) */
#pragma clang diagnostic pop
  if (!obj) return NULL;
  if (obj == Py_None) return PyLong_FromLong(-1);
  PyObject *r = PyObject_CallNoArgs(args[1]); /* another thread drops the set meanwhile */
  if (!r) return NULL;
  Py_DECREF(r);
  Py_ssize_t n = PySet_GET_SIZE(obj); /* ftsan: use-after-free */
  return PyLong_FromSsize_t(n);
}

static PyMethodDef methods[] = {
    {"referent_size", (PyCFunction)(void (*)(void))referent_size, METH_FASTCALL, "size of a weakref's referent after a callback"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "borrow_weakref_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_borrow_weakref_buggy(void) { return PyModuleDef_Init(&module_def); }
