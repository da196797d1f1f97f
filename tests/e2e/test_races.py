"""End-to-end race detection on the corpus in testdata/races: every buggy extension is
reported with the exact file:line of both racing accesses in at least 19 of 20 runs, and every
fixed twin gives zero findings in 20 of 20 runs. Extensions are built with the real ftsan-cc
and run in the real free-threaded python under 'ftsan run'.
FTSAN_TEST_RUNS overrides the number of runs (default 20)."""
import concurrent.futures
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ftsan_testlib import FTSAN, PYTHON, TESTDATA, build_extension, ftsan_run, report_json, tempdir  # noqa: E402

RUNS = int(os.environ.get("FTSAN_TEST_RUNS", "20"))
# Runs are independent processes: two at a time on the 2-core machines this runs on.
PARALLEL = int(os.environ.get("FTSAN_TEST_PARALLEL", "2"))
RACES = os.path.join(TESTDATA, "races")
CASES = sorted(d for d in os.listdir(RACES) if os.path.isdir(os.path.join(RACES, d)))


def marked_lines(path):
    with open(path) as f:
        return {i for i, line in enumerate(f, 1) if "/* ftsan: race */" in line}


def top_frame_in(access, filename):
    """The first frame of an access's stack that lies in the given source file."""
    for fr in access["stack"]:
        if os.path.basename(fr["file"]) == filename:
            return fr
    return None


