/* event_signal: send() fills a static message that receive() reads in another thread, with
 * a Python threading.Event as the hand-off; the C code of both twins is identical, and the
 * fix is in the driver, whose reader waits on the Event before reading instead of after. */
#include <Python.h>

static struct {
    long id;
    double payload;
} message;

static PyObject *
send_message(PyObject *Py_UNUSED(module), PyObject *args)
{
    long id;
    double payload;
    if (!PyArg_ParseTuple(args, "ld", &id, &payload)) {
        return NULL;
    }
    message.id = id; /* ftsan: race */
    message.payload = payload; /* ftsan: race */
    Py_RETURN_NONE;
}

static PyObject *
receive_message(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    long id = message.id; /* ftsan: race */
    double payload = message.payload; /* ftsan: race */
    return Py_BuildValue("(ld)", id, payload);
}

static PyMethodDef methods[] = {
    {"send", send_message, METH_VARARGS, "send(id, payload): fill the shared message."},
    {"receive", receive_message, METH_NOARGS, "Return the shared message as (id, payload)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "event_signal_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_event_signal_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
