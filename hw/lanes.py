"""`LaneMap`: a stream whose lanes are a fixed selection of another's, or constant 0.

A crossbar whose rows are not the window's lanes in order (a block-diagonal layout, say;
`imcflow.sw.ops.crossbar.gather_lanes`) reads its window through one: pure wiring.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.streams import VectorLayout, vector_stream

__all__ = ["LaneMap"]


class LaneMap(wiring.Component):
    """Output lane ``r`` is input lane ``lanes[r]``, or 0 where ``lanes[r] < 0``; ``valid``,
    ``ready`` and ``last`` pass through (`imcflow.sw.ops.crossbar.gather_lanes` is its model).

    Parameters
    ----------
    layout : VectorLayout
        The input payload.
    lanes : sequence of int
        For each output lane, the input lane it carries (``-1 .. layout.lanes - 1``).

    Attributes
    ----------
    i : In(stream of ``layout``)
    o : Out(vector_stream(len(lanes), layout.bits, layout.signed))
    latency : int
        0: combinational.

    Raises
    ------
    TypeError, ValueError
        If ``layout`` is not a `VectorLayout` or a lane is out of range.
    """

    latency = 0

    def __init__(self, layout: VectorLayout, lanes):
        if not isinstance(layout, VectorLayout):
            raise TypeError(f"Layout must be a VectorLayout, not {layout!r}")
        self.lanes = [int(r) for r in lanes]
        if not self.lanes:
            raise ValueError("Lanes must not be empty")
        for r in self.lanes:
            if not -1 <= r < layout.lanes:
                raise ValueError(f"Lane {r} is out of range -1..{layout.lanes - 1}")
        self.layout = layout
        super().__init__({"i": In(vector_stream(layout.lanes, layout.bits, layout.signed)),
                          "o": Out(vector_stream(len(self.lanes), layout.bits, layout.signed))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready), o.payload.last.eq(i.payload.last)]
        m.d.comb += [o.payload.data[r].eq(i.payload.data[lane] if lane >= 0 else 0)
                     for r, lane in enumerate(self.lanes)]
        return m
