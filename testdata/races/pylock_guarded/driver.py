"""pylock_guarded driver: 4 threads call update(); the *_fixed module is guarded by one
threading.Lock around every call, the *_buggy module is called unguarded."""
import contextlib
import importlib
import sys
import threading

name = sys.argv[1]
mod = importlib.import_module(name)
guard = threading.Lock() if name.endswith("_fixed") else contextlib.nullcontext()
NTHREADS, ITERS = 4, 200
barrier = threading.Barrier(NTHREADS, timeout=10)
errors = []


def worker(tid):
    try:
        barrier.wait()
        for i in range(ITERS):
            with guard:
                mod.update(tid * ITERS + i)
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(NTHREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
calls, total, maximum = mod.snapshot()
if name.endswith("_fixed") and calls != NTHREADS * ITERS:
    sys.exit(f"lost updates under the lock: {calls}")
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
