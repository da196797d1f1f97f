"""End-to-end tests of the foundation: a real extension built with ftsan-cc runs in the real
free-threaded python under 'ftsan run'; the trace is read back with 'ftsan report'."""
import os
import shutil
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from ftsan_testlib import (EXT_SUFFIX, FTSAN, FTSAN_CC, PY_INCLUDE, PYTHON, TESTDATA,  # noqa: E402
                           build_extension, ftsan_run, report_json, tempdir)


class Foundation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempdir()
        build_extension(os.path.join(TESTDATA, "basic", "basic_ext.c"), cls.work)
        cls.out = os.path.join(cls.work, "out")
        cls.run_result = ftsan_run([PYTHON, os.path.join(TESTDATA, "basic", "driver.py")], cls.out,
                                   env={"PYTHONPATH": cls.work}, run_options=("--options", "stats=1"))
        cls.report = report_json(cls.out)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_command_succeeds_with_gil_disabled(self):
        r = self.run_result
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("gil_enabled=False", r.stdout)
        self.assertIn("0 findings in 1 process", r.stderr)

    def test_trace_describes_the_process(self):
        procs = self.report["processes"]
        self.assertEqual(len(procs), 1)
        p = procs[0]
        self.assertTrue(p["complete"])
        self.assertTrue(p["free_threaded"])
        self.assertFalse(p["gil_enabled"])
        self.assertRegex(p["python_version"], r"^3\.1[34]\.")
        self.assertIn("driver.py", p["command"])
        self.assertGreaterEqual(p["threads"], 5)  # main + 4 workers
        self.assertEqual(len(p["instrumented_modules"]), 1)
        self.assertTrue(p["instrumented_modules"][0].endswith(".so"))
        self.assertIn("basic_ext", p["instrumented_modules"][0])

    def test_instrumented_function_events_were_recorded(self):
        fns = {f["function"]: f for f in self.report["processes"][0]["functions"]}
        cs = fns["checksum"]
        self.assertEqual(cs["calls"], 4 * 250)
        self.assertEqual(cs["threads"], 4)
        self.assertGreater(cs["reads"], 0)
        self.assertEqual(os.path.basename(cs["file"]), "basic_ext.c")
        self.assertEqual(cs["line"], 11)  # the line of checksum's definition
        # the PyMutex fast path is an inline compare-and-swap: seen as atomics
        self.assertGreaterEqual(cs["atomics"], 2 * 4 * 250)
        # the critical section goes through the redirected C-API wrapper
        self.assertGreaterEqual(fns["append_locked"]["sync"], 2 * 4 * 250)

    def test_text_report(self):
        r = subprocess.run([FTSAN, "report", "--stats", self.out], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("free-threaded, GIL disabled", r.stdout)
        self.assertRegex(r.stdout, r"checksum\s+basic_ext\.c:11\s+1000\s")


class RunCommand(unittest.TestCase):
    def setUp(self):
        self.work = tempdir()

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def test_exit_status_is_the_commands(self):
        r = ftsan_run([PYTHON, "-c", "import sys; sys.exit(7)"], os.path.join(self.work, "o"))
        self.assertEqual(r.returncode, 7)

    def test_signal_death_maps_to_128_plus_signal(self):
        r = ftsan_run([PYTHON, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
                      os.path.join(self.work, "o"))
        self.assertEqual(r.returncode, 128 + 9)
        rep = report_json(os.path.join(self.work, "o"))
        self.assertFalse(rep["processes"][0]["complete"])
        text = subprocess.run([FTSAN, "report", os.path.join(self.work, "o")], capture_output=True, text=True).stdout
        self.assertIn("trace TRUNCATED", text)
        self.assertIn("finished before the trace ended", text)  # the main thread never did

    def test_crash_leaves_a_readable_trace(self):
        r = ftsan_run([PYTHON, "-c", "import ctypes; ctypes.string_at(0)"], os.path.join(self.work, "o"))
        self.assertEqual(r.returncode, 128 + 11)
        rep = report_json(os.path.join(self.work, "o"))
        self.assertEqual(len(rep["processes"]), 1)
        self.assertFalse(rep["processes"][0]["complete"])

    def test_forked_child_writes_its_own_trace(self):
        code = "import os\npid = os.fork()\nif pid == 0: os._exit(0)\nos.waitpid(pid, 0)\n"
        r = ftsan_run([PYTHON, "-c", code], os.path.join(self.work, "o"))
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = report_json(os.path.join(self.work, "o"))
        self.assertEqual(len(rep["processes"]), 2)
        self.assertTrue(all(p["complete"] for p in rep["processes"]))

    def test_failed_exec_in_a_vfork_child_leaves_the_parent_trace_alone(self):
        # subprocess's child is a vfork child sharing the parent's memory; a failed exec
        # makes it call _exit, which must not end the parent's trace
        code = ("import subprocess\n"
                "for _ in range(3):\n"
                "    try:\n"
                "        subprocess.run(['/nonexistent/program'])\n"
                "    except FileNotFoundError:\n"
                "        pass\n"
                "subprocess.run(['true'], check=True)\n")
        r = ftsan_run([PYTHON, "-c", code], os.path.join(self.work, "o"))
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = report_json(os.path.join(self.work, "o"))
        pythons = [p for p in rep["processes"] if "subprocess" in p["command"]]
        self.assertEqual(len(pythons), 1)
        self.assertTrue(pythons[0]["complete"])
        # 'true' ran with the runtime preloaded too, and ended its own trace
        self.assertTrue(all(p["complete"] for p in rep["processes"]))

    def test_fork_while_threads_run_instrumented_code(self):
        # The child inherits the runtime's locks in whatever state the other threads left
        # them; it must not hang, and both traces must be complete.
        build_extension(os.path.join(TESTDATA, "basic", "basic_ext.c"), self.work)
        code = ("import os, threading, basic_ext\n"
                "stop = False\n"
                "lst = []\n"
                "def spin():\n"
                "    while not stop:\n"
                "        basic_ext.checksum(b'x' * 64); basic_ext.append_locked(lst, 1)\n"
                "        if len(lst) > 1000: lst.clear()\n"
                "ts = [threading.Thread(target=spin) for _ in range(3)]\n"
                "[t.start() for t in ts]\n"
                "for _ in range(5):\n"
                "    pid = os.fork()\n"
                "    if pid == 0:\n"
                "        basic_ext.checksum(b'child'); basic_ext.append_locked([], 1)\n"
                "        os._exit(0)\n"
                "    os.waitpid(pid, 0)\n"
                "stop = True\n"
                "[t.join() for t in ts]\n")
        out = os.path.join(self.work, "o")
        r = subprocess.run([FTSAN, "run", "--out", out, "--", PYTHON, "-c", code],
                           env=dict(os.environ, PYTHONPATH=self.work), capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = report_json(out)
        self.assertEqual(len(rep["processes"]), 6)
        self.assertTrue(all(p["complete"] for p in rep["processes"]))
        self.assertEqual(rep["findings"], [])

    def test_missing_program_is_a_clear_error(self):
        r = ftsan_run(["/nonexistent/python3.13t"], os.path.join(self.work, "o"))
        self.assertEqual(r.returncode, 127)
        self.assertIn("cannot execute /nonexistent/python3.13t", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)

    def test_no_command_and_bad_options(self):
        r = subprocess.run([FTSAN, "run"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no command given", r.stderr)
        r = subprocess.run([FTSAN, "run", "--bogus", "--", "true"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([FTSAN, "frobnicate"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command", r.stderr)

    def test_help_and_version(self):
        r = subprocess.run([FTSAN, "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("ftsan run", r.stdout + subprocess.run([FTSAN, "run", "--help"], capture_output=True, text=True).stdout)
        r = subprocess.run([FTSAN, "--version"], capture_output=True, text=True)
        self.assertRegex(r.stdout, r"^ftsan \d+\.\d+\.\d+")

    def test_bad_traces_give_one_line_errors(self):
        d = os.path.join(self.work, "bad")
        os.makedirs(d)
        cases = {
            "garbage": (b"\x00" * 100, "bad magic"),
            "truncated-header": (b"FTSANTRC\x01\x00", "truncated trace header"),
            "future-major": (b"FTSANTRC" + struct.pack("<HHBBHIIQ", 99, 0, 8, 1, 32, 1, 1, 0), "not supported"),
        }
        for name, (data, msg) in cases.items():
            p = os.path.join(d, "ftsan.%s.trace" % name)
            with open(p, "wb") as f:
                f.write(data)
            r = subprocess.run([FTSAN, "report", p], capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0, name)
            self.assertLess(r.returncode, 128, name)  # an error, not a crash
            self.assertIn(msg, r.stderr, name)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, name)
        r = subprocess.run([FTSAN, "report", os.path.join(self.work, "empty-dir-missing")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)

    def test_abi_mismatch_warns_and_turns_analysis_off(self):
        src = os.path.join(self.work, "oldabi.c")
        with open(src, "w") as f:
            f.write('#include <Python.h>\n#include <stdint.h>\nvoid __ftsan_init(uint32_t);\n'
                    '__attribute__((constructor)) static void old(void) { __ftsan_init(999); }\n'
                    'static PyModuleDef_Slot slots[] = {{Py_mod_gil, Py_MOD_GIL_NOT_USED}, {0, NULL}};\n'
                    'static struct PyModuleDef d = {PyModuleDef_HEAD_INIT, "oldabi", NULL, 0, NULL, slots};\n'
                    'PyMODINIT_FUNC PyInit_oldabi(void) { return PyModuleDef_Init(&d); }\n')
        build_extension(src, self.work)
        r = ftsan_run([PYTHON, "-c", "import oldabi; print('alive')"], os.path.join(self.work, "o"),
                      env={"PYTHONPATH": self.work})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("alive", r.stdout)
        self.assertIn("speaks runtime ABI 999", r.stderr)
        self.assertEqual(r.stderr.count("speaks runtime ABI"), 1)


class Install(unittest.TestCase):
    """cmake --install gives a working tree: bin/, lib/ftsan/, share/ftsan/."""

    def test_installed_tools_find_each_other(self):
        work = tempdir()
        try:
            prefix = os.path.join(work, "prefix")
            subprocess.run(["cmake", "--install", os.environ["FTSAN_BUILD"], "--prefix", prefix],
                           check=True, capture_output=True)
            for f in ("bin/ftsan", "bin/ftsan-cc", "bin/ftsan-c++", "lib/ftsan/libftsan-rt.so",
                      "lib/ftsan/ftsan-pass.so", "share/ftsan/README.md",
                      "share/ftsan/docs/report-format.md", "share/ftsan/include/ftsan_abi.h"):
                self.assertTrue(os.path.exists(os.path.join(prefix, f)), f)
            cc = os.path.join(prefix, "bin", "ftsan-cc")
            so = os.path.join(work, "basic_ext" + EXT_SUFFIX)
            subprocess.run([cc, "-shared", "-fPIC", "-O1", "-I" + PY_INCLUDE,
                            os.path.join(TESTDATA, "basic", "basic_ext.c"), "-o", so], check=True)
            out = os.path.join(work, "out")
            r = subprocess.run([os.path.join(prefix, "bin", "ftsan"), "run", "--out", out, "--",
                                PYTHON, os.path.join(TESTDATA, "basic", "driver.py")],
                               env=dict(os.environ, PYTHONPATH=work), capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("0 findings in 1 process", r.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)


class Wrappers(unittest.TestCase):
    """ftsan-cc as the compiler of a CMake project: compiler checks link executables."""

    def test_cmake_project_builds_and_runs(self):
        work = tempdir()
        try:
            src = os.path.join(work, "src")
            os.makedirs(src)
            with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
                f.write("cmake_minimum_required(VERSION 3.20)\nproject(p C)\n"
                        "add_library(lib SHARED lib.c)\nadd_executable(app app.c)\n"
                        "target_link_libraries(app lib)\n")
            with open(os.path.join(src, "lib.c"), "w") as f:
                f.write("int counter;\nint bump(void) { return ++counter; }\n")
            with open(os.path.join(src, "app.c"), "w") as f:
                f.write("int bump(void);\nint main(void) { bump(); return bump() == 2 ? 0 : 1; }\n")
            env = dict(os.environ, CC=FTSAN_CC)
            b = os.path.join(work, "b")
            subprocess.run(["cmake", "-S", src, "-B", b], env=env, check=True, capture_output=True)
            subprocess.run(["cmake", "--build", b], env=env, check=True, capture_output=True)
            nm = subprocess.run(["nm", "-D", os.path.join(b, "liblib.so")], capture_output=True, text=True).stdout
            self.assertIn("__ftsan_write4", nm)
            r = subprocess.run([os.path.join(b, "app")], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
