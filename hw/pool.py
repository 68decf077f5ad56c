"""Pooling: max and average pooling over k x k windows, and global average pooling.

`MaxPool` and `AvgPool` are the shared window source (`imcflow.hw.im2col.WindowSource`) followed
by a reducer over the ``k*k`` pixels of each window: `WindowMax` (per-channel maximum) or
`WindowAverage` (per-channel sum, requantized). `GlobalAvgPool` accumulates each channel over a
whole image. All are bit-exact with `imcflow.sw.golden` (``max_pool``, ``avg_pool``,
``global_avg_pool``); docs/pooling-residual.md explains the design.

The requantization is `imcflow.hw.arith.requantize_sum`, the RTL twin of the
`imcflow.sw.arith` rules shared with the residual join.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from imcflow.errors import UserError
from imcflow.hw.arith import (emptied_by_last_pass, fill_products, pass_counter,
                               product_shape, requantize_sum, rounding_constant)
from imcflow.hw.im2col import WindowSource
from imcflow.hw.linebuffer import check_window
from imcflow.hw.streams import vector_stream
from imcflow.sw.arith import Requantizer, act_range, check_requantizer
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.timing import AVG_POOL_LATENCY, GLOBAL_POOL_LATENCY, MAX_POOL_LATENCY
from imcflow.validate import check_int

__all__ = ["WindowMax", "WindowAverage", "MaxPool", "AvgPool", "GlobalAvgPool"]


def _tree(op, values):
    """``op`` folded over ``values`` as a balanced tree (depth ``ceil(log2(len(values)))``)."""
    while len(values) > 1:
        values = [op(*values[j:j + 2]) if j + 1 < len(values) else values[j]
                  for j in range(0, len(values), 2)]
    return values[0]


class _WindowReducer(wiring.Component):
    """Ports, checks and the registered stages shared by the window reducers.

    A subclass defines ``_stages(taps)``: from the ``k*k`` lane values of one channel in window
    order, a list of functions, each giving the value registered in its stage from the previous
    stage's register (the first from nothing: the taps); the last stage's register is the output
    lane. ``latency`` is their number; each register advances when the next is empty or being
    emptied, the first takes the input.
    """

    interval = 1

    def __init__(self, kernel, c, bits, signed, out_bits, out_signed):
        check_int("kernel", kernel, 1)
        check_int("c", c, 1)
        check_int("bits", bits, 1)
        self.kernel, self.c, self.bits, self.signed = kernel, c, bits, bool(signed)
        super().__init__({
            "i": In(vector_stream(kernel * kernel * c, bits, self.signed)),
            "o": Out(vector_stream(c, out_bits, out_signed)),
        })

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        stages = [self._stages([i.p.data[t * self.c + ch] for t in range(self.kernel ** 2)])
                  for ch in range(self.c)]
        assert all(len(s) == self.latency for s in stages)
        # registers[k]: (valid, last, one value per channel); the last is the output
        registers, values = [], [None] * self.c
        for k in range(self.latency - 1):
            values = [stages[ch][k](values[ch]) for ch in range(self.c)]
            values = [Signal(v.shape(), name=f"stage{k}_{ch}") for ch, v in enumerate(values)]
            registers.append((Signal(name=f"stage{k}_valid"), Signal(name=f"stage{k}_last"),
                              values))
        registers.append((o.valid, o.p.last, list(o.p.data)))
        free = ~o.valid | o.ready
        frees = [free]
        for valid, _, _ in reversed(registers[:-1]):
            free = ~valid | free
            frees.insert(0, free)
        m.d.comb += i.ready.eq(frees[0])
        source = (i.valid, i.p.last, [None] * self.c)
        for k, ((valid, last, regs), free) in enumerate(zip(registers, frees)):
            with m.If(free):
                m.d.sync += [valid.eq(source[0]), last.eq(source[1])]
                m.d.sync += [r.eq(stages[ch][k](source[2][ch])) for ch, r in enumerate(regs)]
            source = (valid, last, regs)
        return m


class WindowMax(_WindowReducer):
    """Per-channel maximum over the ``k*k`` pixels of a window: the max-pooling reducer.

    Output lane ``ch`` is the maximum of input lanes ``t*c + ch`` for ``t`` in ``0..k*k-1`` (the
    im2col order of `imcflow.sw.golden.windows`): a comparator tree of depth
    ``ceil(log2(k*k))`` into the output register.

    Parameters
    ----------
    kernel : int
        Window size ``k``.
    c : int
        Channels.
    bits : int
        Lane width of input and output.
    signed : bool
        Whether lanes are two's complement.

    Attributes
    ----------
    i : In(vector_stream(kernel*kernel*c, bits, signed))
        Window stream; ``last`` is passed through.
    o : Out(vector_stream(c, bits, signed))
        Pixel stream.
    latency : int
        `imcflow.sw.timing.MAX_POOL_LATENCY` (1): registered output.
    interval : int
        1: one window per cycle.

    Raises
    ------
    UserError
        If ``kernel``, ``c`` or ``bits`` is not a positive integer.
    """

    latency = MAX_POOL_LATENCY

    def __init__(self, kernel, c, bits, *, signed=False):
        super().__init__(kernel, c, bits, signed, bits, signed)

    def _stages(self, taps):
        return [lambda _: _tree(lambda a, b: Mux(a > b, a, b), taps)]


class WindowAverage(_WindowReducer):
    """Per-channel sum over the ``k*k`` pixels of a window, requantized: the average-pooling
    reducer.

    Output lane ``ch`` is ``requantizer.apply(sum_t x[t*c + ch])`` (`imcflow.sw.arith.requantize`,
    as `imcflow.sw.golden.avg_pool`): an adder tree of
    ``bits + ceil(log2(k*k))`` bits into the sum register, a constant multiplier into the product
    register, then the rounding adder and the saturation into the output register (the multiply
    takes a register and gives one, for the clock of an FPGA).

    Parameters
    ----------
    kernel, c, bits
        As `WindowMax`.
    requantizer : Requantizer
        One multiplier (about ``2**shift / k**2`` for an average), the shift and the output
        range: ``requantizer.bits`` wide, signed if ``requantizer.signed`` (unsigned saturates
        at 0, which is the ReLU).
    signed : bool
        Whether the input lanes are two's complement.

    Attributes
    ----------
    i : In(vector_stream(kernel*kernel*c, bits, signed))
        Window stream; ``last`` is passed through.
    o : Out(vector_stream(c, requantizer.bits, requantizer.signed))
        Pixel stream.
    requantizer : Requantizer
    mult, shift, act_bits, act_signed
        Its ``mult``, ``shift``, ``bits`` and ``signed``.
    latency : int
        `imcflow.sw.timing.AVG_POOL_LATENCY` (3): the sum, product and output registers.
    interval : int
        1: one window per cycle.

    Raises
    ------
    UserError
        On a parameter of the wrong type or out of its range.
    """

    latency = AVG_POOL_LATENCY

    def __init__(self, kernel, c, bits, requantizer: Requantizer, *, signed=False):
        r = self.requantizer = check_requantizer(requantizer)
        self.mult, self.shift, self.act_bits, self.act_signed = r.mult, r.shift, r.bits, r.signed
        super().__init__(kernel, c, bits, signed, r.bits, r.signed)

    def _stages(self, taps):
        rounding = rounding_constant(self.shift)   # into the product
        return [lambda _: _tree(lambda a, b: a + b, taps),
                lambda total: total * self.mult + rounding,
                lambda product: requantize_sum(product, self.shift, self.act_bits,
                                               self.act_signed, rounded=True)]


class _WindowPool(wiring.Component):
    """A `WindowSource` followed by a window reducer: ports, timing and the connections."""

    interval = 1

    def __init__(self, source: WindowSource, reducer: _WindowReducer):
        self.source, self.reducer = source, reducer
        self.latency = source.latency + reducer.latency
        self.oh, self.ow = source.oh, source.ow
        super().__init__({
            "i": In(source.i.signature.flip()),
            "o": Out(reducer.o.signature),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.source = self.source
        m.submodules.reducer = self.reducer
        wiring.connect(m, wiring.flipped(self.i), self.source.i)
        wiring.connect(m, self.source.o, self.reducer.i)
        wiring.connect(m, self.reducer.o, wiring.flipped(self.o))
        return m


class MaxPool(_WindowPool):
    """``k x k`` max pooling with stride and padding on a pixel stream, as
    `imcflow.sw.golden.max_pool`.

    A `~imcflow.hw.im2col.WindowSource` whose padded taps hold the lowest lane value (0 for an
    unsigned map, ``-2**(bits-1)`` for a signed one, so padding never wins), followed by
    `WindowMax`.

    Parameters
    ----------
    geometry : WindowGeometry
        The input map (``h``, ``w``, ``channels``) and the window (square, equal on both axes).
    bits : int
        Lane width of input and output.
    signed : bool
        Whether lanes are two's complement (input and output).
    strategy : str
        Window buffer of the source: ``"line"`` (default) or ``"frame"``.

    Attributes
    ----------
    i : In(vector_stream(c, bits, signed))
        Pixels in raster order, images back to back, ``last`` on each image's last pixel.
    o : Out(vector_stream(c, bits, signed))
        Pooled pixels in raster order, ``last`` on each image's last.
    source : WindowSource
    reducer : WindowMax
    oh, ow : int
        Output height and width.
    latency : int
        ``source.latency + reducer.latency``: from the handshake of the last pixel a window needs
        to the pooled pixel's ``valid``, when nothing stalls.
    interval : int
        1: one output pixel per cycle while the input keeps up (at stride ``s`` the output runs
        at up to ``1/s**2`` of the input rate).

    Raises
    ------
    UserError
        As `~imcflow.hw.linebuffer.check_window`, or on an unknown ``strategy``.
    """

    def __init__(self, geometry: WindowGeometry, bits, *, signed=False, strategy="line"):
        check_window(geometry, bits)
        self.geometry, self.padding = geometry, geometry.padding
        super().__init__(
            WindowSource(geometry, bits, strategy=strategy, signed=signed,
                         pad_value=act_range(bits, signed)[0]),
            WindowMax(geometry.kernel, geometry.channels, bits, signed=signed))


class AvgPool(_WindowPool):
    """``k x k`` average pooling with stride and no padding on a pixel stream, as
    `imcflow.sw.golden.avg_pool`: a `~imcflow.hw.im2col.WindowSource` followed by `WindowAverage`.

    Parameters
    ----------
    geometry, bits, signed, strategy
        As `MaxPool` (``signed``: the input lanes'); the geometry has no padding.
    requantizer : Requantizer
        The requantization and output range, as `WindowAverage`.

    Attributes
    ----------
    i : In(vector_stream(c, bits, signed))
        Pixels in raster order, images back to back, ``last`` on each image's last pixel.
    o : Out(vector_stream(c, requantizer.bits, requantizer.signed))
        Pooled pixels in raster order, ``last`` on each image's last.
    source : WindowSource
    reducer : WindowAverage
    oh, ow, latency, interval
        As `MaxPool`.

    Raises
    ------
    UserError
        As `~imcflow.hw.linebuffer.check_window` and `WindowAverage`, on a geometry with
        padding, or on an unknown ``strategy``.
    """

    def __init__(self, geometry: WindowGeometry, bits, requantizer: Requantizer, *, signed=False,
                 strategy="line"):
        check_window(geometry, bits)
        check_requantizer(requantizer)
        if geometry.padding:
            raise UserError(f"window.padding: average pooling has none, not {geometry.padding}")
        self.geometry = geometry
        super().__init__(
            WindowSource(geometry, bits, strategy=strategy, signed=signed),
            WindowAverage(geometry.kernel, geometry.channels, bits, requantizer, signed=signed))


class GlobalAvgPool(wiring.Component):
    """Global average pooling: per-channel sums over the ``h*w`` pixels of each image,
    requantized; one output beat per image.

    Output lane ``ch`` is ``requantizer.apply(sum over the image of x[ch])``, as
    `imcflow.sw.golden.global_avg_pool`. A pixel counter ends each image after
    ``h*w`` pixels (the accumulators are ``bits + ceil(log2(h*w))`` bits wide); the input's
    ``last`` must mark that same pixel, else an ``Assert`` fails in simulation. The sum including
    the last pixel goes into the total register while the accumulators restart, so the next
    image's first pixel may follow in the next cycle; then the total times the multiplier into
    the product register, and the product rounded and saturated into the output register, each
    when the next register is empty or being emptied (the multiply takes a register and gives
    one, for the clock of an FPGA). Each output beat has
    ``last`` set (it is a 1x1 image).

    Parameters
    ----------
    h, w : int
        Input image size.
    c : int
        Channels.
    bits : int
        Input lane width.
    requantizer : Requantizer
        One multiplier (about ``2**shift / (h*w)`` for an average), the shift and the output
        range: ``requantizer.bits`` wide, signed if ``requantizer.signed`` (unsigned saturates
        at 0, which is the ReLU).
    signed : bool
        Whether the input lanes are two's complement.
    passes : int
        Cycles to fill the product register, 1..c: ``lanes = ceil(c / passes)`` multipliers
        shared by the channels (``Arch.requant_lanes``; 1: one per channel). The sum register
        is emptied in the last pass; the next image's last pixel waits for it.

    Attributes
    ----------
    i : In(vector_stream(c, bits, signed))
        Pixels in raster order.
    o : Out(vector_stream(c, requantizer.bits, requantizer.signed))
        One beat per image.
    passes, lanes : int
    requantizer : Requantizer
    mult, shift, act_bits, act_signed
        Its ``mult``, ``shift``, ``bits`` and ``signed``.
    latency : int
        `imcflow.sw.timing.GLOBAL_POOL_LATENCY` (3) ``+ passes - 1``: from the handshake of an
        image's last pixel to the result's ``valid``.
    interval : int
        1: one input pixel per cycle, images back to back; the input stalls only when an image
        ends while the total register holds a result that cannot move on.

    Raises
    ------
    UserError
        On a parameter of the wrong type or out of its range.
    """

    interval = 1

    def __init__(self, h, w, c, bits, requantizer: Requantizer, *, signed=False, passes=1):
        check_int("h", h, 1)
        check_int("w", w, 1)
        check_int("c", c, 1)
        check_int("bits", bits, 1)
        self.passes = check_int("passes", passes, 1, c)
        self.lanes = -(-c // passes)
        self.latency = GLOBAL_POOL_LATENCY + passes - 1
        r = self.requantizer = check_requantizer(requantizer)
        self.h, self.w, self.c, self.bits, self.signed = h, w, c, bits, bool(signed)
        self.mult, self.shift, self.act_bits, self.act_signed = r.mult, r.shift, r.bits, r.signed
        super().__init__({
            "i": In(vector_stream(c, bits, self.signed)),
            "o": Out(vector_stream(c, r.bits, r.signed)),
        })

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        pixels = self.h * self.w
        acc_shape = Shape(self.bits + ceil_log2(pixels), self.signed)
        acc = [Signal(acc_shape, name=f"acc{ch}") for ch in range(self.c)]
        count = Signal(range(max(pixels, 2)))  # one bit at least: Verilog has no empty vectors
        end = count == pixels - 1
        sums = [acc[ch] + i.p.data[ch] for ch in range(self.c)]
        total = [Signal(s.shape(), name=f"total{ch}") for ch, s in enumerate(sums)]
        rounding = rounding_constant(self.shift)   # into the products
        product = [Signal(product_shape(t, self.mult, self.passes, rounding),
                          name=f"product{ch}") for ch, t in enumerate(total)]
        total_valid, product_valid = Signal(), Signal()
        o_free = ~o.valid | o.ready
        product_free = ~product_valid | o_free
        fill = product_free & total_valid
        step, last = pass_counter(m, self.passes, fill)
        total_free = ~total_valid | emptied_by_last_pass(m, self.passes, last, product_free,
                                                         product_valid, "GlobalAvgPool")

        m.d.comb += i.ready.eq(~end | total_free)
        with m.If(o_free):
            m.d.sync += [o.valid.eq(product_valid), o.p.last.eq(1)]
            m.d.sync += [o.p.data[ch].eq(requantize_sum(p, self.shift, self.act_bits,
                                                        self.act_signed, rounded=True))
                         for ch, p in enumerate(product)]
        with m.If(product_free):
            m.d.sync += product_valid.eq(total_valid & last)
        fill_products(m, product, total, [self.mult] * self.c, step, last, self.passes, fill,
                      rounding)
        with m.If(total_free):
            m.d.sync += total_valid.eq(0)
        with m.If(i.valid & i.ready):
            m.d.sync += Assert(i.p.last == end,
                               "GlobalAvgPool: `last` does not mark pixel h*w of the image")
            with m.If(end):
                m.d.sync += [count.eq(0), total_valid.eq(1)]
                m.d.sync += [acc[ch].eq(0) for ch in range(self.c)]
                m.d.sync += [t.eq(s) for t, s in zip(total, sums)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
                m.d.sync += [acc[ch].eq(acc[ch] + i.p.data[ch]) for ch in range(self.c)]
        return m
