/* malloc_reuse: give() mallocs a block, fills it and publishes it through a static pointer
 * that take() empties, reads and frees in another thread, all with no lock, so pointer and
 * block race; the fixed twin hands the pointer over under a PyMutex, after which take()'s
 * free and give()'s next malloc may reuse the same address without any report. */
#include <Python.h>
#include <stdlib.h>

typedef struct {
    long value;
} block;

static block *slot; /* NULL: empty; otherwise a block owned by whoever empties it */

static PyObject *
give(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int full = slot != NULL; /* ftsan: race */
    if (full) {
        Py_RETURN_FALSE;
    }
    block *b = malloc(sizeof *b);
    if (b == NULL) {
        return PyErr_NoMemory();
    }
    b->value = v; /* ftsan: race */
    slot = b; /* ftsan: race */
    Py_RETURN_TRUE;
}

static PyObject *
take(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    block *b = slot; /* ftsan: race */
    if (b == NULL) {
        Py_RETURN_NONE;
    }
    slot = NULL; /* ftsan: race */
    long v = b->value; /* ftsan: race */
    free(b);
    return PyLong_FromLong(v);
}

static PyObject *
drain(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    free(slot);
    slot = NULL;
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
    PyModuleDef_HEAD_INIT, "malloc_reuse_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_malloc_reuse_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
