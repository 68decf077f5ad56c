# amaranth: UnusedElaboratable=no
"""The change of image at the reader's last window, in the Amaranth simulator.

The producer sends each image at full rate and pauses until the reader's last window of it
(`imcflow.verif.mutate._handover_idle`), so that the next image's first pixel is accepted in the
very cycle that window is read (its last pass, ``done``) while the buffer holds exactly the
image: the buffer's count takes its ``write`` and ``done`` branch at once from ``count ==
pixels``, and `covered` is decided on a write with the last window's ``need``. Random stalls
almost never give that cycle: two mutants of the line buffer campaign (docs/verification.md,
linebuffer #29 and #50 at 4428ab6) passed every other test, and fail this one. Every window must
be the golden one and every handshake in the cycle `window_model` says, for each window source
of the campaign's bank (`imcflow.verif.mutate.WINDOWS`).
"""

import numpy as np
import pytest

from imcflow.hw.im2col import WindowSource
from imcflow.sw.geometry import WindowGeometry
from imcflow.verif.mutate import WINDOWS, _handover_idle, _window_images, window_model
from test_im2col import _fmaps, check_windows, simulate


@pytest.mark.parametrize("unit", range(len(WINDOWS)), ids=[f"w{n}" for n in range(len(WINDOWS))])
def test_next_image_starts_with_the_last_window(unit, seeds):
    h, w, c, bits, k, s, p, strategy, signed, pad, passes = WINDOWS[unit]
    dut = WindowSource(WindowGeometry(h, w, c, k, s, p), bits, strategy=strategy, signed=signed,
                       pad_value=pad, passes=passes)
    images = _window_images(h * w, dut.words)
    flags = _handover_idle((h, w, k, s, p), images, strategy, passes)
    fmaps = _fmaps((h, w, c, bits), images, np.random.default_rng(seeds(1)[0]), signed)
    trace = simulate(dut, fmaps, idle=[f == "1" for f in flags], signed=signed)
    check_windows(trace, fmaps, (h, w, c, bits, k, s, p), pad)
    offered = "".join("1" if v else "0" for v in trace["i_valid"])
    accepted, taken = window_model(h, w, k, s, p, strategy, images, offered,
                                   "1" * len(offered), 0, passes)
    assert trace["i_cycles"].tolist() == accepted, "input handshakes"
    assert trace["o_cycles"].tolist() == taken, "output handshakes"
    # the pattern does what it is for: where the producer pauses after an image, the next
    # image's first pixel comes in the cycle the image's last window is read (the cycle before
    # the consumer, always ready, takes it)
    pixels, per_image = h * w, dut.oh * dut.ow
    paused = [n for n in range(images - 1) if trace["i_cycles"][(n + 1) * pixels]
              > trace["i_cycles"][(n + 1) * pixels - 1] + 1]
    for n in paused:
        assert trace["i_cycles"][(n + 1) * pixels] == trace["o_cycles"][(n + 1) * per_image - 1] - 1
    # the units whose last window needs the image's last pixel pause after every image (w1, w4
    # and w5 leave the last row or column out: their last window comes before it)
    assert bool(paused) == (unit not in (1, 4, 5))
