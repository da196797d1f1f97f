"""queue_handoff driver: a producer fills the C buffer and hands a token to a consumer
through queue.Queue; the consumer reads the buffer and acknowledges through a second queue.
*_fixed: strict hand-off (write, put; get, read, ack; the next write waits for the ack).
*_buggy: the producer writes the next message right after put(), before the ack, so that
write races with the consumer's read of the message it just handed off (in every round,
whatever the timing: nothing orders the two)."""
import importlib
import queue
import sys
import threading

name = sys.argv[1]
mod = importlib.import_module(name)
strict = name.endswith("_fixed")
ROUNDS = 100
tokens, acks = queue.Queue(), queue.Queue()
barrier = threading.Barrier(2, timeout=10)
errors = []


def producer():
    try:
        barrier.wait()
        mod.produce(b"message 0")
        for i in range(ROUNDS):
            tokens.put(i)
            if not strict:
                mod.produce(b"message %d" % (i + 1))  # too early: consumer may be reading
            acks.get(timeout=10)
            if strict:
                mod.produce(b"message %d" % (i + 1))
        tokens.put(None)
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


def consumer():
    try:
        barrier.wait()
        while tokens.get(timeout=10) is not None:
            mod.consume()
            acks.put(True)
    except BaseException as e:
        errors.append(e)


threads = [threading.Thread(target=f) for f in (producer, consumer)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
