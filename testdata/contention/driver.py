"""Contention scenarios: python driver.py SCENARIO, with 4 threads behind a Barrier.
shared: every thread takes references to one module-global object through the extension.
private: the same work on objects each thread created itself.
pyshared: pure Python: threads iterate over a shared global list of floats.
dictlock: threads update one dict under the extension's critical section.
pylock: threads take one threading.Lock right after the extension ended a critical section.
immortal: threads take references to None and small ints."""
import sys
import threading
import time

import contention_ext

THREADS, N = 4, 20000
scenario = sys.argv[1]
start = threading.Barrier(THREADS)
SHARED_FLOATS = [float(i) + 0.5 for i in range(200)]
counts = {}


def shared(n):
    for _ in range(N):
        contention_ext.get_shared()


def private(n):
    mine = [n]  # created by this thread: it owns the reference count
    for _ in range(N):
        contention_ext.touch(mine)


def pyshared(n):
    total = 0.0
    for _ in range(N // 200):
        for x in SHARED_FLOATS:  # the loop line ftsan top must name
            total += x
    return total


def dictlock(n):
    for i in range(N // 10):
        contention_ext.locked_update(counts, i % 64)


PYLOCK = threading.Lock()


def pylock(n):
    for i in range(N // 100):
        contention_ext.locked_update(counts, n)  # its critical section ends in C ...
        with PYLOCK:  # ... and the wait here is this Python line's
            time.sleep(0.0002)  # held long enough that the other threads wait


def immortal(n):
    for _ in range(N):
        contention_ext.get_none()


def worker(n):
    start.wait()
    globals()[scenario](n)


threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if sys._is_gil_enabled():
    sys.exit("the GIL is enabled")
