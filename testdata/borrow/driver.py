"""Borrowed-reference driver: a reader thread calls first_size(lst, callback); inside the
callback it lets a writer thread replace lst[0] (an object the writer created, so the
writer's own decref frees it at once), and waits until it has. python driver.py MODULE"""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
ROUNDS = 20
lst = [None]
go, done = threading.Event(), threading.Event()
sizes = []


def writer():
    for i in range(ROUNDS):
        lst[0] = bytes(100 + i)  # created, and owned, by this thread
        go.wait()
        go.clear()
        lst[0] = bytes(1)  # the old item's last reference goes: freed here
        done.set()


def callback():
    go.set()
    done.wait()
    done.clear()


def reader():
    for i in range(ROUNDS):
        while lst[0] is None or len(lst[0]) != 100 + i:
            pass
        sizes.append(mod.first_size(lst, callback))


threads = [threading.Thread(target=writer, name="writer"), threading.Thread(target=reader, name="reader")]
for t in threads:
    t.start()
for t in threads:
    t.join()
if sys._is_gil_enabled():
    sys.exit("the GIL is enabled")
