"""event_signal driver: a writer send()s the message and sets a threading.Event; the reader
receive()s it. *_fixed: the reader waits on the Event first. *_buggy: the reader reads first
and waits afterwards, so nothing orders its read after the write."""
import importlib
import sys
import threading

name = sys.argv[1]
mod = importlib.import_module(name)
wait_first = name.endswith("_fixed")
ROUNDS = 20
barrier = threading.Barrier(2, timeout=10)
errors = []
events = [threading.Event() for _ in range(ROUNDS)]
done = [threading.Event() for _ in range(ROUNDS)]


def writer():
    try:
        barrier.wait()
        for r in range(ROUNDS):
            mod.send(r, r * 0.5)
            events[r].set()
            done[r].wait(timeout=10)  # the reader is finished with round r
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


def reader():
    try:
        barrier.wait()
        for r in range(ROUNDS):
            if wait_first:
                events[r].wait(timeout=10)
            msg = mod.receive()
            if not wait_first:
                events[r].wait(timeout=10)
            elif msg != (r, r * 0.5):
                raise AssertionError(f"round {r}: got {msg!r}")
            done[r].set()
    except BaseException as e:
        errors.append(e)


threads = [threading.Thread(target=f) for f in (writer, reader)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
