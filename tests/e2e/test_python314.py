"""Python 3.14 frame reading on a real CPython 3.14 (Debian unstable's build, fetched by
scripts/fetch-python314.sh, which `make test` runs). It is a GIL build: Debian builds no
free-threaded 3.14. The debug-offset positions, _PyStackRef executables and locals, the
interpreter's own entry frames and the code objects' line tables are the same in both
builds; per-thread bytecode copies (free-threaded only) are covered by the unit tests."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ftsan_testlib import FTSAN_CC, TESTDATA, ftsan_run, line_with, report_json, tempdir  # noqa: E402

SRC = os.path.join(TESTDATA, "py314")


class Python314Frames(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(os.environ["FTSAN_BUILD"], "python314-dir")) as f:
            d = f.read().strip()
        assert os.path.exists(os.path.join(d, "ready")), "scripts/fetch-python314.sh did not finish: " + d
        root = os.path.join(d, "root")
        with open(os.path.join(d, "library-path")) as f:
            libpath = f.read().strip()
        cls.env = {"PYTHONHOME": os.path.join(root, "usr")}
        cls.python = [os.path.join(root, "usr", "lib64", "ld-linux-x86-64.so.2"), "--library-path",
                      libpath, os.path.join(root, "usr", "bin", "python3.14")]
        suffix = subprocess.run(cls.python + ["-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
                                env=dict(os.environ, **cls.env), capture_output=True, text=True, check=True).stdout.strip()
        cls.work = tempdir()
        inc = os.path.join(root, "usr", "include")
        subprocess.run([FTSAN_CC, "-shared", "-fPIC", "-O1", "-I" + os.path.join(inc, "python3.14"), "-I" + inc,
                        os.path.join(SRC, "nogil_counter.c"), "-o", os.path.join(cls.work, "nogil_counter" + suffix)],
                       check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_python_stacks_and_thread_names_on_3_14(self):
        driver = os.path.join(SRC, "driver.py")
        out = os.path.join(self.work, "out")
        r = ftsan_run(self.python + [driver], out, env=dict(self.env, PYTHONPATH=self.work))
        self.assertEqual(r.returncode, 66, r.stderr)
        self.assertNotIn("not attributed", r.stderr)  # the 3.14 layout was recognised
        rep = report_json(out)
        self.assertTrue(rep["processes"][0]["python_version"].startswith("3.14."), rep["processes"][0])
        self.assertTrue(rep["findings"])
        worker_line = line_with(driver, "the Python line of each access")
        start_line = line_with(driver, "where each thread was started")
        module_line = line_with(driver, "the module-level caller")
        race_line = line_with(os.path.join(SRC, "nogil_counter.c"), "ftsan: race")
        for f in rep["findings"]:
            self.assertEqual(f["kind"], "data-race")
            self.assertEqual(f["location"]["name"], "counter")
            for a in f["accesses"]:
                self.assertEqual(a["stack"][0]["line"], race_line)
                self.assertRegex(a["thread_name"], r"^bumper-\d$")  # Thread.start's self, a _PyStackRef
            # the previous access: the Python line that called into C, from the thread's history
            prev = f["accesses"][1]["python_stack"]
            self.assertEqual((prev[0]["function"], prev[0]["line"]), ("worker", worker_line))
            for th in f["threads"]:
                py = [(fr["function"], os.path.basename(fr["file"]), fr["line"]) for fr in th["created_at_python"]]
                self.assertEqual(py[0][:2], ("Thread.start", "threading.py"))
                self.assertEqual(py[1:], [("start_all", "driver.py", start_line), ("<module>", "driver.py", module_line)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
