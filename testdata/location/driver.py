"""Four threads store pointers to long-lived objects into the extension's static."""
import threading

import static_object

# tp_basicsize 64 and tp_itemsize 0, as a PyTypeObject read from a bytes object sees them
keep = [bytes([64]) + bytes(15) + bytes([i]) for i in range(4)]
start = threading.Barrier(4)


def worker(i):
    start.wait()
    for _ in range(200):
        static_object.remember(keep[i])


threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
