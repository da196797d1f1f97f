"""End-to-end tests of contention analysis ('ftsan top') on scenarios with known answers
(testdata/contention): the extension is built with the real ftsan-cc and run with 4 threads
in the real free-threaded python under 'ftsan run --options mode=contention' (and once in
the default race mode, which records contention too)."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ftsan_testlib import FTSAN, PYTHON, TESTDATA, build_extension, ftsan_run, line_with, tempdir  # noqa: E402
import json  # noqa: E402

SRC = os.path.join(TESTDATA, "contention")
THREADS, N = 4, 20000


NEWREF_LINE = line_with(os.path.join(SRC, "contention_ext.c"), "return Py_NewRef(shared_config);")
CS_LINE = line_with(os.path.join(SRC, "contention_ext.c"), "Py_BEGIN_CRITICAL_SECTION(d);")
LOOP_LINE = line_with(os.path.join(SRC, "driver.py"), "for x in SHARED_FLOATS:")
IMPORT_LINE = line_with(os.path.join(SRC, "driver.py"), "import contention_ext")
FLOATS_LINE = line_with(os.path.join(SRC, "driver.py"), "SHARED_FLOATS = [")
PYLOCK_LINE = line_with(os.path.join(SRC, "driver.py"), "with PYLOCK:")


class Contention(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempdir()
        build_extension(os.path.join(SRC, "contention_ext.c"), cls.work, opt="-O2")
        cls.outs = {}
        for scenario in ("shared", "private", "pyshared", "dictlock", "immortal", "pylock"):
            out = os.path.join(cls.work, scenario)
            r = ftsan_run([PYTHON, os.path.join(SRC, "driver.py"), scenario], out,
                          env={"PYTHONPATH": cls.work}, run_options=("--mode", "contention"))
            assert r.returncode == 0, r.stderr
            cls.outs[scenario] = out

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def top(self, scenario, *args):
        r = subprocess.run([FTSAN, "top", "--format", "json", *args, self.outs[scenario]],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_module_global_object_is_ranked_first_with_its_c_line(self):
        rows = self.top("shared")["rows"]
        first = rows[0]
        self.assertEqual(first["type"], "list")
        self.assertEqual(first["threads"], THREADS)
        # every get_shared() call by a worker is a non-owner incref (the main thread owns it);
        # contention mode counts 1 in 17 operations of instrumented code, weighted by 17
        self.assertGreaterEqual(first["shared_ops"], 0.95 * THREADS * N)
        site = first["top_c_sites"][0]
        self.assertEqual(os.path.basename(site["file"]), "contention_ext.c")
        self.assertEqual(site["line"], NEWREF_LINE)
        self.assertEqual(site["function"], "get_shared")
        self.assertIn("not deferred", first["advice"])
        # created by the extension while it was imported: at the import statement
        self.assertEqual(os.path.basename(first["created_at"]["file"]), "driver.py")
        self.assertEqual(first["created_at"]["line"], IMPORT_LINE)

    def test_per_thread_objects_are_not_contended(self):
        rows = self.top("private", "--min-shared", "100")["rows"]
        refcount_rows = [r for r in rows if r["shared_ops"] >= 100]
        # only the threading module's own Barrier/Condition may show up, never the list
        self.assertEqual([r for r in refcount_rows if r["type"] == "list"], [])
        # the per-thread lists were touched: by their owners
        all_rows = self.top("private", "--min-shared", "0", "--limit", "100000")["rows"]
        owned = [r for r in all_rows if r["type"] == "list" and r["owner_ops"] >= 0.95 * N]
        self.assertEqual(len(owned), THREADS)
        for r in owned:
            self.assertEqual(r["shared_ops"], 0)
            self.assertEqual(r["threads"], 1)

    def test_pure_python_shared_items_name_the_python_loop_line(self):
        rows = self.top("pyshared", "--limit", "50")["rows"]
        floats = [r for r in rows if r["type"] == "float"]
        self.assertGreaterEqual(len(floats), 10)
        for r in floats[:10]:
            self.assertEqual(r["threads"], THREADS)
            sites = r["top_python_sites"]
            self.assertTrue(sites, r)
            self.assertEqual(os.path.basename(sites[0]["file"]), "driver.py")
            self.assertIn(sites[0]["line"], (LOOP_LINE, LOOP_LINE + 1))
            self.assertEqual(sites[0]["function"], "pyshared")
            self.assertEqual((r["created_at"]["line"], r["created_at"]["function"]), (FLOATS_LINE, "<module>"))

    def test_dict_under_critical_section_shows_lock_waits(self):
        rows = self.top("dictlock")["rows"]
        d = rows[0]
        self.assertEqual(d["type"], "dict")
        self.assertGreater(d["lock_waits"], 100)
        self.assertGreater(d["lock_wait_ns"], 0)
        self.assertIn(CS_LINE, [s["line"] for s in d["top_c_sites"]])
        self.assertIn("lock contended", d["advice"])
        # the section's slow path waits in _PyMutex_LockTimed, threading.Lock's path too: the
        # wait is the dict's, not also a separate lock's at its ob_mutex
        mutex = int(d["object"], 16) + 10
        all_rows = self.top("dictlock", "--limit", "100000", "--min-shared", "0")["rows"]
        self.assertEqual([r for r in all_rows if int(r["object"], 16) == mutex], [])

    def test_python_lock_wait_is_the_python_lines_not_the_last_c_call(self):
        rows = [r for r in self.top("pylock", "--limit", "50")["rows"] if r["lock_waits"] and r["type"] != "dict"]
        # no wait but the dict's is blamed on the extension (its critical section's end)
        for r in rows:
            self.assertEqual([s for s in r["top_c_sites"] if s["file"].endswith("contention_ext.c")], [], r)
        waits_here = [r for r in rows if r["top_python_sites"] and r["top_python_sites"][0]["line"] == PYLOCK_LINE]
        self.assertTrue(waits_here, rows)

    def test_immortal_objects_never_show_as_contended(self):
        rows = self.top("immortal", "--min-shared", "0", "--limit", "100000")["rows"]
        immortal = [r for r in rows if r["kind"] == "immortal"]
        types = {r["type"] for r in immortal}
        self.assertIn("NoneType", types)
        self.assertIn("int", types)
        for r in immortal:
            self.assertEqual(r["shared_ops"], 0)
            self.assertEqual(r["owner_ops"], 0)
            self.assertGreaterEqual(r["immortal_ops"], 1)
        contended = self.top("immortal")["rows"]
        self.assertEqual([r for r in contended if r["kind"] == "immortal"], [])

    def test_text_and_folded_output(self):
        r = subprocess.run([FTSAN, "top", self.outs["shared"]], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"1\s+list at 0x[0-9a-f]+\s+heap\s+\d+\s+0\s+4\s")
        self.assertIn("get_shared contention_ext.c:%d" % NEWREF_LINE, r.stdout)
        self.assertIn("created at: driver.py:%d (<module>)" % IMPORT_LINE, r.stdout)
        r = subprocess.run([FTSAN, "top", "--by", "type", self.outs["shared"]], capture_output=True, text=True)
        self.assertRegex(r.stdout, r"1\s+list\s")
        r = subprocess.run([FTSAN, "top", "--by", "site", self.outs["shared"]], capture_output=True, text=True)
        # the C line that increfs and the Python line whose interpreter decrefs rank on top
        top2 = "\n".join(l for l in r.stdout.splitlines() if l.strip().startswith(("1 ", "2 ")))
        self.assertIn("get_shared contention_ext.c:%d" % NEWREF_LINE, top2)
        self.assertIn("driver.py:", top2)
        r = subprocess.run([FTSAN, "top", "--format", "folded", self.outs["shared"]], capture_output=True, text=True)
        lines = [l for l in r.stdout.splitlines() if "get_shared" in l]
        self.assertTrue(lines)
        frames, count = lines[0].rsplit(" ", 1)
        self.assertGreaterEqual(int(count), 0.95 * THREADS * N)
        self.assertTrue(frames.startswith("get_shared (contention_ext.c:%d)" % NEWREF_LINE))
        self.assertIn(";list [shared refcount]", frames)

    def test_race_mode_records_contention_too(self):
        out = os.path.join(self.work, "race-mode")
        r = ftsan_run([PYTHON, os.path.join(SRC, "driver.py"), "shared"], out, env={"PYTHONPATH": self.work})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.outs["race-mode"] = out
        first = self.top("race-mode")["rows"][0]
        self.assertEqual(first["type"], "list")
        self.assertEqual(first["top_c_sites"][0]["line"], NEWREF_LINE)

    def test_contention_mode_skips_race_detection(self):
        # a racy extension gives no race report in contention mode, but its refcounts show
        out = os.path.join(self.work, "racy")
        racy = os.path.join(TESTDATA, "races", "static_counter", "static_counter_buggy.c")
        build_extension(racy, self.work)
        r = ftsan_run([PYTHON, os.path.join(TESTDATA, "races", "static_counter", "driver.py"),
                       "static_counter_buggy"], out, env={"PYTHONPATH": self.work},
                      run_options=("--mode", "contention"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 findings", r.stderr)

    def test_bad_options(self):
        r = subprocess.run([FTSAN, "run", "--mode", "fast", "--", "true"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([FTSAN, "top", "--by", "colour", self.outs["shared"]], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--by takes object, type or site", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
