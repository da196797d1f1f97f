"""registry driver: 4 threads register the same 16 keys at the same time."""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
NTHREADS, ROUNDS, NKEYS = 4, 10, 16
barrier = threading.Barrier(NTHREADS, timeout=10)
errors = []


def worker():
    try:
        barrier.wait()
        for _ in range(ROUNDS):
            for key in range(NKEYS):
                mod.register(key)
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
