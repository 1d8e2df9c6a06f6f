"""Loading: Ctrl-C during a load returns at once; a progress observer's exception is the
load's, never swallowed."""

from __future__ import annotations

import _thread
import time

import pytest

import wgbert
from conftest import expected


class SlowBar:
    """Presses Ctrl-C when the load starts, then makes every tensor take 50 ms."""

    def __init__(self, interrupt: bool = True, fail: bool = False):
        self.interrupt = interrupt
        self.fail = fail
        self.advanced = 0

    def start(self, what, total):
        if self.interrupt:
            _thread.interrupt_main()

    def advance(self, n, item=""):
        self.advanced += 1
        if self.fail:
            raise ValueError("the bar broke")
        time.sleep(0.05)

    def finish(self):
        pass


def test_ctrl_c_interrupts_a_load(ctrl_c):
    model = str(expected("st_mean_dense")[0])
    bar = SlowBar()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        wgbert._wgbert.Encoder(model, dtype="f32", progress=bar)
    took = time.monotonic() - started
    # The upload alone takes 20 tensors x 50 ms; the interrupt came before it ended.
    assert bar.advanced < 20, f"the whole upload ran ({bar.advanced} tensors, {took:.2f} s)"
    # Loading still works afterwards.
    assert wgbert.Encoder(model, dtype="f32").encode("fish").shape == (16,)


def test_a_failing_progress_observer_fails_the_load():
    model = str(expected("st_mean_dense")[0])
    bar = SlowBar(interrupt=False, fail=True)
    with pytest.raises(ValueError, match="the bar broke"):
        wgbert._wgbert.Encoder(model, dtype="f32", progress=bar)
    assert bar.advanced == 1, "no call after the first failure"
