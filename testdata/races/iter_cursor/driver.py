"""iter_cursor driver: 2 threads pull from ONE shared Cursor iterator until it is exhausted."""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
NTHREADS, PULLS = 2, 200  # together more pulls than the 256 items
cursor = mod.Cursor()  # ONE iterator shared by every thread
barrier = threading.Barrier(NTHREADS, timeout=10)
errors = []


def worker():
    try:
        barrier.wait()
        for _ in range(PULLS):
            next(cursor, None)
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


threads = [threading.Thread(target=worker) for _ in range(NTHREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
for _ in cursor:  # drain whatever lost updates left behind
    pass
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
