"""Three named threads started from a function bump the extension's counter."""
import threading

import nogil_counter


def worker():
    for _ in range(200):
        nogil_counter.bump()  # the Python line of each access


def start_all():
    threads = [threading.Thread(target=worker, name="bumper-%d" % i) for i in range(3)]
    for t in threads:
        t.start()  # where each thread was started
    return threads


for t in start_all():  # the module-level caller
    t.join()
