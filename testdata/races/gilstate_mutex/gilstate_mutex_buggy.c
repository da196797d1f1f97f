/* gilstate_mutex: record() wraps its update of a static struct in
 * PyGILState_Ensure()/PyGILState_Release() as if that were a lock, which excludes nothing in
 * free-threaded CPython; the fixed twin keeps those calls but adds a PyMutex. */
#include <Python.h>

static struct {
    long hits;
    long last;
} stats;

static PyObject *
record(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    stats.hits++; /* ftsan: race */
    stats.last = v; /* ftsan: race */
    PyGILState_Release(gil);
    Py_RETURN_NONE;
}

static PyObject *
snapshot(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    PyGILState_STATE gil = PyGILState_Ensure();
    long n = stats.hits;
    long last = stats.last;
    PyGILState_Release(gil);
    return Py_BuildValue("(ll)", n, last);
}

static PyMethodDef methods[] = {
    {"record", record, METH_O, "Record one value."},
    {"snapshot", snapshot, METH_NOARGS, "Return (hits, last value recorded)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "gilstate_mutex_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_gilstate_mutex_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
