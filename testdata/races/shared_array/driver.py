"""shared_array driver: one thread refills the table while 3 threads sum it, after a barrier."""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
NTHREADS, ITERS = 4, 100
barrier = threading.Barrier(NTHREADS, timeout=10)
errors = []


def writer():
    try:
        barrier.wait()
        for i in range(ITERS):
            mod.refill(i + 1)
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


def reader():
    try:
        barrier.wait()
        for _ in range(ITERS):
            mod.total()
    except BaseException as e:
        errors.append(e)


threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(NTHREADS - 1)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
if mod.total() == 0:
    sys.exit("the table was never filled")
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
