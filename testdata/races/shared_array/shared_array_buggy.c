/* shared_array: one thread refills a static table in a loop while others sum it in a loop, with
 * no lock (both loops are counted and call nothing, so the pass checks each as one range); the
 * fixed twin holds a PyMutex around each loop. */
#include <Python.h>
#include <stdint.h>

#define SLOTS 512

static uint32_t table[SLOTS];

static PyObject *
refill(PyObject *Py_UNUSED(module), PyObject *arg)
{
    unsigned long seed = PyLong_AsUnsignedLong(arg);
    if (seed == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    for (size_t i = 0; i < SLOTS; i++)
        table[i] = (uint32_t)(seed + i * 2654435761u); /* ftsan: race */
    Py_RETURN_NONE;
}

static PyObject *
total(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    uint64_t sum = 0;
    for (size_t i = 0; i < SLOTS; i++)
        sum += table[i]; /* ftsan: race */
    return PyLong_FromUnsignedLongLong(sum);
}

static PyMethodDef methods[] = {
    {"refill", refill, METH_O, "Refill the table from a seed."},
    {"total", total, METH_NOARGS, "Return the sum of the table."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "shared_array_buggy", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_shared_array_buggy(void)
{
    return PyModuleDef_Init(&moduledef);
}
