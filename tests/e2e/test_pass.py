"""Tests that the pass is applied: at every optimization level the compiled code calls the
runtime; refcount helpers are not instrumented as plain accesses; C-API synchronization calls
are redirected to runtime wrappers."""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ftsan_testlib import FTSAN_CC, PY_INCLUDE, TESTDATA, build_extension, tempdir  # noqa: E402

REFCOUNT_ONLY = r"""
#include <Python.h>
PyObject *keep(PyObject *o) { Py_INCREF(o); return o; }
void drop(PyObject *o) { Py_DECREF(o); }
PyObject *fresh(PyObject *o) { return Py_NewRef(o); }
void xdrop(PyObject *o) { Py_XDECREF(o); }
"""

PLAIN = r"""
long shared_counter;
long bump(long k) { shared_counter += k; return shared_counter; }
"""

SYNC = r"""
#include <Python.h>
long n;
PyMutex m;
void cs(PyObject *o) { Py_BEGIN_CRITICAL_SECTION(o); n++; Py_END_CRITICAL_SECTION(); }
void mx(void) { PyMutex_Lock(&m); n++; PyMutex_Unlock(&m); }
int gs(void) { PyGILState_STATE s = PyGILState_Ensure(); n++; PyGILState_Release(s); return 0; }
"""

ATOMICS = r"""
#include <stdatomic.h>
_Atomic long a;
long f(void) { atomic_store_explicit(&a, 1, memory_order_release);
               return atomic_load_explicit(&a, memory_order_acquire) + atomic_fetch_add(&a, 2); }
"""


def ir(code, opt, work, env=None):
    src = os.path.join(work, "t.c")
    with open(src, "w") as f:
        f.write(code)
    out = os.path.join(work, "t.ll")
    subprocess.run([FTSAN_CC, opt, "-S", "-emit-llvm", "-I" + PY_INCLUDE, src, "-o", out], check=True,
                   env=dict(os.environ, **(env or {})))
    with open(out) as f:
        return f.read()


def calls(text):
    return re.findall(r"call \w+ @(__ftsan_\w+)\(", text)


def function_body(text, name):
    m = re.search(r"define [^\n]*@%s\((?:.|\n)*?\n}\n" % name, text)
    assert m, "no definition of %s" % name
    return m.group(0)


