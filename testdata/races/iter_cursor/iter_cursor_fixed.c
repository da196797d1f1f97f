/* iter_cursor: an iterator type whose tp_iternext advances self->pos with plain loads and
 * stores races when one iterator is shared between threads; this fixed twin wraps the
 * cursor update in Py_BEGIN_CRITICAL_SECTION(self). */
#include <Python.h>

#define NITEMS 256

static long items[NITEMS]; /* filled in module_exec, read-only afterwards */

typedef struct {
    PyObject_HEAD
    Py_ssize_t pos;
} CursorObject;

static PyObject *
Cursor_iternext(PyObject *op)
{
    CursorObject *self = (CursorObject *)op;
    Py_ssize_t i;
    Py_BEGIN_CRITICAL_SECTION(self);
    i = self->pos;
    if (i < NITEMS) {
        self->pos = i + 1;
    }
    Py_END_CRITICAL_SECTION();
    if (i >= NITEMS) {
        return NULL; /* exhausted: StopIteration without an exception set */
    }
    return PyLong_FromLong(items[i]);
}

static void
Cursor_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyType_Slot Cursor_slots[] = {
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Cursor_dealloc},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, Cursor_iternext},
    {0, NULL},
};

static PyType_Spec Cursor_spec = {
    "iter_cursor_fixed.Cursor", sizeof(CursorObject), 0, Py_TPFLAGS_DEFAULT, Cursor_slots,
};

static int
module_exec(PyObject *module)
{
    for (int i = 0; i < NITEMS; i++) {
        items[i] = 3L * i;
    }
    PyObject *type = PyType_FromModuleAndSpec(module, &Cursor_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    int rc = PyModule_AddType(module, (PyTypeObject *)type);
    Py_DECREF(type);
    return rc;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, module_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "iter_cursor_fixed", NULL, 0, NULL, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_iter_cursor_fixed(void)
{
    return PyModuleDef_Init(&moduledef);
}
