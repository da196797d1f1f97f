"""List iteration driver: one thread walks a shared list with the extension's
PyList_GET_ITEM and PySequence_Fast_ITEMS loops, another appends to it and pops from it.
python list_driver.py MODULE"""
import importlib
import sys
import threading

mod = importlib.import_module(sys.argv[1])
shared = list(range(32))  # small ints: immortal, so no loop can touch a freed item
start = threading.Barrier(2)


writer_done = [False]  # a plain flag: read and written by the interpreter, no happens-before


def reader():
    start.wait()
    # Both loops run again after the writer's last change, however the threads were
    # scheduled: a reader that ran all its iterations before the writer started would leave
    # only its last loop's read in the shadow for the writer's writes to meet.
    i = 0
    while True:
        mod.sum_items(shared)
        mod.max_item(shared)
        i += 1
        if i >= 300 and writer_done[0]:
            break


def writer():
    start.wait()
    for i in range(300):
        shared.append(i % 100)  # may reallocate the item array the loops walk
        shared.pop(0)
    writer_done[0] = True


threads = [threading.Thread(target=reader, name="reader"), threading.Thread(target=writer, name="writer")]
for t in threads:
    t.start()
for t in threads:
    t.join()
if sys._is_gil_enabled():
    sys.exit("the GIL is enabled")
