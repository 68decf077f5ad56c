# amaranth: UnusedElaboratable=no
"""Formal proofs (k-induction, SymbiYosys + z3) of the window buffers' occupancy bounds.

The spec leaves the environment free (any pixel, ``valid`` and ``ready`` in every cycle) and
elaborates a `WindowSource` for ``platform="formal"``, which adds the components' own assertions:

- the line buffer never holds more than ``words`` pixels: from ``keep`` (the oldest pixel a window
  not yet read needs) to the last written, ``count - keep <= words``; a frame buffer never more
  than two images;
- every pixel of the window being read lies in ``[keep, need]`` and, when read, in
  ``[level - words, level)``: it has been written (never an unwritten word) and not overwritten
  (never a pixel still needed), counting the write of the same cycle;
- each tap is read at the address where that pixel was written: the generator's addresses and
  the buffer's write pointer agree with the same ``origin`` (address of the image's first pixel);
- ``keep`` never decreases within an image, and the counters stay on their stride grid.

The spec adds the stream rule on ``o`` (an offered window stays, unchanged, until taken). Covers
show that a full buffer, a stalled producer and two image boundaries are reachable, so the proofs
are not vacuous; a buffer that may overwrite one pixel too early must fail the proof.
"""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Cover, Elaboratable, Module, Signal, Value

from imcflow.hw.im2col import STRATEGIES, WindowSource
from imcflow.hw.linebuffer import LineBuffer
from imcflow.sw.geometry import WindowGeometry
from imcflow.verif.formal import FormalError, check


class WindowSourceSpec(Elaboratable):
    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        i_payload, o_payload = Value.cast(dut.i.payload), Value.cast(dut.o.payload)
        m.d.comb += [dut.i.valid.eq(AnySeq(1)), i_payload.eq(AnySeq(len(i_payload))),
                     dut.o.ready.eq(AnySeq(1))]

        stalled, held = Signal(), Signal.like(o_payload)
        m.d.sync += [stalled.eq(dut.o.valid & ~dut.o.ready), held.eq(o_payload)]
        with m.If(stalled):
            m.d.comb += Assert(dut.o.valid & (o_payload == held))

        # Reachability: the producer stalled by a full buffer, then two images completed.
        full, images = Signal(), Signal(range(3))
        with m.If(dut.i.valid & ~dut.i.ready):
            m.d.sync += full.eq(1)
        with m.If(dut.o.valid & dut.o.ready & dut.o.payload.last & (images < 2)):
            m.d.sync += images.eq(images + 1)
        m.d.comb += Cover(full & (images == 2))
        return m


# h, w, c, bits, kernel, stride, padding, strategy, passes (the window read over that many cycles)
PROOFS = [
    (4, 4, 1, 1, 3, 1, 2, "line", 1),    # padding > stride: keep is not the current window's first
    (5, 5, 1, 1, 3, 2, 1, "line", 1),    # stride 2, odd size, words = 2*W + 3 not a power of 2
    (3, 3, 1, 1, 2, 1, 1, "frame", 1),
    (4, 4, 1, 1, 3, 1, 2, "line", 3),    # 3 read ports: each tap checked in its own pass
    (5, 5, 1, 1, 3, 2, 1, "line", 9),
]


@pytest.mark.parametrize("geometry", PROOFS, ids=["x".join(map(str, g)) for g in PROOFS])
def test_occupancy_bounds_proved(geometry):
    h, w, c, bits, kernel, stride, padding, strategy, passes = geometry
    source = WindowSource(WindowGeometry(h, w, c, kernel, stride, padding), bits, strategy=strategy,
                          passes=passes)
    check(WindowSourceSpec(source), mode="prove", depth=3)


def test_full_buffer_and_image_boundaries_reachable():
    check(WindowSourceSpec(WindowSource(WindowGeometry(3, 3, 1, 2), 1)), mode="cover", depth=24)


class EagerLineBuffer(LineBuffer):
    """A line buffer that accepts one pixel more than it may: it overwrites a needed pixel."""

    def _may_write(self, shifted, keep):
        return shifted(-self.words) <= keep


def test_proof_fails_on_an_overwriting_buffer(monkeypatch):
    monkeypatch.setitem(STRATEGIES, "line", EagerLineBuffer)
    with pytest.raises(FormalError, match="failed assertion"):
        check(WindowSourceSpec(WindowSource(WindowGeometry(4, 4, 1, 3, 1, 1), 1)), mode="prove",
              depth=3)
