"""A small test suite run under 'ftsan run' with pytest (or unittest): its racy test must be
reported with the test function's name in the Python stack."""
import threading
import unittest

import static_counter_buggy


def hammer(fn, threads=4, calls=500):
    start = threading.Barrier(threads)

    def work():
        start.wait()
        for _ in range(calls):
            fn()

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def test_counter_from_threads():
    hammer(static_counter_buggy.bump)  # the line the report's Python stack names
    assert static_counter_buggy.value() > 0


class CounterTests(unittest.TestCase):
    def test_counter_unittest(self):
        hammer(static_counter_buggy.bump)
        self.assertGreater(static_counter_buggy.value(), 0)
