/* static_counter: a static counter incremented by a module function without any lock races
 * between threads; the fixed twin guards the increment with a PyMutex. */
#include <Python.h>

static long counter;

static PyObject *
bump(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    counter++; /* ftsan: race */
    Py_RETURN_NONE;
}

static PyObject *
value(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    long v = counter;
    return PyLong_FromLong(v);
}

static PyMethodDef methods[] = {
    {"bump", bump, METH_NOARGS, "Increment the counter."},
    {"value", value, METH_NOARGS, "Return the counter."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "static_counter_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_static_counter_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
