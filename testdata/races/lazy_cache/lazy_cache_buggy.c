/* lazy_cache: a static cache built lazily on first use is checked and set without a lock,
 * so a second thread races on the pointer; the fixed twin does the check-and-set under a
 * PyMutex. */
#include <Python.h>

static PyObject *cache; /* built once, then shared by every caller (never freed) */

static PyObject *
build_table(void)
{
    PyObject *table = PyTuple_New(16);
    if (table == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 16; i++) {
        PyTuple_SET_ITEM(table, i, PyLong_FromSsize_t(i * i));
    }
    return table;
}

static PyObject *
get_table(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    PyObject *table = cache; /* ftsan: race */
    if (table == NULL) {
        table = build_table();
        if (table == NULL) {
            return NULL;
        }
        cache = table; /* ftsan: race */
    }
    return Py_NewRef(table);
}

static PyMethodDef methods[] = {
    {"get_table", get_table, METH_NOARGS, "Return the lazily built table of squares."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "lazy_cache_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_lazy_cache_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
