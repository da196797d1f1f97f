/* contention_ext.c: scenarios with known contention answers for 'ftsan top': a module-global
 * object handed to every thread with Py_NewRef (cross-thread refcount traffic), the same work
 * on per-thread objects (none), a dict updated under a critical section by every thread
 * (lock waits), and immortal objects (None, small ints: no refcount writes at all). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *shared_config; /* created at import, used by every thread */

/* get_shared() -> list: a new reference to the module-global object. */
static PyObject *get_shared(PyObject *module, PyObject *unused) {
  return Py_NewRef(shared_config);
}

/* touch(obj) -> None: takes and drops a reference to the caller's object. */
static PyObject *touch(PyObject *module, PyObject *obj) {
  PyObject *ref = Py_NewRef(obj);
  Py_DECREF(ref);
  Py_RETURN_NONE;
}

/* get_none() -> None: references to immortal objects. */
static PyObject *get_none(PyObject *module, PyObject *unused) {
  PyObject *small = PyLong_FromLong(7); /* a cached small int: immortal */
  Py_DECREF(small);
  return Py_NewRef(Py_None);
}

/* locked_update(d, key) -> None: read-modify-write of d[key] and a scan of d, all inside
 * the dict's critical section, so threads updating one dict wait for each other. */
static PyObject *locked_update(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyDict_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "locked_update(dict, key)");
    return NULL;
  }
  PyObject *d = args[0], *key = args[1];
  int rc = 0;
  Py_BEGIN_CRITICAL_SECTION(d);
  PyObject *old = PyDict_GetItemWithError(d, key);
  long v = old ? PyLong_AsLong(old) : 0;
  PyObject *nv = PyLong_FromLong(v + 1);
  rc = nv ? PyDict_SetItem(d, key, nv) : -1;
  Py_XDECREF(nv);
  Py_ssize_t pos = 0;
  PyObject *k, *val;
  long sum = 0;
  while (rc == 0 && PyDict_Next(d, &pos, &k, &val)) sum += PyLong_AsLong(val);
  (void)sum;
  Py_END_CRITICAL_SECTION();
  if (rc < 0) return NULL;
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"get_shared", get_shared, METH_NOARGS, "new reference to the shared object"},
    {"touch", touch, METH_O, "incref and decref the argument"},
    {"get_none", get_none, METH_NOARGS, "references to immortal objects"},
    {"locked_update", (PyCFunction)(void (*)(void))locked_update, METH_FASTCALL, "update under a critical section"},
    {NULL, NULL, 0, NULL},
};

static int exec_module(PyObject *m) {
  shared_config = Py_BuildValue("[iii]", 1000, 2000, 3000);
  return shared_config ? PyModule_AddObjectRef(m, "shared_config", shared_config) : -1;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "contention_ext", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_contention_ext(void) { return PyModuleDef_Init(&module_def); }
