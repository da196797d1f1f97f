"""static_counter driver: 4 threads bump the shared counter after a barrier."""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
NTHREADS, ITERS = 4, 200
barrier = threading.Barrier(NTHREADS, timeout=10)
errors = []


def worker():
    try:
        barrier.wait()
        for _ in range(ITERS):
            mod.bump()
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


threads = [threading.Thread(target=worker) for _ in range(NTHREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
if mod.value() <= 0:
    sys.exit("counter did not move")
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
