/* gil_required.c: an extension that does not declare Py_mod_gil, so importing it into a free-threaded python enables the GIL for the whole process (the bug ftsan reports). */
#include <Python.h>

static PyObject *answer(PyObject *module, PyObject *unused) { return PyLong_FromLong(42); }

static PyMethodDef methods[] = {
    {"answer", answer, METH_NOARGS, "the answer"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "gil_required", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_gil_required(void) { return PyModuleDef_Init(&module_def); }
