"""Interrupted critical section driver: one thread runs the extension's apply_all over a
shared list with a callback that blocks until another thread has changed the list.
python suspend_driver.py MODULE

The callback asks the writer for one change and waits for it: the wait detaches the
thread, which suspends the critical section its C caller holds, so every callback sees the
list change under it, however the threads are scheduled."""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
shared = list(range(16))  # small ints: immortal, so a stale loop cannot touch a freed item
start = threading.Barrier(2)
request, changed = threading.Event(), threading.Event()
finished = []


def slow(x):
    changed.clear()
    request.set()  # ask the writer for a change ...
    changed.wait(1.0)  # ... and block until it is made (the section is suspended meanwhile)
    return x


def reader():
    start.wait()
    for _ in range(3):
        mod.apply_all(shared, slow)
        if hasattr(mod, "append_after"):  # the fixed module: a write after the blocking call
            for _ in range(4):
                mod.append_after(shared, slow)
    finished.append(True)
    request.set()


def writer():
    start.wait()
    i = 0
    while True:
        request.wait()
        request.clear()
        if finished:
            break
        shared.append(i % 100)  # never below the size the loop read
        shared.pop(0)
        if len(shared) > 16:  # what append_after added
            shared.pop()
        i += 1
        changed.set()


threads = [threading.Thread(target=reader, name="reader"), threading.Thread(target=writer, name="writer")]
for t in threads:
    t.start()
for t in threads:
    t.join()
if sys._is_gil_enabled():
    sys.exit("the GIL is enabled")
