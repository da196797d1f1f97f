"""measure.py SCRIPT ARGS...: runs SCRIPT in this process (runpy, as __main__ with
sys.argv = [SCRIPT, ARGS...]) and prints this process's peak RSS at exit as
"maxrss_kb N" (resource.getrusage(RUSAGE_SELF).ru_maxrss). Used by tests/bench/run.sh so
that the peak RSS is the python process's own, also under 'ftsan run', which forks it."""
import os
import resource
import runpy
import sys

script = sys.argv[1]
sys.argv = sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"maxrss_kb {rss}", flush=True)
