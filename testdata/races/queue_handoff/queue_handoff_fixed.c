/* queue_handoff: produce() fills a static buffer that consume() reads in another thread,
 * relying on the driver's queue.Queue hand-off for ordering; the buggy driver keeps producing
 * after the hand-off, while this fixed twin (same C code) is driven with a strict
 * put/get-then-acknowledge protocol. */
#include <Python.h>
#include <string.h>

#define BUFSIZE 64

static char buffer[BUFSIZE];
static Py_ssize_t buflen;

static PyObject *
produce(PyObject *Py_UNUSED(module), PyObject *arg)
{
    char *data;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &data, &n) < 0) {
        return NULL;
    }
    if (n > BUFSIZE) {
        return PyErr_Format(PyExc_ValueError, "message longer than %d bytes", BUFSIZE);
    }
    memcpy(buffer, data, (size_t)n);
    buflen = n;
    Py_RETURN_NONE;
}

static PyObject *
consume(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    Py_ssize_t n = buflen;
    unsigned long checksum = 0;
    for (Py_ssize_t i = 0; i < n && i < BUFSIZE; i++) {
        checksum = checksum * 31 + (unsigned char)buffer[i];
    }
    return PyLong_FromUnsignedLong(checksum);
}

static PyMethodDef methods[] = {
    {"produce", produce, METH_O, "Copy a bytes message into the shared buffer."},
    {"consume", consume, METH_NOARGS, "Return a checksum of the shared buffer."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "queue_handoff_fixed", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_queue_handoff_fixed(void)
{
    return PyModuleDef_Init(&moduledef);
}
