"""driver.py WORKLOAD THREADS: one run of the ftsan overhead benchmark (tests/bench/run.sh).

Imports bench_ext from sys.path, starts THREADS threads that split a fixed total amount of
work between them, and prints the wall time of the threaded section only ("time SECONDS").
Every workload is correctly synchronized. BENCH_SCALE (a float, default 1) scales the work.

  private   each call mallocs a private 64 KiB buffer and runs stencils / prefix sums on it
  locked    short critical sections on a shared C table under a PyMutex (contended)
  pysync    C work under a threading.Lock, plus bytearrays handed around via queue.Queue
  refcount  Py_NewRef/Py_DECREF on a shared module-level tuple and its items
"""
import os
import queue
import sys
import threading
import time

import bench_ext as ext

SCALE = float(os.environ.get("BENCH_SCALE", "1"))


def total(n):
    """A total number of calls, scaled, a multiple of 12 so that 1, 2, 3, 4 threads split it."""
    return max(12, int(n * SCALE) // 12 * 12)


# Total calls of each workload (split across the threads) and the work inside one call.
# Uninstrumented, each run takes 0.1-0.6 s on the 2-core reference machine; instrumented
# runs take 2-110 times as long, which is what bounds these sizes (docs/benchmarks.md).
PRIVATE_CALLS, PRIVATE_PASSES = total(2400), 4      # 2400 x 64 KiB buffers, 4 passes each
LOCKED_CALLS, LOCKED_INNER = total(14400), 1000     # 14.4M lock/update/unlock
PYSYNC_ITERS, PYSYNC_BUF = total(120000), 64        # 120k lock steps + queue hand-offs
REFCOUNT_CALLS, REFCOUNT_INNER = total(1500), 10000  # 15M x (2 new refs + 2 decrefs)


def run_private(idx, n, state):
    for _ in range(n):
        ext.private_work(PRIVATE_PASSES)


def run_locked(idx, n, state):
    for i in range(n):
        ext.locked_update(LOCKED_INNER, idx * 1000003 + i)


def run_pysync(idx, n, state):
    lock, q = state
    step, fill = ext.pysync_step, ext.pysync_fill
    for i in range(n):
        with lock:
            step(i)
        buf = q.get()
        fill(buf, i)
        q.put(buf)


def run_refcount(idx, n, state):
    for _ in range(n):
        ext.refcount_spin(REFCOUNT_INNER)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: driver.py private|locked|pysync|refcount THREADS")
    workload, threads = sys.argv[1], int(sys.argv[2])
    body, calls = {
        "private": (run_private, PRIVATE_CALLS),
        "locked": (run_locked, LOCKED_CALLS),
        "pysync": (run_pysync, PYSYNC_ITERS),
        "refcount": (run_refcount, REFCOUNT_CALLS),
    }[workload]
    state = None
    if workload == "pysync":
        q = queue.Queue()
        for k in range(threads):
            q.put(bytearray(PYSYNC_BUF))
        state = (threading.Lock(), q)
    per_thread = calls // threads
    barrier = threading.Barrier(threads + 1)

    def worker(idx):
        barrier.wait()
        body(idx, per_thread, state)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0

    done = per_thread * threads
    if workload == "locked" and ext.table_updates() != done * LOCKED_INNER:
        sys.exit(f"driver: locked: {ext.table_updates()} updates, expected {done * LOCKED_INNER}")
    if workload == "pysync" and ext.pysync_total() != done:
        sys.exit(f"driver: pysync: {ext.pysync_total()} steps, expected {done}")
    if sys._is_gil_enabled():
        print("driver: warning: the GIL is enabled", file=sys.stderr)
    print(f"time {elapsed:.6f}", flush=True)


if __name__ == "__main__":
    main()
