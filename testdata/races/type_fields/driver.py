"""type_fields driver: one shared Accum; two threads add() while a third calls mean()."""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
ITERS = 200
acc = mod.Accum()  # ONE instance shared by every thread
barrier = threading.Barrier(3, timeout=10)
errors = []


def adder():
    try:
        barrier.wait()
        for i in range(ITERS):
            acc.add(float(i))
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


def reader():
    try:
        barrier.wait()
        for _ in range(ITERS):
            acc.mean()
    except BaseException as e:
        errors.append(e)


threads = [threading.Thread(target=f) for f in (adder, adder, reader)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
