/* pylock_guarded: update() changes several fields of a static struct with no lock of its
 * own, so unguarded concurrent calls race; the fixed twin is the same C code and is correct
 * because its driver serialises every call with one Python threading.Lock. */
#include <Python.h>

static struct {
    long calls;
    long total;
    long maximum;
} acc;

static PyObject *
update(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        return NULL;
    }
    acc.calls++; /* ftsan: race */
    acc.total += v; /* ftsan: race */
    if (v > acc.maximum) { /* ftsan: race */
        acc.maximum = v; /* ftsan: race */
    }
    Py_RETURN_NONE;
}

static PyObject *
snapshot(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    return Py_BuildValue("(lll)", acc.calls, acc.total, acc.maximum);
}

static PyMethodDef methods[] = {
    {"update", update, METH_O, "Fold one value into the accumulator (caller must lock)."},
    {"snapshot", snapshot, METH_NOARGS, "Return (calls, total, maximum)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "pylock_guarded_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_pylock_guarded_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
