"""Imports the module named on the command line and says whether the GIL is enabled."""
import importlib
import sys


def load(name):
    return importlib.import_module(name)  # the import line a gil-enabled finding names


mod = load(sys.argv[1])
print("answer=%d gil_enabled=%s" % (mod.answer(), sys._is_gil_enabled()))
