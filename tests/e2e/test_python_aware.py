"""End-to-end tests of the Python-aware findings: an import that enables the GIL is a finding
of its own (module, file, the Python line that imported it) and every race report of that
process says races may be hidden; races on data guarded only by PyGILState_Ensure/Release
say so."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ftsan_testlib import (FTSAN, PYTHON, TESTDATA, build_extension, ftsan_run, line_with,  # noqa: E402
                           report_json, tempdir)

GIL = os.path.join(TESTDATA, "gil")
RACES = os.path.join(TESTDATA, "races")


class GilEnabled(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempdir()
        for v in ("required", "declared"):
            build_extension(os.path.join(GIL, "gil_%s.c" % v), cls.work)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def run_driver(self, module):
        out = os.path.join(self.work, module)
        r = ftsan_run([PYTHON, os.path.join(GIL, "driver.py"), module], out, env={"PYTHONPATH": self.work})
        return r, out

    def test_import_without_py_mod_gil_is_a_finding(self):
        r, out = self.run_driver("gil_required")
        self.assertEqual(r.returncode, 66, r.stderr)
        self.assertIn("gil_enabled=True", r.stdout)
        self.assertIn("importing module 'gil_required' enabled the GIL", r.stderr)
        self.assertIn("the GIL was enabled during the run", r.stderr)
        rep = report_json(out)
        self.assertEqual(len(rep["findings"]), 1)
        f = rep["findings"][0]
        self.assertEqual(f["kind"], "gil-enabled")
        self.assertEqual(f["module"], "gil_required")
        self.assertTrue(os.path.basename(f["file"]).startswith("gil_required."), f["file"])
        user = [fr for fr in f["python_stack"] if os.path.basename(fr["file"]) == "driver.py"]
        self.assertEqual((user[0]["function"], user[0]["line"]), ("load", 7))
        self.assertTrue(rep["processes"][0]["gil_enabled"])
        text = subprocess.run([FTSAN, "report", out], capture_output=True, text=True).stdout
        self.assertIn("WARNING: ftsan: the GIL was enabled", text)
        self.assertIn("SUMMARY: ftsan: gil-enabled module 'gil_required' imported at driver.py:7", text)
        self.assertIn("GIL ENABLED (races may be hidden)", text)

    def test_import_failing_on_the_gil_warning_keeps_its_exception(self):
        # with warnings as errors the import itself fails with the RuntimeWarning; the
        # runtime's hook on that path must not swallow or replace the exception
        code = ("try:\n    import gil_required\n"
                "except RuntimeWarning as e:\n    print('raised', type(e).__name__, 'GIL' in str(e))\n")
        out = os.path.join(self.work, "werror")
        r = ftsan_run([PYTHON, "-W", "error::RuntimeWarning", "-c", code], out, env={"PYTHONPATH": self.work})
        self.assertIn("raised RuntimeWarning True", r.stdout, r.stderr)
        self.assertNotIn("SystemError", r.stderr)

    def test_module_declaring_py_mod_gil_is_clean(self):
        r, out = self.run_driver("gil_declared")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("gil_enabled=False", r.stdout)
        rep = report_json(out)
        self.assertEqual(rep["findings"], [])
        self.assertFalse(rep["processes"][0]["gil_enabled"])

    def test_races_after_the_gil_was_enabled_carry_a_note(self):
        # PYTHON_GIL=0 is not set: a racy module imported after gil_required runs with the
        # GIL and may or may not race; whatever it reports must carry the note.
        build_extension(os.path.join(RACES, "static_counter", "static_counter_buggy.c"), self.work)
        out = os.path.join(self.work, "both")
        code = ("import gil_required, threading, static_counter_buggy as m\n"
                "ts = [threading.Thread(target=lambda: [m.bump() for _ in range(20000)]) for _ in range(4)]\n"
                "[t.start() for t in ts]; [t.join() for t in ts]\n")
        r = ftsan_run([PYTHON, "-c", code], out, env={"PYTHONPATH": self.work})
        self.assertEqual(r.returncode, 66, r.stderr)
        rep = report_json(out)
        races = [f for f in rep["findings"] if f["kind"] == "data-race"]
        for f in races:
            self.assertTrue(f["gil_enabled_in_process"])


class GilStateAsMutex(unittest.TestCase):
    def test_race_under_gilstate_says_it_is_not_a_lock(self):
        work = tempdir()
        try:
            case = "gilstate_mutex"
            build_extension(os.path.join(RACES, case, case + "_buggy.c"), work)
            out = os.path.join(work, "out")
            r = ftsan_run([PYTHON, os.path.join(RACES, case, "driver.py"), case + "_buggy"], out,
                          env={"PYTHONPATH": work})
            self.assertEqual(r.returncode, 66, r.stderr)
            rep = report_json(out)
            self.assertTrue(rep["findings"])
            for f in rep["findings"]:
                self.assertTrue(f["guarded_only_by_gilstate"], f["accesses"][0]["stack"][0])
                self.assertTrue(all(a["gilstate"] for a in f["accesses"]))
            text = subprocess.run([FTSAN, "report", out], capture_output=True, text=True).stdout
            self.assertIn("made between PyGILState_Ensure and PyGILState_Release", text)
            # the fixed twin (a PyMutex inside the same GILState calls) is clean
            build_extension(os.path.join(RACES, case, case + "_fixed.c"), work)
            out = os.path.join(work, "fixed")
            r = ftsan_run([PYTHON, os.path.join(RACES, case, "driver.py"), case + "_fixed"], out,
                          env={"PYTHONPATH": work})
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)


BORROW = os.path.join(TESTDATA, "borrow")


# case: (driver, C function, borrowing API, its fix, type of the freed object, the text on
# the driver line where the writer drops the last reference)
BORROW_CASES = {
    "list": ("driver.py", "first_size", "PyList_GetItem", "PyList_GetItemRef", "bytes", "a replacement"),
    "dict": ("driver.py", "value_size", "PyDict_GetItemWithError", "PyDict_GetItemRef", "bytes", "a deletion"),
    "weakref": ("driver_weakref.py", "referent_size", "PyWeakref_GetObject", "PyWeakref_GetRef", "set",
                "freed here"),
}


class BorrowedReferences(unittest.TestCase):
    """A borrowed reference (PyList_GetItem, PyDict_GetItemWithError, PyWeakref_GetObject)
    used after another thread dropped the object's last reference is a use-after-free naming
    the borrowing call, the free (thread, C and Python stacks) and the fix; the twins that
    take a strong reference are clean."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempdir()
        for case in BORROW_CASES:
            for v in ("buggy", "fixed"):
                build_extension(os.path.join(BORROW, "borrow_%s_%s.c" % (case, v)), cls.work)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def run_driver(self, case, variant, i):
        module = "borrow_%s_%s" % (case, variant)
        out = os.path.join(self.work, "%s-%d" % (module, i))
        r = ftsan_run([PYTHON, os.path.join(BORROW, BORROW_CASES[case][0]), module], out,
                      env={"PYTHONPATH": self.work})
        return r, report_json(out), out

    def check_buggy(self, case):
        driver, func, api, fix, tname, free_text = BORROW_CASES[case]
        src = os.path.join(BORROW, "borrow_%s_buggy.c" % case)
        use_line = line_with(src, "ftsan: use-after-free")
        borrow_line = line_with(src, "/* borrowed")
        free_line = line_with(os.path.join(BORROW, driver), free_text)
        for i in range(3):
            r, rep, out = self.run_driver(case, "buggy", i)
            self.assertEqual(r.returncode, 66, r.stderr)
            self.assertEqual([f["kind"] for f in rep["findings"]], ["use-after-free"])
            f = rep["findings"][0]
            use, free = f["accesses"]
            user = [fr for fr in use["stack"] if fr["function"] == func][0]
            self.assertEqual(user["line"], use_line)
            self.assertEqual(use["thread_name"], "reader")
            self.assertEqual(use["python_stack"][0]["function"], "reader")
            self.assertEqual(free["thread_name"], "writer")
            self.assertEqual((free["python_stack"][0]["function"], free["python_stack"][0]["line"]),
                             ("writer", free_line))
            self.assertEqual(f["borrowed_from"]["api"], api)
            self.assertEqual(f["borrowed_from"]["fix"], fix)
            self.assertEqual(f["borrowed_from"]["stack"][0]["line"], borrow_line)
            self.assertEqual(f["location"]["type"], tname)
        text = subprocess.run([FTSAN, "report", out], capture_output=True, text=True).stdout
        self.assertIn("use-after-free of a borrowed reference", text)
        self.assertIn("SUMMARY: ftsan: use-after-free borrow_%s_buggy.c:%d in %s" % (case, use_line, func), text)

    def check_fixed(self, case):
        for i in range(3):
            r, rep, _ = self.run_driver(case, "fixed", i)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(rep["findings"], [])


