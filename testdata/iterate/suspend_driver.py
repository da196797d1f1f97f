"""Interrupted critical section driver: one thread runs the extension's apply_all over a
shared list with a callback that sleeps, another appends to the list and pops from it.
python suspend_driver.py MODULE"""
import importlib
import sys
import threading
import time

mod = importlib.import_module(sys.argv[1])
shared = list(range(16))  # small ints: immortal, so a stale loop cannot touch a freed item
start = threading.Barrier(2)
done = threading.Event()


def slow(x):
    time.sleep(0)  # detaches the thread: its critical sections are suspended
    return x


def reader():
    start.wait()
    for _ in range(30):
        mod.apply_all(shared, slow)
        if hasattr(mod, "append_after"):  # the fixed module: a write after the blocking call
            for _ in range(16):
                mod.append_after(shared, slow)
    done.set()


def writer():
    start.wait()
    i = 0
    while not done.is_set():
        shared.append(i % 100)  # never below the size the loop read
        shared.pop(0)
        if len(shared) > 16:  # what append_after added
            shared.pop()
        i += 1
        time.sleep(0)  # lets the reader take the list's lock back


threads = [threading.Thread(target=reader, name="reader"), threading.Thread(target=writer, name="writer")]
for t in threads:
    t.start()
for t in threads:
    t.join()
if sys._is_gil_enabled():
    sys.exit("the GIL is enabled")
