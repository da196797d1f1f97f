/* malloc_reuse: give() mallocs a block, fills it and publishes it through a static pointer
 * that take() empties, reads and frees in another thread, all with no lock, so pointer and
 * block race; this fixed twin hands the pointer over under a PyMutex, after which take()'s
 * free and give()'s next malloc may reuse the same address without any report. */
#include <Python.h>
#include <stdlib.h>

typedef struct {
    long value;
} block;

static block *slot; /* NULL: empty; otherwise a block owned by whoever empties it */
static PyMutex slot_lock;

static PyObject *
give(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyMutex_Lock(&slot_lock);
    int full = slot != NULL;
    PyMutex_Unlock(&slot_lock);
    if (full) {
        Py_RETURN_FALSE;
    }
    block *b = malloc(sizeof *b);
    if (b == NULL) {
        return PyErr_NoMemory();
    }
    b->value = v; /* plain write to a block that may reuse an address take() freed */
    PyMutex_Lock(&slot_lock);
    slot = b;
    PyMutex_Unlock(&slot_lock);
    Py_RETURN_TRUE;
}

static PyObject *
take(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    PyMutex_Lock(&slot_lock);
    block *b = slot;
    slot = NULL;
    PyMutex_Unlock(&slot_lock);
    if (b == NULL) {
        Py_RETURN_NONE;
    }
    long v = b->value;
    free(b);
    return PyLong_FromLong(v);
}

static PyObject *
drain(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    PyMutex_Lock(&slot_lock);
    free(slot);
    slot = NULL;
    PyMutex_Unlock(&slot_lock);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"give", give, METH_O, "Publish a new block holding value; False if the slot is full."},
    {"take", take, METH_NOARGS, "Take, free and return the published value, or None."},
    {"drain", drain, METH_NOARGS, "Free whatever is left (call once all threads are joined)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "malloc_reuse_fixed", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_malloc_reuse_fixed(void)
{
    return PyModuleDef_Init(&moduledef);
}
