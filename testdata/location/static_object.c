/* static_object.c: a static that points to a Python object, written by several threads
 * without a lock. The race is on the static itself: a report must name the global, not take
 * the object it points to for the type of a PyObject around it. (The driver passes bytes
 * objects whose data, read as a PyTypeObject's tp_basicsize and tp_itemsize, are
 * plausible: a header check that looked only at sizes and the type's type would accept.) */
#include <Python.h>

static PyObject *last_seen; /* ftsan: location */

static PyObject *remember(PyObject *module, PyObject *obj) {
  PyObject *prev = last_seen;
  last_seen = obj; /* ftsan: race (the objects are kept alive by the caller) */
  return PyBool_FromLong(prev == obj);
}

static PyMethodDef methods[] = {
    {"remember", remember, METH_O, "remember the last object seen (racily)"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "static_object", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_static_object(void) { return PyModuleDef_Init(&module_def); }
