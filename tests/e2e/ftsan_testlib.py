"""Shared helpers of ftsan's end-to-end tests: build extensions with the real ftsan-cc, run
programs under the real 'ftsan run' in the free-threaded python, read reports as JSON."""
import json
import os
import subprocess
import sysconfig
import tempfile

BUILD = os.environ["FTSAN_BUILD"]
SOURCE = os.environ["FTSAN_SOURCE"]
PYTHON = os.environ["FTSAN_PYTHON"]
FTSAN = os.path.join(BUILD, "bin", "ftsan")
FTSAN_CC = os.path.join(BUILD, "bin", "ftsan-cc")
TESTDATA = os.path.join(SOURCE, "testdata")


def python_config():
    """EXT_SUFFIX and include directory of the interpreter under test (not the one running
    the test, although they are the same in ctest)."""
    out = subprocess.run(
        [PYTHON, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX')); "
         "print(sysconfig.get_paths()['include'])"],
        check=True, capture_output=True, text=True).stdout.split("\n")
    return out[0], out[1]


EXT_SUFFIX, PY_INCLUDE = python_config()


def build_extension(source, outdir, module=None, opt="-O1", extra=()):
    """Compiles one C file into an extension module with ftsan-cc; returns its path."""
    module = module or os.path.splitext(os.path.basename(source))[0]
    out = os.path.join(outdir, module + EXT_SUFFIX)
    cmd = [FTSAN_CC, "-shared", "-fPIC", opt, "-I" + PY_INCLUDE, source, "-o", out, *extra]
    subprocess.run(cmd, check=True)
    return out


def ftsan_run(args, outdir, env=None, run_options=()):
    """Runs COMMAND under 'ftsan run'; returns the CompletedProcess."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([FTSAN, "run", "--out", outdir, *run_options, "--", *args],
                          env=e, capture_output=True, text=True)


def report_json(path, *extra):
    r = subprocess.run([FTSAN, "report", "--format", "json", *extra, path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("ftsan report failed: %s" % r.stderr)
    return json.loads(r.stdout)


def tempdir():
    return tempfile.mkdtemp(prefix="ftsan-e2e-")


def line_with(path, text):
    """The number of the first line of path that contains text."""
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if text in line:
                return i
    raise AssertionError("%r not in %s" % (text, path))
