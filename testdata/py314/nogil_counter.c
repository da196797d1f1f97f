/* nogil_counter.c: for the test of Python 3.14 frame reading on a real 3.14 interpreter,
 * which is a GIL build here (Debian builds no free-threaded 3.14). bump() releases the GIL
 * around a plain increment of a static, so two threads race on it even with the GIL. The
 * pause before the increment lets another thread take the GIL meanwhile: then neither
 * increment follows the other in happens-before, however the threads are scheduled. */
#include <Python.h>
#include <unistd.h>

static long counter;

static PyObject *bump(PyObject *module, PyObject *unused) {
  Py_BEGIN_ALLOW_THREADS
  usleep(200);
  counter++; /* ftsan: race */
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bump", bump, METH_NOARGS, "counter += 1 without the GIL"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "nogil_counter", NULL, 0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_nogil_counter(void) { return PyModuleDef_Init(&module_def); }
