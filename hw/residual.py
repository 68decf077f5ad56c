"""Residual connection blocks: the fork into main and skip path, the skip FIFO, and the join.

A residual block of the network becomes::

    i -> Fork -+-> o_main -> (main path: conv layers) -> Join.i_a -+-> Join -> o
               +-> o_skip -> SkipFifo(depth) ---------> Join.i_b -+

The fork lets a pixel go only when both paths have taken it, and the join consumes one pixel of
each path per output, so the skip FIFO must hold every pixel that enters the main path before the
main path produces the join's matching pixel. The mapper computes that depth; with less, the fork
stalls waiting for FIFO space while the join waits for the main path, which waits for the fork:
a deadlock, which these blocks do not hide (docs/pooling-residual.md).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Const, Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.arith import (emptied_by_last_pass, fill_products, pass_counter,
                               product_shape, requantize_sum, rounding_constant)
from imcflow.hw.fifo import PipelineFifo
from imcflow.hw.streams import vector_stream
from imcflow.sw.arith import Requantizer, check_requantizer
from imcflow.sw.timing import FORK_LATENCY, JOIN_LATENCY
from imcflow.validate import check_int

__all__ = ["Fork", "SkipFifo", "Join"]


class Fork(wiring.Component):
    """Broadcast of one stream to the main path and the skip path of a residual connection.

    Each output takes each input beat exactly once and in order; the input beat is consumed in the
    cycle in which the second of the two outputs takes it. A one-bit register per output remembers
    that it has taken the current beat, so an output that is ready earlier does not see the beat
    twice, and neither output waits for the other. ``valid`` of an output never depends on
    ``ready`` (only on the input's ``valid`` and that register).

    Parameters
    ----------
    payload_shape : ShapeLike
        Shape of the payload, e.g. ``VectorLayout(C, bits)``.

    Attributes
    ----------
    i : In(stream.Signature(payload_shape))
        The input stream.
    o_main, o_skip : Out(stream.Signature(payload_shape))
        The two copies: the residual block's main path and its skip path.
    taken : tuple of two Signal(1)
        Whether ``o_main`` and ``o_skip`` have taken the input beat now offered (the state, for
        formal proofs and waveforms).
    latency : int
        `imcflow.sw.timing.FORK_LATENCY` (0): the payload and ``valid`` pass through
        combinationally.
    interval : int
        1: one beat per cycle when both consumers are ready.
    """

    latency = FORK_LATENCY
    interval = 1

    def __init__(self, payload_shape):
        self.payload_shape = payload_shape
        self.taken = (Signal(name="main_taken"), Signal(name="skip_taken"))
        signature = stream.Signature(payload_shape)
        super().__init__({"i": In(signature), "o_main": Out(signature), "o_skip": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        outputs = (self.o_main, self.o_skip)
        done = [t | o.ready for t, o in zip(self.taken, outputs)]
        m.d.comb += self.i.ready.eq(done[0] & done[1])
        for o, t in zip(outputs, self.taken):
            m.d.comb += [o.payload.eq(self.i.payload), o.valid.eq(self.i.valid & ~t)]
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += t.eq(0)
            with m.Elif(o.valid & o.ready):
                m.d.sync += t.eq(1)
        return m


class SkipFifo(wiring.Component):
    """The skip path of a residual block: a `~imcflow.hw.fifo.PipelineFifo` of ``depth`` beats.

    It holds the pixels that the fork has passed to the skip path while the main path has not
    yet produced their partners. ``depth`` must cover the most pixels the main path takes in
    before the join consumes the matching pair (its line buffers' fill plus its pipeline
    latency); the mapper computes it. A smaller depth is not an error here: the FIFO fills, the
    fork stalls, the main path starves and the join waits for it, a deadlock that ``level ==
    depth`` with the main path idle makes visible.

    Parameters
    ----------
    payload_shape : ShapeLike
        Shape of the payload, e.g. ``VectorLayout(C, bits)``.
    depth : int
        Capacity in beats.

    Attributes
    ----------
    i : In(stream.Signature(payload_shape))
        From the fork's ``o_skip``.
    o : Out(stream.Signature(payload_shape))
        To the join's ``i_b``.
    level : Out(range(depth + 1))
        Beats held.
    fifo : PipelineFifo
    latency : int
        1: a beat accepted in cycle ``t`` is offered in cycle ``t + 1``.
    interval : int
        1 (2 for ``depth = 1``).

    Raises
    ------
    TypeError
        If ``payload_shape`` is not shape-castable.
    UserError
        If ``depth`` is not a positive integer.
    """

    def __init__(self, payload_shape, depth):
        check_int("depth", depth, 1)
        self.fifo = PipelineFifo(payload_shape, depth)
        self.depth, self.latency, self.interval = depth, self.fifo.latency, self.fifo.interval
        super().__init__({
            "i": In(stream.Signature(payload_shape)),
            "o": Out(stream.Signature(payload_shape)),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = self.fifo
        wiring.connect(m, wiring.flipped(self.i), self.fifo.i)
        wiring.connect(m, self.fifo.o, wiring.flipped(self.o))
        m.d.comb += self.level.eq(self.fifo.level)
        return m


class Join(wiring.Component):
    """Element-wise residual add of two pixel streams with rescaling and saturation.

    Output lane ``ch`` is ``saturate(round_shift(a[ch]*mult_a + b[ch]*mult_b, shift))`` to the
    signed or unsigned ``bits`` range of the requantizer, as `imcflow.sw.golden.join`. One output
    beat per pair of input beats: both inputs are consumed together, in the cycle the product
    registers can take ``a*mult_a`` and ``b*mult_b``; the sum register takes their sum, and the
    output register that sum rounded and saturated, each when it is empty or being emptied (so
    a multiply, the adder and the saturation are each a cycle of their own). ``last`` of the two
    inputs must agree; the output's ``last`` is that of ``i_a``. A mismatch means the two paths
    lost alignment (a bug upstream): an ``Assert`` fails in simulation (and in formal proofs),
    and the hardware goes on with ``i_a``'s ``last``.

    Parameters
    ----------
    c : int
        Channels: lanes per pixel, the same on both inputs and the output.
    a_shape, b_shape : Shape
        Lane shapes of ``i_a`` (the main path) and ``i_b`` (the skip path), e.g. ``unsigned(8)``
        or ``signed(8)``: the input signedness.
    requantizer : Requantizer
        Two unsigned ``MULT_BITS``-bit multipliers ``mult = (mult_a, mult_b)``, one per input,
        the right shift (round half up) after their sum, and the output range: ``bits`` wide,
        signed if ``requantizer.signed`` (no ReLU), else unsigned (saturation at 0 is the ReLU).
    passes : int
        Cycles to fill the product registers, 1..c: ``lanes = ceil(c / passes)`` pairs of
        multipliers shared by the channels (``Arch.requant_lanes``; 1: a pair per channel). With
        several passes the inputs are taken into registers first, which the passes read (their
        lanes move down by ``lanes`` after each pass, so a multiplier reads a register,
        `~imcflow.hw.arith.fill_products`).

    Attributes
    ----------
    i_a : In(vector_stream(c, a_shape.width, a_shape.signed))
    i_b : In(vector_stream(c, b_shape.width, b_shape.signed))
    o : Out(vector_stream(c, requantizer.bits, requantizer.signed))
    requantizer : Requantizer
    mult_a, mult_b, shift, act_bits, act_signed
        Its two multipliers, ``shift``, ``bits`` and ``signed``.
    total_valid, sum_valid : Signal(1)
        Whether the product registers hold a pair's products and whether the sum register holds
        their sum (the state, for formal proofs).
    passes, lanes : int
    latency : int
        From the input handshake through the product and sum registers to the output
        register: `imcflow.sw.timing.JOIN_LATENCY` (3) for one pass; ``3 + passes`` for several
        (the input registers, then the passes).
    interval : int
        ``passes``: one output per ``passes`` cycles when both inputs are valid and the output
        is ready.

    Raises
    ------
    UserError
        On a parameter out of its range (``TypeError`` for a shape that is not one).
    """

    def __init__(self, c, a_shape, b_shape, requantizer: Requantizer, *, passes=1):
        check_int("c", c, 1)
        self.passes = self.interval = check_int("passes", passes, 1, c)
        self.latency = JOIN_LATENCY + (passes if passes > 1 else 0)
        self.lanes = -(-c // passes)
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        r = self.requantizer = check_requantizer(requantizer, 2)
        self.c, self.a_shape, self.b_shape = c, a_shape, b_shape
        (self.mult_a, self.mult_b), self.shift = r.mult, r.shift
        self.act_bits, self.act_signed = r.bits, r.signed
        self.total_valid, self.sum_valid = Signal(name="total_valid"), Signal(name="sum_valid")
        super().__init__({
            "i_a": In(vector_stream(c, a_shape.width, a_shape.signed)),
            "i_b": In(vector_stream(c, b_shape.width, b_shape.signed)),
            "o": Out(vector_stream(c, r.bits, r.signed)),
        })

    def elaborate(self, platform):
        m = Module()
        a, b, o = self.i_a, self.i_b, self.o
        passes, c = self.passes, self.c
        # With several passes, the rounding constant goes into the sum (a multiplier, a DSP on
        # an FPGA, then has nothing after it in its cycle), so the output only shifts and
        # saturates.
        rounding = rounding_constant(self.shift) if passes > 1 else 0
        total = [(Signal(product_shape(a.p.data[ch], self.mult_a, passes), name=f"product_a{ch}"),
                  Signal(product_shape(b.p.data[ch], self.mult_b, passes), name=f"product_b{ch}"))
                 for ch in range(c)]
        total_valid, total_last = self.total_valid, Signal()

        def total_sum(ra, rb):
            return ra + rb + rounding if rounding else ra + rb
        sums = [Signal(total_sum(ra, rb).shape(), name=f"sum{ch}")
                for ch, (ra, rb) in enumerate(total)]
        sum_valid, sum_last = self.sum_valid, Signal()
        o_free = ~o.valid | o.ready
        sum_free = ~sum_valid | o_free
        total_free = ~total_valid | sum_free
        if passes == 1:
            # both inputs straight into the product registers
            operands = ([a.p.data[ch] for ch in range(c)], [b.p.data[ch] for ch in range(c)])
            valid, last_in, take = a.valid & b.valid, a.p.last, total_free
            fill, step, last = total_free & valid, Const(0, 1), Const(1, 1)
        else:
            # into the input registers, which the passes read (and move down)
            operands = ([Signal(self.a_shape, name=f"in_a{ch}") for ch in range(c)],
                        [Signal(self.b_shape, name=f"in_b{ch}") for ch in range(c)])
            valid, last_in = Signal(name="in_valid"), Signal(name="in_last")
            fill = total_free & valid
            step, last = pass_counter(m, passes, fill)
            take = ~valid | emptied_by_last_pass(m, passes, last, total_free, total_valid,
                                                 "Join")
            with m.If(take):
                m.d.sync += [valid.eq(a.valid & b.valid), last_in.eq(a.p.last)]
            with m.If(take):   # loaded whether taken or not (`valid` says which)
                m.d.sync += [r.eq(inp.p.data[ch]) for inp, regs in zip((a, b), operands)
                             for ch, r in enumerate(regs)]
        m.d.comb += [a.ready.eq(take & b.valid), b.ready.eq(take & a.valid)]
        with m.If(total_free):
            m.d.sync += [total_valid.eq(valid & last), total_last.eq(last_in)]
        for regs, k, ops in (([t[0] for t in total], self.mult_a, operands[0]),
                             ([t[1] for t in total], self.mult_b, operands[1])):
            fill_products(m, regs, ops, [k] * c, step, last, passes, fill)
        with m.If(a.valid & a.ready):
            m.d.sync += Assert(a.p.last == b.p.last, "Join: `last` of i_a and i_b disagree")
        with m.If(sum_free):
            m.d.sync += [sum_valid.eq(total_valid), sum_last.eq(total_last)]
            m.d.sync += [s.eq(total_sum(ra, rb)) for s, (ra, rb) in zip(sums, total)]
        with m.If(o_free):
            m.d.sync += [o.valid.eq(sum_valid), o.p.last.eq(sum_last)]
            m.d.sync += [o.p.data[ch].eq(requantize_sum(s, self.shift, self.act_bits,
                                                        self.act_signed, rounded=bool(rounding)))
                         for ch, s in enumerate(sums)]
        return m


