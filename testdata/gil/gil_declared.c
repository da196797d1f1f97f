/* gil_declared.c: an extension that declares Py_mod_gil = Py_MOD_GIL_NOT_USED, so importing it keeps the GIL disabled (the fixed twin). */
#include <Python.h>

static PyObject *answer(PyObject *module, PyObject *unused) { return PyLong_FromLong(42); }

static PyMethodDef methods[] = {
    {"answer", answer, METH_NOARGS, "the answer"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "gil_declared", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_gil_declared(void) { return PyModuleDef_Init(&module_def); }
