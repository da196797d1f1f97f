/* freelist: a static pool of C structs threaded on a singly linked freelist is popped and
 * pushed by alloc()/release() without a lock; this fixed twin guards push and pop with a
 * PyMutex. */
#include <Python.h>

#define POOL_SIZE 64

typedef struct node {
    struct node *next;
} node;

static node pool[POOL_SIZE];
static node *free_head; /* linked up once in module_exec, before any thread starts */
static PyMutex pool_lock;

static PyObject *
alloc(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    PyMutex_Lock(&pool_lock);
    node *n = free_head;
    if (n != NULL) {
        free_head = n->next;
    }
    PyMutex_Unlock(&pool_lock);
    if (n == NULL) {
        return PyLong_FromLong(-1); /* pool exhausted */
    }
    return PyLong_FromSsize_t(n - pool);
}

static PyObject *
release(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i < 0 || i >= POOL_SIZE) {
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "bad handle");
    }
    node *n = &pool[i];
    PyMutex_Lock(&pool_lock);
    n->next = free_head;
    free_head = n;
    PyMutex_Unlock(&pool_lock);
    Py_RETURN_NONE;
}

static int
module_exec(PyObject *Py_UNUSED(module))
{
    for (int i = 0; i < POOL_SIZE; i++) {
        pool[i].next = i + 1 < POOL_SIZE ? &pool[i + 1] : NULL;
    }
    free_head = &pool[0];
    return 0;
}

static PyMethodDef methods[] = {
    {"alloc", alloc, METH_NOARGS, "Pop a node off the freelist; return its handle or -1."},
    {"release", release, METH_O, "Push the node with this handle back on the freelist."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, module_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "freelist_fixed", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_freelist_fixed(void)
{
    return PyModuleDef_Init(&moduledef);
}
