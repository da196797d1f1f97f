/* cas_publish: publish() writes data and then tries to mark it published with a
 * compare-and-swap that fails (the state was claimed before) and ignores the failure; the
 * reader waits for a relaxed signal and acquire-loads the state, which synchronizes with
 * nothing, so data races; the fixed twin raises the signal with a release store and polls
 * it with an acquire load. */
#include <Python.h>
#include <stdatomic.h>

static long data;
static atomic_long state = 2; /* 0 free, 1 published, 2 claimed */
static atomic_int signal_up;

static PyObject *
publish(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        return NULL;
    }
    data = v; /* ftsan: race */
    long expected = 0;
    (void)atomic_compare_exchange_strong(&state, &expected, 1); /* fails: state is 2 */
    atomic_store_explicit(&signal_up, 1, memory_order_relaxed);
    Py_RETURN_NONE;
}

static PyObject *
poll_signal(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    return PyBool_FromLong(atomic_load_explicit(&signal_up, memory_order_relaxed));
}

static PyObject *
take(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    (void)atomic_load_explicit(&state, memory_order_acquire);
    long v = data; /* ftsan: race */
    return PyLong_FromLong(v);
}

static PyMethodDef methods[] = {
    {"publish", publish, METH_O, "Store the data, try to mark it published, raise the signal."},
    {"poll", poll_signal, METH_NOARGS, "Return whether the signal is up."},
    {"take", take, METH_NOARGS, "Return the data (call only after poll() returned True)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "cas_publish_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_cas_publish_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
