"""gilstate_mutex driver: 4 threads record() values at the same time."""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
NTHREADS, ITERS = 4, 200
barrier = threading.Barrier(NTHREADS, timeout=10)
errors = []


def worker(tid):
    try:
        barrier.wait()
        for i in range(ITERS):
            mod.record(tid * ITERS + i)
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(NTHREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
if mod.snapshot()[0] <= 0:
    sys.exit("nothing recorded")
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
