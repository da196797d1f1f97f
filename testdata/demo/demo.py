"""The demo driver: four threads count page hits through the hitcounter extension."""
import sys
import threading

import hitcounter

THREADS, HITS = 4, 2000
start = threading.Barrier(THREADS)


def worker(n):
    start.wait()
    for i in range(HITS):
        hitcounter.hit(i + n)


threads = [threading.Thread(target=worker, args=(n,), name=f"counter-{n}") for n in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"counted {hitcounter.total()} of {THREADS * HITS} hits; GIL enabled: {sys._is_gil_enabled()}")
