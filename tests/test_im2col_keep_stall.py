# amaranth: UnusedElaboratable=no
"""The consumer stalls across the change of image: the buffer fills up to the next image's first
window's ``keep``, in the Amaranth simulator.

The producer sends every image at full rate; the consumer takes every window at once except the
last window of the first image, which it leaves in the output register for a long stall. The
reader has then read (``done``) that window, and the next image's first window cannot be read:
the buffer writes the next image's pixels as long as ``keep`` (and ``keep_next``) allow, until
it is full. Its ``keep`` then comes from the generator's ``keep1`` register, loaded from
``keep_after`` at the image's last windows: a ``keep`` too high there lets a pixel overwrite one
the first window reads (im2col #38 at 91e86ec, w0's ``keep_after`` at the end of the image with
bit 0 of its 0 tied to 1, passed every other test; docs/verification.md). Every window must be
the golden one and every handshake in the cycle `window_model` says, for each window source of
the campaign's bank (`imcflow.verif.mutate.WINDOWS`).
"""

import numpy as np
import pytest

from imcflow.hw.im2col import WindowSource
from imcflow.sw.geometry import WindowGeometry
from imcflow.verif.mutate import WINDOWS, window_model
from test_im2col import _fmaps, check_windows, simulate


@pytest.mark.parametrize("unit", range(len(WINDOWS)), ids=[f"w{n}" for n in range(len(WINDOWS))])
def test_stall_over_the_change_of_image(unit, seeds):
    h, w, c, bits, k, s, p, strategy, signed, pad, passes = WINDOWS[unit]
    make = lambda: WindowSource(WindowGeometry(h, w, c, k, s, p), bits, strategy=strategy,
                                signed=signed, pad_value=pad, passes=passes)
    dut = make()
    images, per_image = 4, dut.oh * dut.ow   # (a frame buffer holds the two after the first)
    fmaps = _fmaps((h, w, c, bits), images, np.random.default_rng(seeds(1)[0]), signed)
    # at full rate, the cycle the consumer takes the first image's last window; then again with
    # the consumer stalled from that cycle on for longer than the buffer takes to fill
    free = simulate(dut, fmaps, signed=signed)
    check_windows(free, fmaps, (h, w, c, bits, k, s, p), pad)
    start, stall = int(free["o_cycles"][per_image - 1]), 2 * dut.words + 8
    ready = [True] * start + [False] * stall
    trace = simulate(make(), fmaps, backpressure=[not r for r in ready], signed=signed)
    check_windows(trace, fmaps, (h, w, c, bits, k, s, p), pad)
    offered = "".join("1" if v else "0" for v in trace["i_valid"])
    consumer = "".join("1" if r else "0" for r in ready).ljust(len(offered), "1")
    accepted, taken = window_model(h, w, k, s, p, strategy, images, offered, consumer, 0, passes)
    assert trace["i_cycles"].tolist() == accepted, "input handshakes"
    assert trace["o_cycles"].tolist() == taken, "output handshakes"
    # the pattern does what it is for: the first image's last window waited the whole stall,
    # and at its end the buffer, holding pixels of the second image, was full (a pixel offered,
    # not taken)
    end = start + stall - 1
    assert trace["o_cycles"][per_image - 1] == start + stall
    assert trace["i_valid"][end] and not trace["i_ready"][end], "the buffer never filled up"
    assert trace["i_cycles"][h * w] < end, "no pixel of the second image before the stall's end"