for _case in BORROW_CASES:
    setattr(BorrowedReferences, "test_%s_buggy_is_reported" % _case, lambda self, c=_case: self.check_buggy(c))
    setattr(BorrowedReferences, "test_%s_fixed_is_clean" % _case, lambda self, c=_case: self.check_fixed(c))


class DictIteration(unittest.TestCase):
    """PyDict_Next without a critical section while another thread inserts and deletes keys
    is reported even when nothing is freed; with Py_BEGIN_CRITICAL_SECTION it is clean."""

    def test_iteration_during_mutation(self):
        work = tempdir()
        self.addCleanup(shutil.rmtree, work, True)
        src = os.path.join(TESTDATA, "iterate")
        for v in ("buggy", "fixed"):
            build_extension(os.path.join(src, "dict_next_%s.c" % v), work)
        read_line = line_with(os.path.join(src, "dict_next_buggy.c"), "ftsan: race")
        for i in range(3):
            out = os.path.join(work, "buggy%d" % i)
            r = ftsan_run([PYTHON, os.path.join(src, "driver.py"), "dict_next_buggy"], out, env={"PYTHONPATH": work})
            self.assertEqual(r.returncode, 66, r.stderr)
            rep = report_json(out)
            self.assertTrue(rep["findings"])
            for f in rep["findings"]:
                self.assertEqual(f["kind"], "data-race")
                self.assertEqual(f["location"]["type"], "dict")
                self.assertEqual(f["location"]["what"], "dict contents: PyDict_Next during a mutation")
                lines = [a["stack"][0]["line"] for a in f["accesses"]
                         if os.path.basename(a["stack"][0]["file"]) == "dict_next_buggy.c"]
                self.assertEqual(lines, [read_line])
                writer = [a for a in f["accesses"] if a["write"]][0]
                self.assertEqual(writer["python_stack"][0]["function"], "writer")
            out = os.path.join(work, "fixed%d" % i)
            r = ftsan_run([PYTHON, os.path.join(src, "driver.py"), "dict_next_fixed"], out, env={"PYTHONPATH": work})
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(report_json(out)["findings"], [])


