/* suspend_fixed.c: the twin of suspend_buggy.c. The list is copied (PySequence_List takes
 * the list's critical section itself) and the private copy is walked: a blocking call in the
 * loop can no longer leave it looking at a list that changed. */
#include <Python.h>

static PyObject *apply_all(PyObject *module, PyObject *args) {
  PyObject *list, *fn;
  if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &list, &fn)) return NULL;
  PyObject *copy = PySequence_List(list);
  if (!copy) return NULL;
  long total = 0;
  int failed = 0;
  Py_ssize_t n = PyList_GET_SIZE(copy);
  for (Py_ssize_t i = 0; i < n && !failed; i++) {
    PyObject *r = PyObject_CallOneArg(fn, PyList_GET_ITEM(copy, i));
    if (!r) {
      failed = 1;
    } else {
      total += PyLong_AsLong(r);
      Py_DECREF(r);
    }
  }
  Py_DECREF(copy);
  if (failed) return NULL;
  return PyLong_FromLong(total);
}

/* Reads the list inside its critical section, calls fn (which blocks), then inserts: the
 * append needs nothing read before the call, so the interrupted section is harmless here. */
static PyObject *append_after(PyObject *module, PyObject *args) {
  PyObject *list, *fn, *r = NULL;
  if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &list, &fn)) return NULL;
  Py_BEGIN_CRITICAL_SECTION(list);
  PyObject *first = PyList_GET_SIZE(list) ? Py_NewRef(PyList_GET_ITEM(list, 0)) : Py_NewRef(Py_None);
  r = PyObject_CallOneArg(fn, first); /* may block: the section is suspended */
  Py_DECREF(first);
  if (r && PyList_Insert(list, 0, r) < 0) Py_CLEAR(r); /* through list_resize: a write */
  Py_END_CRITICAL_SECTION();
  return r;
}

static PyMethodDef methods[] = {
    {"apply_all", apply_all, METH_VARARGS, "sum of fn(item) over a list"},
    {"append_after", append_after, METH_VARARGS, "fn(list[0]), inserted at the front"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "suspend_fixed", NULL, 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_suspend_fixed(void) { return PyModuleDef_Init(&module_def); }