class RaceCorpus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempdir()
        for case in CASES:
            for variant in ("buggy", "fixed"):
                build_extension(os.path.join(RACES, case, "%s_%s.c" % (case, variant)), cls.work)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def run_case(self, case, variant, i):
        out = os.path.join(self.work, "out-%s-%s-%d" % (case, variant, i))
        r = ftsan_run([PYTHON, os.path.join(RACES, case, "driver.py"), "%s_%s" % (case, variant)],
                      out, env={"PYTHONPATH": self.work})
        rep = report_json(out)
        shutil.rmtree(out, ignore_errors=True)
        return r, rep

    def check_buggy(self, case):
        src = "%s_buggy.c" % case
        marked = marked_lines(os.path.join(RACES, case, src))
        self.assertTrue(marked, "no markers in %s" % src)
        found = 0
        problems = []
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            results = list(pool.map(lambda i: self.run_case(case, "buggy", i), range(RUNS)))
        for i, (r, rep) in enumerate(results):
            self.assertIn(r.returncode, (0, 66), r.stderr)
            hit = False
            for f in rep["findings"]:
                self.assertEqual(f["kind"], "data-race")
                lines = []
                for acc in f["accesses"]:
                    fr = top_frame_in(acc, src)
                    lines.append(fr["line"] if fr else None)
                # precision: a report about this file names only marked lines
                for ln in lines:
                    if ln is not None and ln not in marked:
                        problems.append("run %d: unmarked line %s:%d" % (i, src, ln))
                if all(ln in marked for ln in lines):
                    hit = True
            if hit:
                found += 1
                self.assertEqual(r.returncode, 66, "findings but exit status %d" % r.returncode)
        self.assertEqual(problems, [])
        self.assertGreaterEqual(found, RUNS - RUNS // 20, "%s found in %d of %d runs" % (case, found, RUNS))

    def check_fixed(self, case):
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            results = list(pool.map(lambda i: self.run_case(case, "fixed", i), range(RUNS)))
        for i, (r, rep) in enumerate(results):
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(rep["findings"], [], "run %d of %s_fixed" % (i, case))
            self.assertFalse(rep["processes"][0]["gil_enabled"])


class ReportDetails(unittest.TestCase):
    """What a report says about the memory, and the options that change what is reported."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempdir()
        for case in ("static_counter", "type_fields", "malloc_reuse"):
            build_extension(os.path.join(RACES, case, "%s_buggy.c" % case), cls.work)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def run_buggy(self, case, name, run_options=(), env=None):
        out = os.path.join(self.work, name)
        e = {"PYTHONPATH": self.work}
        e.update(env or {})
        r = ftsan_run([PYTHON, os.path.join(RACES, case, "driver.py"), case + "_buggy"], out,
                      env=e, run_options=run_options)
        return r, out

    def test_static_variable_is_named(self):
        r, out = self.run_buggy("static_counter", "global")
        self.assertEqual(r.returncode, 66, r.stderr)
        f = report_json(out)["findings"][0]
        self.assertEqual(f["location"]["kind"], "global")
        self.assertEqual(f["location"]["name"], "counter")
        self.assertEqual(f["location"]["size"], 8)
        self.assertEqual(f["location"]["line"], 5)
        # both accesses are 8-byte, non-atomic, and at least one is a write
        self.assertTrue(any(a["write"] for a in f["accesses"]))
        for a in f["accesses"]:
            self.assertEqual(a["size"], 8)
            self.assertFalse(a["atomic"])
            self.assertEqual(a["stack"][0]["function"], "bump")
        self.assertNotEqual(f["accesses"][0]["thread"], f["accesses"][1]["thread"])
        # the racing threads were created by the main thread, and we know where, in C and
        # in Python, and what threading.Thread called them
        for a in f["accesses"]:
            self.assertRegex(a["thread_name"], r"^Thread-\d+ \(worker\)$")
        for th in f["threads"]:
            self.assertEqual(th["parent"], 0)
            self.assertEqual(th["created_at_python"][0]["function"], "Thread.start")
            self.assertEqual(os.path.basename(th["created_at_python"][-1]["file"]), "driver.py")
            self.assertTrue(any(fr["function"] == "PyThread_start_joinable_thread" for fr in th["created_at"]))
        # both accesses say which Python line called into the extension; the current one
        # has the whole Python stack, down to the thread's bootstrap in threading.py
        for a in f["accesses"]:
            self.assertEqual(os.path.basename(a["python_stack"][0]["file"]), "driver.py")
            self.assertEqual(a["python_stack"][0]["line"], 16)
            self.assertEqual(a["python_stack"][0]["function"], "worker")
        self.assertIn("threading.py", f["accesses"][0]["python_stack"][-1]["file"])
        # the current access has the full C stack, down into the interpreter
        self.assertTrue(f["accesses"][0]["stack_complete"])
        self.assertTrue(any("python3" in os.path.basename(fr["module"]) for fr in f["accesses"][0]["stack"]))

    def test_static_pointer_to_an_object_is_a_global_not_an_object(self):
        # the static holds a pointer to an object: the memory 24 bytes before it looks like
        # a PyObject header whose ob_type is that object, which is not a type
        src = os.path.join(TESTDATA, "location")
        build_extension(os.path.join(src, "static_object.c"), self.work)
        for i in range(3):
            out = os.path.join(self.work, "static_object%d" % i)
            r = ftsan_run([PYTHON, os.path.join(src, "driver.py")], out, env={"PYTHONPATH": self.work})
            self.assertEqual(r.returncode, 66, r.stderr)
            findings = report_json(out)["findings"]
            self.assertTrue(findings)
            for f in findings:
                self.assertEqual(f["location"]["kind"], "global", f["location"])
                self.assertEqual(f["location"]["name"], "last_seen")

    def test_python_object_field_is_described(self):
        r, out = self.run_buggy("type_fields", "object")
        self.assertEqual(r.returncode, 66, r.stderr)
        locs = [f["location"] for f in report_json(out)["findings"]]
        self.assertTrue(locs)
        for loc in locs:
            self.assertEqual(loc["kind"], "pyobject")
            self.assertEqual(loc["type"], "type_fields_buggy.Accum")
            self.assertGreaterEqual(loc["offset"], 32)  # past the PyObject header
            self.assertLess(loc["offset"], loc["basicsize"])

    def test_heap_block_is_described_with_its_allocation_stack(self):
        heap = None
        for i in range(5):  # the race on the block itself needs the two threads to meet
            r, out = self.run_buggy("malloc_reuse", "heap%d" % i)
            self.assertEqual(r.returncode, 66, r.stderr)
            locs = [f["location"] for f in report_json(out)["findings"] if f["location"]["kind"] == "heap"]
            if locs:
                heap = locs[0]
                break
        self.assertIsNotNone(heap, "no race on the heap block in 5 runs")
        self.assertEqual(heap["size"], 8)
        self.assertEqual(heap["offset"], 0)
        self.assertEqual(heap["allocated_at"][0]["function"], "give")
        self.assertEqual(heap["allocated_at"][0]["line"], 25)  # the malloc call

    def test_text_report_reads_like_tsan(self):
        r, out = self.run_buggy("static_counter", "text")
        rep = subprocess.run([FTSAN, "report", out], capture_output=True, text=True).stdout
        self.assertIn("WARNING: ftsan: data race", rep)
        self.assertRegex(rep, r"(Read|Write) of size 8 at 0x[0-9a-f]+ by thread T\d+ 'Thread-\d+ \(worker\)':")
        self.assertRegex(rep, r"Previous (read|write) of size 8 at 0x[0-9a-f]+ by thread T\d+ 'Thread-\d+ \(worker\)':")
        self.assertRegex(rep, r"Python stack:\n      #0 worker \S*driver\.py:16")
        self.assertRegex(rep, r"#0 bump \S*static_counter_buggy\.c:10 ")
        self.assertIn("Location is global 'counter' of size 8", rep)
        self.assertRegex(rep, r"Thread T\d+ 'Thread-\d+ \(worker\)' \(tid=\d+\) created by thread T0 at:")
        self.assertIn("SUMMARY: ftsan: data race static_counter_buggy.c:10 in bump", rep)

    def test_halt_on_error_stops_at_the_first_race(self):
        r, out = self.run_buggy("static_counter", "halt", run_options=("--options", "halt_on_error=1:exitcode=23"))
        self.assertEqual(r.returncode, 23, r.stderr)
        rep = report_json(out)
        self.assertEqual(len(rep["findings"]), 1)
        self.assertTrue(rep["processes"][0]["complete"])

    def test_suppressions_hide_findings_and_the_exit_status(self):
        supp = os.path.join(self.work, "supp.txt")
        with open(supp, "w") as f:
            f.write("# the counter is only statistics\nrace:static_counter_buggy.c\n")
        r, out = self.run_buggy("static_counter", "supp", run_options=("--suppressions", supp))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 findings", r.stderr)
        rep = report_json(out, "--suppressions", supp)
        self.assertEqual(rep["findings"], [])
        self.assertGreater(rep["suppressed"], 0)
        self.assertGreater(len(report_json(out)["findings"]), 0)  # without them: still there
        with open(supp, "w") as f:
            f.write("race_top:some_other_function\n")
        self.assertGreater(len(report_json(out, "--suppressions", supp)["findings"]), 0)
        with open(supp, "w") as f:
            f.write("bogus:pattern\n")
        r = subprocess.run([FTSAN, "report", "--suppressions", supp, out], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown suppression type", r.stderr)


def make_tests():
    for case in CASES:
        setattr(RaceCorpus, "test_%s_buggy_is_found" % case, lambda self, c=case: self.check_buggy(c))
        setattr(RaceCorpus, "test_%s_fixed_is_clean" % case, lambda self, c=case: self.check_fixed(c))


make_tests()

if __name__ == "__main__":
    unittest.main(verbosity=2)
