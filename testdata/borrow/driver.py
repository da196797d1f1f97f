"""Borrowed-reference driver: a reader thread calls first_size(lst, callback) (borrow_list_*)
or value_size(d, "k", callback) (borrow_dict_*); inside the callback it lets a writer thread
replace the list item, or delete the dict key (an object the writer created, so the writer's
own decref frees it at once), and waits until it has. python driver.py MODULE"""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
ROUNDS = 20
is_dict = "dict" in sys.argv[1]
box = {"k": None} if is_dict else [None]
KEY = "k" if is_dict else 0
go, done = threading.Event(), threading.Event()
sizes = []


def writer():
    for i in range(ROUNDS):
        box[KEY] = bytes(100 + i)  # created, and owned, by this thread
        go.wait()
        go.clear()
        if is_dict:
            del box[KEY]  # a deletion: the value's last reference goes, freed here
        else:
            box[KEY] = bytes(1)  # a replacement: the old item's last reference goes, freed here
        done.set()


def callback():
    go.set()
    done.wait()
    done.clear()


def reader():
    for i in range(ROUNDS):
        while True:  # wait for this round's item
            item = box.get(KEY) if is_dict else box[KEY]
            if item is not None and len(item) == 100 + i:
                break
        del item
        if is_dict:
            sizes.append(mod.value_size(box, KEY, callback))
        else:
            sizes.append(mod.first_size(box, callback))


threads = [threading.Thread(target=writer, name="writer"), threading.Thread(target=reader, name="reader")]
for t in threads:
    t.start()
for t in threads:
    t.join()
if sys._is_gil_enabled():
    sys.exit("the GIL is enabled")
