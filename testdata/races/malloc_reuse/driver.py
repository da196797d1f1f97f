"""malloc_reuse driver: a producer give()s 100 blocks one at a time through the single slot
and a consumer take()s and frees them; both poll (bounded), so every block really crosses
threads and freed addresses come back from malloc in the other thread."""
import importlib
import os
import sys
import threading
import time

mod = importlib.import_module(sys.argv[1])
COUNT = 100
barrier = threading.Barrier(2, timeout=10)
errors = []


def producer():
    try:
        barrier.wait()
        deadline = time.monotonic() + 10
        given = 0
        while given < COUNT:
            if mod.give(given):
                given += 1
            elif time.monotonic() > deadline:
                raise TimeoutError("consumer stalled")
            else:
                os.sched_yield()  # let the consumer run instead of spinning
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


def consumer():
    try:
        barrier.wait()
        deadline = time.monotonic() + 10
        taken = 0
        while taken < COUNT:
            if mod.take() is not None:
                taken += 1
            elif time.monotonic() > deadline:
                raise TimeoutError("producer stalled")
            else:
                os.sched_yield()
    except BaseException as e:
        errors.append(e)


threads = [threading.Thread(target=f) for f in (producer, consumer)]
for t in threads:
    t.start()
for t in threads:
    t.join()
mod.drain()
if errors:
    raise errors[0]
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
