/* join_publish: worker threads store results in their own slots of a static array that the
 * main thread sums; the C code of both twins is identical, and the fix is in the driver,
 * which sums only after Thread.join() instead of while the workers still run. */
#include <Python.h>

#define NSLOTS 8

static long slots_data[NSLOTS];

static PyObject *
work(PyObject *Py_UNUSED(module), PyObject *args)
{
    int slot;
    long value;
    if (!PyArg_ParseTuple(args, "il", &slot, &value)) {
        return NULL;
    }
    if (slot < 0 || slot >= NSLOTS) {
        return PyErr_Format(PyExc_IndexError, "slot %d out of range", slot);
    }
    slots_data[slot] = value;
    Py_RETURN_NONE;
}

static PyObject *
collect(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    long total = 0;
    for (int i = 0; i < NSLOTS; i++) {
        total += slots_data[i];
    }
    return PyLong_FromLong(total);
}

static PyMethodDef methods[] = {
    {"work", work, METH_VARARGS, "work(slot, value): store value in this worker's slot."},
    {"collect", collect, METH_NOARGS, "Return the sum of all slots."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "join_publish_fixed", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_join_publish_fixed(void)
{
    return PyModuleDef_Init(&moduledef);
}
