"""cas_publish driver: one thread publish()es, another spins on poll() (bounded) and then
take()s the data."""
import importlib
import os
import sys
import threading
import time

name = sys.argv[1]
mod = importlib.import_module(name)
VALUE = 4242
barrier = threading.Barrier(2, timeout=10)
errors = []


def writer():
    try:
        barrier.wait()
        mod.publish(VALUE)
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


def reader():
    try:
        barrier.wait()
        deadline = time.monotonic() + 10  # bound the spin; normally it ends within microseconds
        while not mod.poll():
            if time.monotonic() > deadline:
                raise TimeoutError("signal never seen")
            os.sched_yield()  # let the writer run instead of spinning
        value = mod.take()
        # Only the fixed twin promises the data; the buggy one may legally see a stale value.
        if name.endswith("_fixed") and value != VALUE:
            raise AssertionError("stale data after the signal")
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
