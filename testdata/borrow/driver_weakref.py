"""Weak-reference driver: a writer thread creates a set (it owns it) and publishes a weak
reference to it; a reader calls referent_size(ref, callback), and inside the callback lets
the writer drop the set's last strong reference (freed at once), then waits until it has.
python driver_weakref.py MODULE"""
import importlib
import sys
import threading
import weakref

mod = importlib.import_module(sys.argv[1])
ROUNDS = 20
holder, refs = [None], [None]
go, done, published = threading.Event(), threading.Event(), threading.Semaphore(0)


def writer():
    for i in range(ROUNDS):
        holder[0] = set(range(i + 1))  # created, and owned, by this thread
        refs[0] = weakref.ref(holder[0])
        published.release()
        go.wait()
        go.clear()
        holder[0] = None  # the set's last strong reference goes: freed here
        done.set()


def callback():
    go.set()
    done.wait()
    done.clear()


def reader():
    for _ in range(ROUNDS):
        published.acquire()
        mod.referent_size(refs[0], callback)


threads = [threading.Thread(target=writer, name="writer"), threading.Thread(target=reader, name="reader")]
for t in threads:
    t.start()
for t in threads:
    t.join()
if sys._is_gil_enabled():
    sys.exit("the GIL is enabled")
