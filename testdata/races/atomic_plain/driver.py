"""atomic_plain driver: one thread set()s the value while another get()s it."""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
ITERS = 300
barrier = threading.Barrier(2, timeout=10)
errors = []


def writer():
    try:
        barrier.wait()
        for i in range(1, ITERS + 1):
            mod.set(i)
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


def reader():
    try:
        barrier.wait()
        for _ in range(ITERS):
            if not 0 <= mod.get() <= ITERS:
                raise AssertionError("torn value")
    except BaseException as e:
        errors.append(e)


threads = [threading.Thread(target=f) for f in (writer, reader)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