class ListIteration(unittest.TestCase):
    """PyList_GET_ITEM and PySequence_Fast_ITEMS loops without a critical section while
    another thread appends and pops are reported even when nothing is freed (both loops,
    each against the writer's Python line); with Py_BEGIN_CRITICAL_SECTION it is clean."""

    def test_iteration_during_mutation(self):
        work = tempdir()
        self.addCleanup(shutil.rmtree, work, True)
        src = os.path.join(TESTDATA, "iterate")
        for v in ("buggy", "fixed"):
            build_extension(os.path.join(src, "list_items_%s.c" % v), work)
        buggy_src = os.path.join(src, "list_items_buggy.c")
        read_lines = {line_with(buggy_src, "ftsan: race */"), line_with(buggy_src, "ftsan: race-fast")}
        driver = os.path.join(src, "list_driver.py")
        writer_lines = {line_with(driver, "shared.append("), line_with(driver, "shared.pop(")}
        for i in range(3):
            out = os.path.join(work, "buggy%d" % i)
            r = ftsan_run([PYTHON, driver, "list_items_buggy"], out, env={"PYTHONPATH": work})
            self.assertEqual(r.returncode, 66, r.stderr)
            rep = report_json(out)
            seen = set()
            for f in rep["findings"]:
                self.assertEqual(f["kind"], "data-race")
                self.assertEqual(f["location"]["type"], "list")
                self.assertEqual(f["location"]["what"], "list items: PyList_GET_ITEM during a mutation")
                reader = [a for a in f["accesses"] if not a["write"]][0]
                self.assertEqual(os.path.basename(reader["stack"][0]["file"]), "list_items_buggy.c")
                seen.add(reader["stack"][0]["line"])
                self.assertEqual(reader["python_stack"][0]["function"], "reader")
                writer = [a for a in f["accesses"] if a["write"]][0]
                self.assertEqual(writer["python_stack"][0]["function"], "writer")
                self.assertIn(writer["python_stack"][0]["line"], writer_lines)
            self.assertEqual(seen, read_lines)
            out = os.path.join(work, "fixed%d" % i)
            r = ftsan_run([PYTHON, driver, "list_items_fixed"], out, env={"PYTHONPATH": work})
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(report_json(out)["findings"], [])


