/* registry: register() looks a key up in a static table and appends it if absent, a
 * check-then-act with no lock; the fixed twin holds a PyMutex across the whole
 * lookup-and-insert. */
#include <Python.h>

#define CAPACITY 64

static long keys[CAPACITY];
static int nkeys;

static PyObject *
register_key(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long key = PyLong_AsLong(arg);
    if (key == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int slot = -1; /* stays -1 when the table is full */
    int n = nkeys; /* ftsan: race */
    for (int i = 0; i < n && slot < 0; i++) {
        if (keys[i] == key) { /* ftsan: race */
            slot = i;
        }
    }
    if (slot < 0 && n < CAPACITY) {
        keys[n] = key; /* ftsan: race */
        nkeys = n + 1; /* ftsan: race */
        slot = n;
    }
    return PyLong_FromLong(slot);
}

static PyMethodDef methods[] = {
    {"register", register_key, METH_O, "Return the slot of key, inserting it if absent."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "registry_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_registry_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
