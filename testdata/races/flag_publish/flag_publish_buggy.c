/* flag_publish: publish() writes data and then sets a plain static ready flag that another
 * thread polls before reading the data, so flag and data both race; the fixed twin sets the
 * flag with a release store and polls it with an acquire load. */
#include <Python.h>

static long data;
static int ready;

static PyObject *
publish(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        return NULL;
    }
    data = v; /* ftsan: race */
    ready = 1; /* ftsan: race */
    Py_RETURN_NONE;
}

static PyObject *
poll_ready(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    int r = ready; /* ftsan: race */
    return PyBool_FromLong(r);
}

static PyObject *
take(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    long v = data; /* ftsan: race */
    return PyLong_FromLong(v);
}

static PyMethodDef methods[] = {
    {"publish", publish, METH_O, "Store the data, then raise the ready flag."},
    {"poll", poll_ready, METH_NOARGS, "Return whether the ready flag is up."},
    {"take", take, METH_NOARGS, "Return the data (call only after poll() returned True)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "flag_publish_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_flag_publish_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