class CriticalSectionInterrupted(unittest.TestCase):
    """A loop over a list inside Py_BEGIN_CRITICAL_SECTION whose body blocks (the section is
    suspended) while another thread changes the list: reported as an interrupted critical
    section at the loop's read, with the change as the previous access; iterating a copy is
    clean."""

    def test_blocking_inside_the_section(self):
        work = tempdir()
        self.addCleanup(shutil.rmtree, work, True)
        src = os.path.join(TESTDATA, "iterate")
        for v in ("buggy", "fixed"):
            build_extension(os.path.join(src, "suspend_%s.c" % v), work)
        read_line = line_with(os.path.join(src, "suspend_buggy.c"), "ftsan: interrupted")
        block_line = line_with(os.path.join(src, "suspend_buggy.c"), "may block")
        driver = os.path.join(src, "suspend_driver.py")
        writer_lines = {line_with(driver, "shared.append("), line_with(driver, "shared.pop(")}
        for i in range(3):
            out = os.path.join(work, "buggy%d" % i)
            r = ftsan_run([PYTHON, driver, "suspend_buggy"], out, env={"PYTHONPATH": work})
            self.assertEqual(r.returncode, 66, r.stderr)
            rep = report_json(out)
            self.assertTrue(rep["findings"])
            for f in rep["findings"]:
                self.assertEqual(f["kind"], "critical-section-interrupted")
                self.assertEqual(f["location"]["type"], "list")
                reader, writer = f["accesses"]
                self.assertFalse(reader["write"])
                self.assertEqual(os.path.basename(reader["stack"][0]["file"]), "suspend_buggy.c")
                self.assertEqual(reader["stack"][0]["line"], read_line)
                self.assertEqual(reader["python_stack"][0]["function"], "reader")
                self.assertTrue(writer["write"])
                self.assertEqual(writer["python_stack"][0]["function"], "writer")
                self.assertIn(writer["python_stack"][0]["line"], writer_lines)
                # where the section was suspended: the blocking call inside it
                frames = [(fr["function"], fr["line"]) for fr in f["suspended_at"]["stack"]]
                self.assertIn(("apply_all", block_line), frames)
                # the callback blocks in Event.wait: a threading.Lock acquisition
                self.assertIn("lock_PyThread_acquire_lock", [fn for fn, _ in frames])
            text = subprocess.run([FTSAN, "report", out], capture_output=True, text=True).stdout
            self.assertIn("WARNING: ftsan: critical section interrupted", text)
            self.assertIn("suspended the section", text)
            out = os.path.join(work, "fixed%d" % i)
            r = ftsan_run([PYTHON, driver, "suspend_fixed"], out, env={"PYTHONPATH": work})
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(report_json(out)["findings"], [])


class TestSuites(unittest.TestCase):
    """A test suite run under ftsan: the Python stacks name the test functions. Debian's
    pure-Python pytest (python3-pytest, installed by the set-up) runs on python3.13t when its
    directory is on the path; unittest works too."""

    def run_suite(self, args):
        work = tempdir()
        self.addCleanup(shutil.rmtree, work, True)
        build_extension(os.path.join(RACES, "static_counter", "static_counter_buggy.c"), work)
        out = os.path.join(work, "out")
        env = {"PYTHONPATH": os.pathsep.join([work, os.path.join(TESTDATA, "suite"),
                                              "/usr/lib/python3/dist-packages"])}
        r = ftsan_run([PYTHON, "-m", *args], out, env=env)
        return r, report_json(out)

    def assert_test_named(self, rep, test):
        self.assertTrue(rep["findings"])
        names = {fr["function"] for f in rep["findings"] for a in f["accesses"]
                 for fr in a["python_stack"]}
        self.assertIn("hammer.<locals>.work", names)
        # the thread that raced was started from the test function
        started = {fr["function"] for f in rep["findings"] for th in f["threads"]
                   for fr in th["created_at_python"]}
        self.assertIn(test, started)

    def test_pytest(self):
        r, rep = self.run_suite(["pytest", "-q", "-p", "no:cacheprovider", "-k", "test_counter_from_threads",
                                 os.path.join(TESTDATA, "suite", "test_counter.py")])
        self.assertEqual(r.returncode, 66, r.stdout + r.stderr)
        self.assertIn("1 passed", r.stdout)
        self.assert_test_named(rep, "test_counter_from_threads")

    def test_unittest(self):
        r, rep = self.run_suite(["unittest", "test_counter.CounterTests"])
        self.assertEqual(r.returncode, 66, r.stdout + r.stderr)
        self.assert_test_named(rep, "CounterTests.test_counter_unittest")


if __name__ == "__main__":
    unittest.main(verbosity=2)