class PassApplied(unittest.TestCase):
    def setUp(self):
        self.work = tempdir()

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def test_every_optimization_level_calls_the_runtime(self):
        for opt in ("-O0", "-O1", "-O2", "-O3", "-Os"):
            text = ir(PLAIN, opt, self.work)
            body = calls(function_body(text, "bump"))
            self.assertIn("__ftsan_func_entry", body, opt)
            self.assertIn("__ftsan_func_exit", body, opt)
            self.assertIn("__ftsan_write8", body, opt)
            self.assertIn("__ftsan_init", text, opt)  # the ABI-check constructor
            self.assertIn("ftsan.module_ctor", text, opt)

    def test_extension_so_references_the_runtime_at_O0_and_O2(self):
        for opt in ("-O0", "-O2"):
            so = build_extension(os.path.join(TESTDATA, "basic", "basic_ext.c"), self.work, opt=opt)
            nm = subprocess.run(["nm", "-D", "--undefined-only", so], capture_output=True, text=True).stdout
            # The byte loop over a bytes object: one read1 per byte at -O0; at -O2 it is a
            # counted loop without calls, checked as one range before it runs.
            byte_loop = "__ftsan_read1" if opt == "-O0" else "__ftsan_read_range"
            for sym in ("__ftsan_init", "__ftsan_func_entry", byte_loop, "__ftsan_atomic_pre",
                        "__ftsan_PyCriticalSection_Begin", "__ftsan_PyCriticalSection_End"):
                self.assertIn(sym, nm, "%s missing at %s" % (sym, opt))
            self.assertNotRegex(nm, r"\bU PyCriticalSection_Begin\b")

    def test_refcount_helpers_are_not_plain_accesses(self):
        for opt in ("-O0", "-O2"):
            text = ir(REFCOUNT_ONLY, opt, self.work)
            for fn in ("keep", "drop", "fresh", "xdrop"):
                body = calls(function_body(text, fn))
                plain = [c for c in body if re.match(r"__ftsan_(read|write|atomic)", c)]
                self.assertEqual(plain, [], "%s at %s: %s" % (fn, opt, body))

    def test_type_reads_are_not_checked(self):
        """Py_TYPE / Py_IS_TYPE / PyType_HasFeature (under PyList_Check) read header fields
        the interpreter sets once: no call; Py_SIZE (a mutable size) and Py_SET_TYPE (a
        store) keep theirs."""
        code = ("#include <Python.h>\n"
                "int is_list(PyObject *o) { return PyList_Check(o); }\n"
                "int is_bytearray(PyObject *o) { return PyByteArray_Check(o); }\n"
                "int is_long(PyObject *o) { return Py_IS_TYPE(o, &PyLong_Type); }\n"
                "PyTypeObject *tp(PyObject *o) { return Py_TYPE(o); }\n"
                "Py_ssize_t sz(PyObject *o) { return Py_SIZE(o); }\n"
                "void settype(PyObject *o, PyTypeObject *t) { Py_SET_TYPE(o, t); }\n"
                "typedef struct { PyObject_HEAD PyObject *a; } Obj;\n"
                "void both(Obj *restrict o, void **restrict out) { out[0] = Py_TYPE(o); out[1] = o->a; }\n")
        for opt in ("-O0", "-O2"):
            text = ir(code, opt, self.work)
            # is_bytearray: PyObject_TypeCheck reads ob_type twice (Py_IS_TYPE, then Py_TYPE);
            # the optimizer merges the two loads and drops their tag
            for fn in ("is_list", "is_bytearray", "is_long", "tp"):
                body = [c for c in calls(function_body(text, fn)) if re.match(r"__ftsan_(read|write|atomic)", c)]
                self.assertEqual(body, [], (fn, opt))
            if opt == "-O0":  # the helpers are functions of their own
                for fn in ("Py_TYPE", "PyType_HasFeature", "Py_IS_TYPE"):
                    body = [c for c in calls(function_body(text, fn)) if re.match(r"__ftsan_(read|atomic)", c)]
                    self.assertEqual(body, [], (fn, opt))
            # o->a is the caller's field: still checked, also when the vectorizer merges its
            # load with Py_TYPE's into one 16-byte load that keeps Py_TYPE's location
            both = [c for c in calls(function_body(text, "both")) if re.match(r"__ftsan_read", c)]
            self.assertTrue(both, (opt, calls(function_body(text, "both"))))
            sz = function_body(text, "Py_SIZE" if opt == "-O0" else "sz")
            self.assertIn("__ftsan_read8", calls(sz), opt)
            st = function_body(text, "Py_SET_TYPE" if opt == "-O0" else "settype")
            self.assertIn("__ftsan_write8", calls(st), opt)

    def test_plain_access_next_to_refcount_is_still_instrumented(self):
        code = REFCOUNT_ONLY + "long g;\nvoid both(PyObject *o) { Py_INCREF(o); g++; Py_DECREF(o); }\n"
        for opt in ("-O0", "-O2"):
            body = calls(function_body(ir(code, opt, self.work), "both"))
            self.assertIn("__ftsan_write8", body, opt)

    def test_read_before_write_in_one_block_is_checked_once(self):
        """A load that the same block stores back to, with no call in between, is covered
        by the store's check; a call in between keeps both (it may synchronize)."""
        code = ("#include <stdatomic.h>\nlong rmw_g, rmw_h, rmw_i;\n_Atomic int ready;\nvoid ext(void);\n"
                "void rmw(long k) { rmw_g += k; }\n"
                "long call_between(long k) { long v = rmw_h; ext(); rmw_h = v + k; return v; }\n"
                "long acquire_between(long k) { long v = rmw_i;\n"
                "  if (atomic_load_explicit(&ready, memory_order_acquire)) k++;\n"
                "  rmw_i = v + k; return v; }\n")
        for opt in ("-O0", "-O2"):
            text = ir(code, opt, self.work)
            body = calls(function_body(text, "rmw"))
            self.assertIn("__ftsan_write8", body, opt)
            self.assertNotIn("__ftsan_read8", body, opt)
            for fn in ("call_between", "acquire_between"):  # a call or an atomic may synchronize
                body = calls(function_body(text, fn))
                self.assertIn("__ftsan_read8", body, (fn, opt))
                self.assertIn("__ftsan_write8", body, (fn, opt))

    def test_loop_accesses_are_checked_as_ranges_before_the_loop(self):
        """A counted loop without calls or atomics: its contiguous accesses become one range
        check each in the preheader, with the loop body free of per-access calls. Loops that
        may synchronize, accesses that skip bytes or do not run every iteration, and loops
        whose trip count is unknown keep their per-access calls."""
        code = r"""
#include <stdatomic.h>
struct pair { int key; int value; };
void ext(void);
_Atomic int flag;
void fill(int *a, long n) { for (long i = 0; i < n; i++) a[i] = (int)i; }
long sum_down(const long *a, long n) { long s = 0; for (long i = n - 1; i >= 0; i--) s += a[i]; return s; }
void stencil(int *restrict out, const int *restrict in, long n) {
  for (long i = 1; i + 1 < n; i++) out[i] = in[i - 1] + in[i] + in[i + 1]; }
void keys(struct pair *p, long n) { for (long i = 0; i < n; i++) p[i].key = 0; }
void with_call(int *a, long n) { for (long i = 0; i < n; i++) { a[i] = 1; ext(); } }
void with_atomic(int *a, long n) { for (long i = 0; i < n; i++) { a[i] = atomic_load(&flag); } }
void some(int *a, const int *c, long n) { for (long i = 0; i < n; i++) if (c[i]) a[i] = 0; }
long until_zero(const int *a) { long i = 0; while (a[i]) i++; return i; }
"""
        text = ir(code, "-O2", self.work)

        def self_loops(body):  # the blocks that branch back to themselves
            blocks = re.split(r"\n(?=[\w.]+:)", body)
            return [b for b in blocks[1:] if re.search(r"label %%%s\b" % re.escape(b.split(":")[0]), b)]

        for fn, want in (("fill", "__ftsan_write_range"), ("sum_down", "__ftsan_read_range"),
                         ("stencil", "__ftsan_read_range")):
            body = function_body(text, fn)
            self.assertIn(want, calls(body), fn)
            # The main (vectorized) loop is free of per-access calls. A scalar remainder loop
            # may keep some: a value carried from the previous iteration (in[i] as last
            # iteration's in[i + 1]) has no affine address SCEV can see.
            free = [b for b in self_loops(body)
                    if not [c for c in calls(b) if re.match(r"__ftsan_(read|write)", c)]]
            self.assertTrue(free, "%s: every loop still has per-access calls:\n%s" % (fn, body))
        # The stencil's vectorized loop reads in[i-1], in[i], in[i+1] (overlapping 16-byte
        # loads): one read range and one write range in the block that enters it.
        body = function_body(text, "stencil")
        blocks = re.split(r"\n(?=[\w.]+:)", body)
        entering = []
        for loop in self_loops(body):
            if [c for c in calls(loop) if re.match(r"__ftsan_(read|write)", c)]:
                continue
            label = loop.split(":")[0]
            entering += [b for b in blocks if b != loop and re.search(r"label %%%s\b" % label, b)]
        self.assertEqual(len(entering), 1, body)
        self.assertEqual(calls(entering[0]).count("__ftsan_read_range"), 1, entering[0])
        self.assertEqual(calls(entering[0]).count("__ftsan_write_range"), 1, entering[0])
        for fn in ("keys", "with_call", "with_atomic", "some", "until_zero"):
            body = calls(function_body(text, fn))
            self.assertNotIn("__ftsan_write_range", body, fn)
            self.assertTrue([c for c in body if re.match(r"__ftsan_(read|write)\d", c)],
                            "%s: no per-access calls: %s" % (fn, body))
            if fn != "some":  # some's c[i] is read in every iteration: that read is a range
                self.assertNotIn("__ftsan_read_range", body, fn)
        self.assertIn("__ftsan_read_range", calls(function_body(text, "some")))
        # FTSAN_HOIST_LOOPS=0 keeps a call per access
        body = calls(function_body(ir(code, "-O2", self.work, env={"FTSAN_HOIST_LOOPS": "0"}), "fill"))
        self.assertNotIn("__ftsan_write_range", body)
        self.assertTrue([c for c in body if re.match(r"__ftsan_write\d", c)], body)

    def test_sync_calls_are_redirected(self):
        for opt in ("-O0", "-O2"):
            text = ir(SYNC, opt, self.work)
            for wrapper in ("__ftsan_PyCriticalSection_Begin", "__ftsan_PyCriticalSection_End",
                            "__ftsan_PyMutex_Lock", "__ftsan_PyMutex_Unlock",
                            "__ftsan_PyGILState_Ensure", "__ftsan_PyGILState_Release"):
                self.assertRegex(text, r"call \w+ @%s\(" % wrapper, opt)
            self.assertNotRegex(text, r"call \w+ @PyCriticalSection_Begin\(", opt)
            self.assertNotRegex(text, r"call \w+ @PyMutex_Lock\(", opt)

    def test_contention_only_build_keeps_refcount_events_and_redirects(self):
        code = REFCOUNT_ONLY + SYNC.replace("#include <Python.h>", "") + PLAIN
        src = os.path.join(self.work, "t.c")
        with open(src, "w") as f:
            f.write(code)
        out = os.path.join(self.work, "t.ll")
        env = dict(os.environ, FTSAN_INSTRUMENT="contention")
        subprocess.run([FTSAN_CC, "-O2", "-S", "-emit-llvm", "-I" + PY_INCLUDE, src, "-o", out],
                       check=True, env=env)
        with open(out) as f:
            text = f.read()
        found = set(calls(text))
        self.assertIn("__ftsan_refcount", found)
        self.assertIn("__ftsan_PyMutex_Lock", found)
        self.assertIn("__ftsan_init", text)
        self.assertEqual([c for c in found if re.match(r"__ftsan_(read|write|atomic|func)", c)], [])

    def test_refcount_events_name_the_caller(self):
        text = ir(REFCOUNT_ONLY, "-O2", self.work)
        for fn, kind in (("keep", 0), ("drop", 1), ("fresh", 0), ("xdrop", 1)):
            body = function_body(text, fn)
            self.assertRegex(body, r"call i32 @__ftsan_refcount\(ptr [^,]+, i32 %d\)" % kind, fn)

    def test_atomics_carry_their_memory_order(self):
        text = ir(ATOMICS, "-O2", self.work)
        descs = [int(d) for d in re.findall(r"call void @__ftsan_atomic_pre\(ptr [^,]+, i32 (\d+)\)", text)]
        # log2 size 3; (order << 4); (op << 8): store-release, load-acquire, rmw-seq_cst
        self.assertIn(3 | (3 << 4) | (1 << 8), descs)
        self.assertIn(3 | (2 << 4) | (0 << 8), descs)
        self.assertIn(3 | (5 << 4) | (2 << 8), descs)

    def test_pymutex_fast_paths_are_an_acquire_and_a_release(self):
        """The seq_cst compare-and-swaps of PyMutex_Lock/Unlock's inline fast paths: the lock's
        is instrumented as an acquire (a failed attempt releases nothing), the unlock's as a
        release."""
        code = ("#include <Python.h>\nstatic PyMutex m; long n;\n"
                "void f(void) { PyMutex_Lock(&m); n++; PyMutex_Unlock(&m); }\n")
        for opt in ("-O0", "-O2"):
            text = ir(code, opt, self.work)
            # a compare-and-swap's pre call also takes the value it expects
            descs = [int(d) for d in re.findall(r"call void @__ftsan_atomic_pre_cas\(ptr [^,]+, i32 (\d+), i64 [^)]+\)", text)]
            cas_acquire, cas_release = 0 | (2 << 4) | (3 << 8), 0 | (3 << 4) | (3 << 8)
            self.assertIn(cas_acquire, descs, opt)
            self.assertIn(cas_release, descs, opt)
            if opt == "-O2":
                self.assertEqual(sorted(descs), sorted([cas_acquire, cas_release]), descs)


if __name__ == "__main__":
    unittest.main(verbosity=2)
