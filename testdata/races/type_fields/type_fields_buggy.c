/* type_fields: an extension type whose C fields are updated by add() while mean() reads
 * them, with no critical section; the fixed twin wraps both method bodies in
 * Py_BEGIN_CRITICAL_SECTION(self). */
#include <Python.h>

typedef struct {
    PyObject_HEAD
    long count;
    double total;
} AccumObject;

static PyObject *
Accum_add(PyObject *op, PyObject *arg)
{
    AccumObject *self = (AccumObject *)op;
    double x = PyFloat_AsDouble(arg);
    if (x == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    self->count++; /* ftsan: race */
    self->total += x; /* ftsan: race */
    Py_RETURN_NONE;
}

static PyObject *
Accum_mean(PyObject *op, PyObject *Py_UNUSED(arg))
{
    AccumObject *self = (AccumObject *)op;
    long n = self->count; /* ftsan: race */
    double t = self->total; /* ftsan: race */
    return PyFloat_FromDouble(t / (double)(n > 0 ? n : 1));
}

static void
Accum_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef Accum_methods[] = {
    {"add", Accum_add, METH_O, "Add a sample."},
    {"mean", Accum_mean, METH_NOARGS, "Return the mean of the samples."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Accum_slots[] = {
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Accum_dealloc},
    {Py_tp_methods, Accum_methods},
    {0, NULL},
};

static PyType_Spec Accum_spec = {
    "type_fields_buggy.Accum", sizeof(AccumObject), 0, Py_TPFLAGS_DEFAULT, Accum_slots,
};

static int
module_exec(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &Accum_spec, NULL);
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
    PyModuleDef_HEAD_INIT, "type_fields_buggy", NULL, 0, NULL, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_type_fields_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
