/* atomic_plain: the writer publishes a static long with an atomic release store but the
 * reader loads it with a plain read, a mixed atomic/plain data race; this fixed twin's reader
 * uses an acquire atomic load. */
#include <Python.h>

static long latest; /* written only through __atomic builtins */

static PyObject *
set_value(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        return NULL;
    }
    __atomic_store_n(&latest, v, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyObject *
get_value(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    long v = __atomic_load_n(&latest, __ATOMIC_ACQUIRE);
    return PyLong_FromLong(v);
}

static PyMethodDef methods[] = {
    {"set", set_value, METH_O, "Publish a new value."},
    {"get", get_value, METH_NOARGS, "Return the latest value."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "atomic_plain_fixed", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_atomic_plain_fixed(void)
{
    return PyModuleDef_Init(&moduledef);
}
