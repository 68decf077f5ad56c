"""Replicated crossbar layers: a distributor, ``r`` copies of the layer and an in-order merger.

A layer replicated ``r`` times (``LayerMapping.replication``, docs/mapper.md) computes output pixel
``j`` of each image on copy ``j mod r``: every image starts again at copy 0. The copies share one
window source (one window per cycle) and one output stream::

    windows --> Distributor --o[k]--> CrossbarLayer copy k --> Merger --> pixels, in order

`Distributor` hands window ``j`` to copy ``j mod r``; `Merger` takes output pixel ``j`` from copy
``j mod r``, so the pixels leave in raster order whatever the copies' timing. `ReplicatedLayer`
composes them; with ``r = 1`` the generator uses the `~imcflow.hw.core.CrossbarLayer` alone.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.core import CrossbarLayer
from imcflow.sw.timing import MERGE_LATENCY
from imcflow.validate import check_int

__all__ = ["Distributor", "Merger", "ReplicatedLayer"]


def _next_copy(sel, copies: int, last):
    """The copy after ``sel``: the next one, or copy 0 after the last beat of an image."""
    return Mux(last | (sel == copies - 1), 0, sel + 1)


class Distributor(wiring.Component):
    """Hands beat ``j`` of each image to output ``j mod copies`` (round robin, restarting at
    output 0 after each beat with ``last``).

    Parameters
    ----------
    payload_shape : VectorLayout
        The beat (a window); its ``last`` field ends an image.
    copies : int
        Number of outputs, at least 2.

    Attributes
    ----------
    i : In(stream.Signature(payload_shape))
    o : Out(stream.Signature(payload_shape)).array(copies)
        ``o[k].valid`` is ``i.valid`` while output ``k`` is the one whose turn it is;
        ``i.ready`` is that output's ``ready``.
    latency : int
        0: combinational.
    interval : int
        1: one beat per cycle when the chosen output is ready.
    """

    latency = 0
    interval = 1

    def __init__(self, payload_shape, copies: int):
        check_int("copies", copies, 2)
        self.copies = copies
        signature = stream.Signature(payload_shape)
        super().__init__({"i": In(signature), "o": Out(signature).array(copies)})

    def elaborate(self, platform):
        m = Module()
        sel = Signal(range(self.copies))
        ready = 0
        for k, o in enumerate(self.o):
            m.d.comb += [o.payload.eq(self.i.payload), o.valid.eq(self.i.valid & (sel == k))]
            ready |= o.ready & (sel == k)
        m.d.comb += self.i.ready.eq(ready)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += sel.eq(_next_copy(sel, self.copies, self.i.payload.last))
        return m


class Merger(wiring.Component):
    """Takes beat ``j`` of each image from input ``j mod copies`` into a registered output: the
    inverse of `Distributor`, so beats leave in the order they were distributed.

    Parameters
    ----------
    payload_shape : VectorLayout
        The beat (an output pixel); its ``last`` field ends an image.
    copies : int
        Number of inputs, at least 2.

    Attributes
    ----------
    i : In(stream.Signature(payload_shape)).array(copies)
        ``i[k].ready`` is high while input ``k`` has its turn and the output register is free or
        being emitted.
    o : Out(stream.Signature(payload_shape))
        Registered: ``valid`` and ``payload`` depend on no input combinationally.
    latency : int
        1: the output register.
    interval : int
        1: one beat per cycle when the input whose turn it is keeps up.
    """

    latency = MERGE_LATENCY
    interval = 1

    def __init__(self, payload_shape, copies: int):
        check_int("copies", copies, 2)
        self.copies = copies
        signature = stream.Signature(payload_shape)
        super().__init__({"i": In(signature).array(copies), "o": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        o = self.o
        sel = Signal(range(self.copies))
        free = ~o.valid | o.ready
        valid = 0
        for k, i in enumerate(self.i):
            m.d.comb += i.ready.eq(free & (sel == k))
            valid |= i.valid & (sel == k)
        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(free & valid):
            m.d.sync += o.valid.eq(1)
            for k, i in enumerate(self.i):
                with m.If(sel == k):
                    m.d.sync += [o.payload.eq(i.payload),
                                 sel.eq(_next_copy(sel, self.copies, i.payload.last))]
        return m


class ReplicatedLayer(wiring.Component):
    """``copies`` identical `~imcflow.hw.core.CrossbarLayer` s behind a `Distributor` and a
    `Merger`: copy ``j mod copies`` computes output pixel ``j`` of each image.

    Parameters
    ----------
    weight, bias, requantizer, adc_shift, params, target
        As `~imcflow.hw.core.CrossbarLayer`; every copy holds the same weight image.
    copies : int
        Replication ``r``, at least 2.

    Attributes
    ----------
    i : In(vector_stream(rows, params.act_bits))
        Windows, one per output pixel, ``last`` on each image's last.
    o : Out(vector_stream(C_out, requantizer.bits, requantizer.signed))
        Output pixels in raster order.
    layers : list of CrossbarLayer
        The copies.
    latency : int
        ``CrossbarLayer.latency + Merger.latency``: window handshake to output ``valid`` when
        nothing stalls.
    interval : int
        The copy interval: copy ``k`` takes a window every ``CrossbarLayer.interval`` cycles, so
        ``r`` consecutive windows can be taken in ``r`` consecutive cycles, and ``P`` output pixels
        take ``ceil(P / r) * interval`` cycles.
    """

    def __init__(self, weight, bias, requantizer, *, adc_shift: int, params, copies: int,
                 target: str = "fpga"):
        check_int("copies", copies, 2)
        self.layers = [CrossbarLayer(weight, bias, requantizer, adc_shift=adc_shift, params=params,
                                     target=target) for _ in range(copies)]
        first = self.layers[0]
        self.distributor = Distributor(first.i.payload.shape(), copies)
        self.merger = Merger(first.o.payload.shape(), copies)
        self.latency = first.latency + self.merger.latency
        self.interval = first.interval
        super().__init__({"i": In(first.i.signature.flip()), "o": Out(first.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.distributor = self.distributor
        m.submodules.merger = self.merger
        wiring.connect(m, wiring.flipped(self.i), self.distributor.i)
        for k, layer in enumerate(self.layers):
            m.submodules[f"copy_{k}"] = layer
            wiring.connect(m, self.distributor.o[k], layer.i)
            wiring.connect(m, layer.o, self.merger.i[k])
        wiring.connect(m, self.merger.o, wiring.flipped(self.o))
        return m
