"""Iteration driver: one thread sums a shared dict with the extension's PyDict_Next loop,
another adds and deletes keys in it. python driver.py MODULE"""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
shared = {i: i for i in range(32)}
start = threading.Barrier(2)


def reader():
    start.wait()
    for _ in range(300):
        mod.sum_values(shared)


def writer():
    start.wait()
    for i in range(300):
        shared[1000 + i % 16] = i  # an insertion the iteration may run into
        shared.pop(1000 + (i + 8) % 16, None)


threads = [threading.Thread(target=reader, name="reader"), threading.Thread(target=writer, name="writer")]
for t in threads:
    t.start()
for t in threads:
    t.join()
if sys._is_gil_enabled():
    sys.exit("the GIL is enabled")
