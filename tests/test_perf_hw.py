"""The event model against the cycle-accurate timing model of the RTL window source
(`imcflow.hw.im2col.window_schedule`): the same pixel and window handshakes, for line and frame
buffers, several geometries and images back to back."""

from __future__ import annotations

import numpy as np
import pytest

from imcflow.hw.im2col import window_schedule
from imcflow.sw.arch import load_arch
from imcflow.sw.ir import Conv2d, Input, Network, Shape
from imcflow.sw.mapper import map_network
from imcflow.sw.perf import engine_latency, simulate

GEOMETRIES = [(5, 5, 3, 1, 1), (6, 7, 3, 2, 1), (8, 8, 2, 2, 0), (4, 9, 3, 1, 0), (6, 6, 1, 2, 0),
              (5, 5, 5, 1, 2), (7, 5, 3, 3, 1), (32, 32, 3, 2, 1)]


@pytest.mark.parametrize("h,w,k,s,p", GEOMETRIES)
@pytest.mark.parametrize("strategy", ["line", "frame"])
def test_window_stage_matches_the_rtl_window_source(h, w, k, s, p, strategy):
    # A conv with a one-cycle MVM interval takes a window every cycle and its output is always
    # taken, so its windows leave the window source as soon as the RTL rules allow.
    net = Network("w", [Input("x", Shape(h, w, 2)), Conv2d("c", "x", 4, kernel=k, stride=s, padding=p)])
    mapping = map_network(net, load_arch("default", buffer=strategy, mvm_cycles=1))
    schedule = simulate(mapping, 3)
    accepted, valid = window_schedule(h, w, k, s, p, strategy=strategy, images=3)
    link = mapping.timing.fifo_latency  # the window source's input is the FIFO after the source
    taken = schedule.take["c"] - link
    # window_schedule stops at the last window; pixels after it (not needed by any) are not listed
    assert np.array_equal(taken[:len(accepted)], accepted)
    engine = engine_latency(mapping.layer("c"), mapping.arch, mapping.timing)
    assert np.array_equal(schedule.emit["c"] - engine - link, valid)
