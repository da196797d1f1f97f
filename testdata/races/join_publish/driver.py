"""join_publish driver: 3 workers each fill their own slot of the C array; main sums the
slots. *_fixed: main reads only after Thread.join(). *_buggy: main passes the same Barrier
as the workers and reads at once, while the workers are still writing."""
import importlib
import sys
import threading

name = sys.argv[1]
mod = importlib.import_module(name)
early = name.endswith("_buggy")
NWORKERS, ITERS = 3, 100
barrier = threading.Barrier(NWORKERS + 1, timeout=10)
errors = []


def worker(slot):
    try:
        barrier.wait()
        for i in range(1, ITERS + 1):
            mod.work(slot, i)
    except BaseException as e:  # report any failure through the exit status
        errors.append(e)


threads = [threading.Thread(target=worker, args=(s,)) for s in range(NWORKERS)]
for t in threads:
    t.start()
barrier.wait()
if early:
    mod.collect()  # too early: the workers may still be writing their slots
for t in threads:
    t.join()
if errors:
    raise errors[0]
if not early and mod.collect() != NWORKERS * ITERS:
    sys.exit("wrong total after join")
if sys._is_gil_enabled():
    print("warning: the GIL is enabled; races cannot happen", file=sys.stderr)
