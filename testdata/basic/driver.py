"""Foundation driver: 4 threads call basic_ext; prints the GIL state at the end."""
import sys
import threading

import basic_ext

THREADS, CALLS = 4, 250
start = threading.Barrier(THREADS)
shared = []


def worker(n):
    start.wait()
    for i in range(CALLS):
        basic_ext.checksum(b"free-threaded" * (n + 1))
        basic_ext.append_locked(shared, i)


threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert basic_ext.calls() == THREADS * CALLS, basic_ext.calls()
assert len(shared) == THREADS * CALLS
print("gil_enabled=%s" % sys._is_gil_enabled())
