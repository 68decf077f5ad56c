"""im2col window generation: windows of a raster pixel stream, one k x k x C vector per beat.

`Im2colAddressGenerator` walks the output pixels ``(oy, ox)`` of a convolution or pooling layer in
raster order and reads each window from a window buffer (`~imcflow.hw.linebuffer.LineBuffer` or
`~imcflow.hw.framebuffer.FrameBuffer`) through one read port per kernel tap, replacing taps that
fall in the zero padding by ``pad_value``. `WindowSource` is the buffer plus the generator: the
block that conv and pooling layers instantiate. Windows are bit-exact with
`imcflow.sw.golden.windows`; `window_schedule` (`imcflow.sw.timing`, the timing contract) is the
cycle-accurate model of their timing.
docs/line-buffer.md explains the design.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.framebuffer import FrameBuffer
from imcflow.hw.linebuffer import BufferReadSignature, LineBuffer, check_geometry
from imcflow.hw.streams import vector_stream
from imcflow.sw.arith import act_range
from imcflow.sw.golden import conv_output_size, line_buffer_words
from imcflow.sw.timing import ADDRESS_GENERATOR_LATENCY, window_schedule

__all__ = ["Im2colAddressGenerator", "WindowSource", "window_schedule", "STRATEGIES"]

#: window buffer class of each buffer strategy
STRATEGIES = {"line": LineBuffer, "frame": FrameBuffer}


def _mod_add(value, constant: int, modulus: int):
    """``(value + constant) mod modulus`` for ``value`` in ``[0, modulus)``."""
    constant %= modulus
    if constant == 0:
        return value
    total = value + constant
    return Mux(total >= modulus, total - modulus, total)


def _check_pad_value(pad_value, bits: int, signed: bool) -> None:
    lo, hi = act_range(bits, signed)
    if not isinstance(pad_value, int) or isinstance(pad_value, bool):
        raise TypeError(f"Pad value must be an integer, not {pad_value!r}")
    if not lo <= pad_value <= hi:
        raise ValueError(f"Pad value must be an integer in {lo}..{hi}, not {pad_value!r}")


class Im2colAddressGenerator(wiring.Component):
    """Reads the window of each output pixel from a window buffer, in output raster order.

    The window of output pixel ``(oy, ox)`` has its top-left tap at input pixel ``(iy, ix) =
    (oy*stride - padding, ox*stride - padding)``. Three counters advance once per window: ``ix``
    and ``iy`` (by ``stride``, back to ``-padding`` at the end of a row or image) and ``base``,
    the memory address of the top-left tap, ``(origin + iy*W + ix) mod words`` where ``origin`` is
    the address of the image's first pixel (it grows by ``H*W mod words`` per image). Tap
    ``(ky, kx)`` is read at ``(base + ky*W + kx) mod words``: one constant addition each. A tap
    is padding when ``iy + ky`` is outside ``[0, H)`` or ``ix + kx`` outside ``[0, W)``; the row and
    column masks are registered with the read and select ``pad_value`` instead of the word read.

    A window is read (``en``) in the first cycle in which the buffer's ``level`` covers its last
    pixel ``need = min(iy+k-1, H-1)*W + min(ix+k-1, W-1)`` and the output register is free or
    being emitted. ``keep`` tells the buffer the oldest pixel that this or a later window of the
    image needs.

    Parameters
    ----------
    h, w, c : int
        Height, width and channels of the input feature map.
    bits : int
        Bits per channel value.
    kernel, stride, padding : int
        The window geometry (square kernel, equal stride and zero padding on both axes).
    words : int
        Depth of the buffer read (at least ``line_buffer_words``).
    signed : bool
        Whether pixel values are two's complement.
    pad_value : int
        Value of padded taps (0 by default; the lowest value for signed max pooling).

    Ports
    -----
    buffer : Out(`~imcflow.hw.linebuffer.BufferReadSignature`)
        Read port to the window buffer.
    o : Out(vector_stream(kernel*kernel*c, bits, signed))
        Windows in output raster order, lane ``(ky*kernel + kx)*c + ch`` as in
        `imcflow.sw.golden.windows`; ``last`` on the last window of each image.

    Attributes
    ----------
    oh, ow : int
        Output height and width (``imcflow.sw.golden.conv_output_size``).
    latency : int
        1: a window is valid on ``o`` the cycle after the buffer's ``level`` first covers it.
    interval : int
        1: one window per cycle while the buffer holds their pixels and ``o`` is ready.
    origin : Signal
        Formal hook: address of the first pixel of the image being read, driven (and checked
        against ``base`` and the tap addresses) only when elaborated for ``platform="formal"``.

    Raises
    ------
    TypeError, ValueError
        See `~imcflow.hw.linebuffer.check_geometry`; also if ``words`` is not an integer of at
        least ``line_buffer_words`` or ``pad_value`` is not a lane value.
    """

    latency = ADDRESS_GENERATOR_LATENCY
    interval = 1

    def __init__(self, h: int, w: int, c: int, bits: int, kernel: int, stride: int = 1,
                 padding: int = 0, *, words: int, signed: bool = False, pad_value: int = 0):
        check_geometry(h, w, c, bits, kernel, stride, padding)
        minimum = line_buffer_words(h, w, kernel, stride, padding)
        if not isinstance(words, int) or isinstance(words, bool) or words < 1:
            raise TypeError(f"Words must be a positive integer, not {words!r}")
        if words < minimum:
            raise ValueError(f"Words must be at least {minimum} for this geometry, not {words!r}")
        _check_pad_value(pad_value, bits, signed)
        self.h, self.w, self.c, self.bits = h, w, c, bits
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.words, self.signed, self.pad_value = words, bool(signed), pad_value
        self.oh = conv_output_size(h, kernel, stride, padding)
        self.ow = conv_output_size(w, kernel, stride, padding)
        self.origin = Signal(range(max(words, 2)))
        super().__init__({
            "buffer": Out(BufferReadSignature(pixels=h * w, words=words, taps=kernel * kernel,
                                              width=c * bits)),
            "o": Out(vector_stream(kernel * kernel * c, bits, signed)),
        })

    def elaborate(self, platform):
        m = Module()
        h, w, k, s, p, words = self.h, self.w, self.kernel, self.stride, self.padding, self.words
        iy_end, ix_end = (self.oh - 1) * s - p, (self.ow - 1) * s - p

        # Top-left tap of the window to read next, and its address.
        # (one bit at least for a single row or column of windows or a one-word buffer: Verilog
        # has no empty vectors)
        iy = Signal(range(-p, max(iy_end + 1, 2 - p)), init=-p)
        ix = Signal(range(-p, max(ix_end + 1, 2 - p)), init=-p)
        base = Signal(range(max(words, 2)), init=(-p * w - p) % words)
        last_col, last_row = ix == ix_end, iy == iy_end

        # Comparisons are only built where they can fail (Verilator rejects constant ones).
        def at_most(value, largest, hi):
            return value if largest <= hi else Mux(value > hi, hi, value)

        def at_least_0(value, smallest):
            return value if smallest >= 0 else Mux(value < 0, 0, value)

        def inside(value, smallest, largest, n):
            return Cat(*([value >= 0] if smallest < 0 else []),
                       *([value < n] if largest >= n else [])).all()

        need = (at_most(iy + k - 1, iy_end + k - 1, h - 1) * w
                + at_most(ix + k - 1, ix_end + k - 1, w - 1))
        first = at_least_0(iy, -p) * w + at_least_0(ix, -p)
        # In the top padding rows, the next row of windows starts at pixel 0 again, before this
        # window's first pixel: keep that.
        keep = Mux((iy + s <= 0) & ~last_row, 0, first) if p >= s else first

        fire = Signal()
        m.d.comb += [
            fire.eq((self.buffer.level > need) & (~self.o.valid | self.o.ready)),
            self.buffer.en.eq(fire),
            self.buffer.done.eq(fire & last_col & last_row),
            self.buffer.keep.eq(keep),
        ]
        for ky in range(k):
            for kx in range(k):
                m.d.comb += self.buffer.addr[ky * k + kx].eq(_mod_add(base, ky * w + kx, words))

        rows, cols, last = Signal(k), Signal(k), Signal()
        with m.If(fire):
            m.d.sync += [
                self.o.valid.eq(1),
                last.eq(last_col & last_row),
                rows.eq(Cat(inside(iy + ky, ky - p, iy_end + ky, h) for ky in range(k))),
                cols.eq(Cat(inside(ix + kx, kx - p, ix_end + kx, w) for kx in range(k))),
            ]
            with m.If(~last_col):
                m.d.sync += [ix.eq(ix + s), base.eq(_mod_add(base, s, words))]
            with m.Elif(~last_row):
                m.d.sync += [ix.eq(-p), iy.eq(iy + s),
                             base.eq(_mod_add(base, s * w - ix_end - p, words))]
            with m.Else():
                m.d.sync += [ix.eq(-p), iy.eq(-p),
                             base.eq(_mod_add(base, h * w - (iy_end + p) * w - ix_end - p, words))]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        lane_mask = (1 << self.bits) - 1
        pad_word = Const(sum((self.pad_value & lane_mask) << (lane * self.bits)
                             for lane in range(self.c)), self.c * self.bits)
        m.d.comb += [
            self.o.payload.data.eq(Cat(
                Mux(rows[ky] & cols[kx], self.buffer.data[ky * k + kx], pad_word)
                for ky in range(k) for kx in range(k))),
            self.o.payload.last.eq(last),
        ]

        if platform == "formal":
            with m.If(self.buffer.done):
                m.d.sync += self.origin.eq(_mod_add(self.origin, h * w, words))
            # ``keep`` never decreases within an image.
            keep_before, was_done = Signal.like(self.buffer.keep), Signal(init=1)
            m.d.sync += [keep_before.eq(keep), was_done.eq(self.buffer.done)]
            m.d.comb += [
                Assert((ix >= -p) & (ix <= ix_end) & ((ix + p) % s == 0)),
                Assert((iy >= -p) & (iy <= iy_end) & ((iy + p) % s == 0)),
                Assert((base < words) & (self.origin < words)),
                Assert(base == (self.origin + iy * w + ix) % words),
                Assert(was_done | (keep >= keep_before)),
            ]
            level = self.buffer.level
            for ky in range(k):
                for kx in range(k):
                    index = (iy + ky) * w + ix + kx
                    with m.If((iy + ky >= 0) & (iy + ky < h) & (ix + kx >= 0) & (ix + kx < w)):
                        # Every pixel of the window lies in [keep, need] and is read at its
                        # address; when read, it has been written and not overwritten.
                        m.d.comb += [
                            Assert((keep <= index) & (index <= need)),
                            Assert(self.buffer.addr[ky * k + kx] == (self.origin + index) % words),
                            Assert(~fire | ((level - words <= index) & (index < level))),
                        ]
        return m


class WindowSource(wiring.Component):
    """Window vectors of a raster pixel stream: a window buffer and an `Im2colAddressGenerator`.

    The block every conv and pooling layer instantiates. With ``strategy="line"`` the buffer is a
    `~imcflow.hw.linebuffer.LineBuffer` (``line_buffer_words`` words, windows as soon as their
    pixels have arrived); with ``"frame"`` it is a `~imcflow.hw.framebuffer.FrameBuffer`
    (``2*H*W`` words, windows of an image once all of it has arrived). Both emit the same windows
    in the same order at up to one per cycle, and lose no cycle at image boundaries (see
    `window_schedule` and docs/line-buffer.md).

    Parameters
    ----------
    h, w, c : int
        Height, width and channels of the input feature map.
    bits : int
        Bits per channel value.
    kernel, stride, padding : int
        The window geometry (square kernel, equal stride and zero padding on both axes).
    strategy : str
        ``"line"`` or ``"frame"``.
    signed : bool
        Whether pixel values are two's complement.
    pad_value : int
        Value of padded taps (0 by default).

    Ports
    -----
    i : In(vector_stream(c, bits, signed))
        Pixels in raster order, images back to back.
    o : Out(vector_stream(kernel*kernel*c, bits, signed))
        Windows in output raster order and im2col lane order; ``last`` on each image's last.

    Attributes
    ----------
    buffer : LineBuffer or FrameBuffer
    generator : Im2colAddressGenerator
    words : int
        Memory depth in pixels: ``line_buffer_words(h, w, kernel, stride, padding)`` (line) or
        ``2*h*w`` (frame); each word has ``c * bits`` bits.
    latency : int
        1: a window is valid the cycle after the handshake of the last pixel it needs (frame:
        the last pixel of its image), when nothing stalls.
    interval : int
        1: one window per cycle while pixels keep up and ``o`` is ready.
    oh, ow : int
        Output height and width.

    Raises
    ------
    TypeError, ValueError
        See `Im2colAddressGenerator`; also if ``strategy`` is not ``"line"`` or ``"frame"``.
    """

    interval = 1

    def __init__(self, h: int, w: int, c: int, bits: int, kernel: int, stride: int = 1,
                 padding: int = 0, *, strategy: str = "line", signed: bool = False,
                 pad_value: int = 0):
        if strategy not in STRATEGIES:
            raise ValueError(f"Strategy must be 'line' or 'frame', not {strategy!r}")
        # Check everything before creating the parts, so that none is left unused.
        check_geometry(h, w, c, bits, kernel, stride, padding)
        _check_pad_value(pad_value, bits, signed)
        self.strategy = strategy
        self.buffer = STRATEGIES[strategy](h, w, c, bits, kernel, stride, padding, signed=signed)
        self.generator = Im2colAddressGenerator(h, w, c, bits, kernel, stride, padding,
                                                words=self.buffer.words, signed=signed,
                                                pad_value=pad_value)
        self.words = self.buffer.words
        self.latency = self.buffer.latency + self.generator.latency
        self.oh, self.ow = self.generator.oh, self.generator.ow
        super().__init__({
            "i": In(vector_stream(c, bits, signed)),
            "o": Out(vector_stream(kernel * kernel * c, bits, signed)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = self.buffer
        m.submodules.generator = self.generator
        wiring.connect(m, wiring.flipped(self.i), self.buffer.i)
        wiring.connect(m, self.generator.buffer, self.buffer.r)
        wiring.connect(m, self.generator.o, wiring.flipped(self.o))
        if platform == "formal":
            m.d.comb += Assert(self.buffer.origin == self.generator.origin)
        return m
