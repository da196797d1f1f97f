"""freelist driver: 4 threads alloc() and release() pool nodes at the same time."""
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
            held = [mod.alloc(), mod.alloc()]
            for h in held:
                if h >= 0:
                    mod.release(h)
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


threads = [threading.Thread(target=worker) for _ in range(NTHREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
