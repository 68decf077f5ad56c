"""The timing contract (`imcflow.sw.timing`): the window schedule's incremental rules, which both
`window_schedule` (measured on the RTL window source in test_im2col.py) and the performance
model's window stages (`imcflow.sw.perf`) run, and the layer kinds' latency entries."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from imcflow.sw.arch import load_arch
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.ir import Add, AvgPool, Conv2d, GlobalAvgPool, Input, MaxPool, Network, Shape
from imcflow.sw.mapper import map_network
from imcflow.sw.ops import Op, registry
from imcflow.sw.timing import (BlockTiming, accept_pixels, engine_latency, read_windows,
                               window_rules, window_schedule)


def test_window_rules_by_hand():
    # 3x3 input, 2x2 windows: they need pixels 4, 5, 7, 8 and keep 0, 1, 3, 4 (the oldest pixel
    # they or a later one read); the line buffer holds 5 pixels, so pixel i waits for the reads
    # of the windows whose kept pixel is i - 5 or older.
    need, slot = window_rules(WindowGeometry(3, 3, 1, 2), strategy="line", images=2)
    assert need == [4, 5, 7, 8, 13, 14, 16, 17]
    assert slot == [0, 0, 0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 4, 4, 5, 6, 6, 7]
    # frame: every window needs its image's last pixel; image n overwrites image n - 2
    need, slot = window_rules(WindowGeometry(3, 3, 1, 2), strategy="frame", images=3)
    assert need == [8] * 4 + [17] * 4 + [26] * 4
    assert slot == [0] * 18 + [4] * 9


def test_accept_pixels_waits_for_the_producer_and_the_reads_that_free_a_slot():
    take = []
    # pixel 2 overwrites what window 0 needs: it waits for that read, and a cycle more
    assert accept_pixels(take, [0, 0, 1], [0, 0, 0], 1, [], 1)
    assert take == [1, 2]
    assert not accept_pixels(take, [0, 0, 1], [0, 0, 0], 1, [], 1)
    assert accept_pixels(take, [0, 0, 1], [0, 0, 0], 1, [7], 1)
    assert take == [1, 2, 8]
    take = []  # the producer's beats, `link` cycles later, one per cycle at most
    accept_pixels(take, [0, 0, 0], [3, 3, 9], 2, [], 1)
    assert take == [5, 6, 11]


def test_read_windows_waits_for_the_pixel_and_the_output_register():
    read, hand = [], []
    assert read_windows(read, [0, 4, 5], [1, 2], hand, 1)
    assert read == [4]  # window 1 waits for window 0 to leave the output register
    hand.append(9)
    assert read_windows(read, [0, 4, 5], [1, 2], hand, 1)
    assert read == [4, 9]
    read, hand = [], []  # two registers: window 2 waits for window 0's output handshake
    assert read_windows(read, [0, 1, 2], [0, 1, 2], hand, 2)
    assert read == [0, 1]
    hand.append(6)
    read_windows(read, [0, 1, 2], [0, 1, 2], hand, 2)
    assert read == [0, 1, 6]


def test_window_schedule_by_hand():
    # 4x4 input, 3x3 windows, stride 1: windows need pixels 10, 11, 14, 15; the line buffer
    # holds 2 rows + 3 = 11 pixels, so pixel 11 waits for window 0's read (cycle 10) and pixel
    # 12 for window 1's; each window is valid a cycle after its read.
    pixels, windows = window_schedule(WindowGeometry(4, 4, 1, 3), strategy="line")
    assert pixels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert windows.tolist() == [11, 12, 15, 16]
    # 2x2 input, 3x3 windows with padding 1: each of the 4 windows needs the whole image, which
    # the 4-word line buffer holds; image 1's first pixel waits for the read of image 0's last
    # window (cycle 6), and image 1's windows for its last pixel (cycle 10)
    pixels, windows = window_schedule(WindowGeometry(2, 2, 1, 3, 1, 1), strategy="line",
                                      images=2)
    assert pixels.tolist() == [0, 1, 2, 3, 7, 8, 9, 10]
    assert windows.tolist() == [4, 5, 6, 7, 11, 12, 13, 14]
    # frame, 9 windows per 4-pixel image: image 2 overwrites image 0, so it waits for image 0's
    # last read (cycle 11); the windows of an image wait for its last pixel and the previous read
    pixels, windows = window_schedule(WindowGeometry(2, 2, 1, 2, 1, 1), strategy="frame",
                                      images=3)
    assert pixels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15]
    assert windows.tolist() == list(range(4, 13)) + list(range(13, 22)) + list(range(22, 31))

def _stages(timing=None):
    net = Network("kinds", [Input("x", Shape(6, 6, 2)), Conv2d("c", "x", 4, kernel=3, padding=1),
                            Conv2d("d", "c", 4, kernel=3, padding=1), Add("j", "d", "c"),
                            MaxPool("m", "j", kernel=2, stride=2), AvgPool("a", "m", kernel=3),
                            GlobalAvgPool("g", "a")])
    mapping = map_network(net, load_arch("default"))
    if timing is not None:
        mapping = replace(mapping, timing=timing)
    return mapping, {l.name: engine_latency(l, mapping.arch, mapping.timing)
                     for l in mapping.stages}


def test_engine_latency_is_each_kinds_timing_entry():
    mapping, base = _stages()
    t = mapping.timing
    assert (base["x"], base["j"], base["m"], base["a"], base["g"]) == (
        0, t.join_latency, t.max_pool_latency, t.avg_pool_latency, t.global_pool_latency)
    # each pooling kind reads its own block's number, nothing else's
    _, slow_max = _stages(replace(t, max_pool_latency=7))
    assert slow_max == {**base, "m": 7}
    _, slow_avg = _stages(replace(t, avg_pool_latency=9))
    assert slow_avg == {**base, "a": 9}
    _, slow_acc = _stages(replace(t, accumulator_latency=t.accumulator_latency + 5))
    assert slow_acc == {**base, "c": base["c"] + 5, "d": base["d"] + 5}
    _, slow_join = _stages(replace(t, join_latency=t.join_latency + 1))
    assert slow_join == {**base, "j": base["j"] + 1}


def test_every_stage_kind_has_a_latency():
    # a kind of a role with several blocks (pooling) must declare which it is
    for op in registry().values():
        if op.role == "fused":
            continue
        assert type(op).latency is not Op.latency or op.role != "pool", op.kind

    class Unnamed(Op):
        kind, role = "unnamed_pool", "pool"

    with pytest.raises(NotImplementedError, match="unnamed_pool"):
        Unnamed().latency(None, None, BlockTiming())

