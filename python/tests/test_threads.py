"""One Encoder shared by threads; the GIL released while it works; Ctrl-C between batches."""

from __future__ import annotations

import _thread
import threading
import time

import numpy as np
import pytest

from conftest import expected, load


def texts(n: int):
    words = ["the", "cat", "sat", "on", "mat", "paris", "capital", "france", "dog", "city", "fish"]
    return [" ".join(words[(i * 7 + k) % len(words)] for k in range(1 + i % 9)) for i in range(n)]


def test_four_threads_give_the_same_vectors_as_one():
    enc = load(expected("st_mean_dense")[0])
    items = texts(64)
    want = enc.encode(items)
    results = {}

    def work(t):
        # Each thread asks in its own order and chunking.
        order = [(i + 16 * t) % len(items) for i in range(len(items))]
        got = enc.encode([items[i] for i in order], batch_size=8 + t)
        results[t] = (order, got)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [0, 1, 2, 3]
    for t, (order, got) in results.items():
        np.testing.assert_allclose(got, want[order], atol=1e-5, rtol=0, err_msg=f"thread {t}")


def test_the_gil_is_released_while_encoding():
    enc = load(expected("st_mean_dense")[0])
    items = texts(3000)
    done = threading.Event()
    took = {}

    def work():
        start = time.monotonic()
        enc.encode(items, batch_size=3000)
        took["s"] = time.monotonic() - start
        done.set()

    th = threading.Thread(target=work)
    th.start()
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0.002)
    th.join()
    # Holding the GIL for the whole call would leave this loop one or two turns; released,
    # it turns every few milliseconds.
    assert took["s"] < 0.2 or ticks >= 10, f"{ticks} turns in {took['s']:.2f} s"


class Interrupter:
    """A progress observer that presses Ctrl-C when the first chunk is done."""

    def __init__(self):
        self.chunks = 0

    def start(self, what, total):
        pass

    def advance(self, n, item=""):
        self.chunks += 1
        if self.chunks == 1:
            _thread.interrupt_main()

    def finish(self):
        pass


def test_ctrl_c_stops_encode_between_batches(ctrl_c):
    enc = load(expected("st_mean_dense")[0])
    items = texts(400)
    bar = Interrupter()
    with pytest.raises(KeyboardInterrupt):
        enc._inner.embed(items, batch_size=10, progress=bar)
    assert bar.chunks < 40, f"all {bar.chunks} chunks ran"
    # The encoder still works afterwards.
    assert enc.encode(items[:3]).shape == (3, 16)
