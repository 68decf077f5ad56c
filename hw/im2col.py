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

from amaranth.hdl import Array, Assert, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.arith import pass_counter
from imcflow.hw.framebuffer import FrameBuffer
from imcflow.hw.linebuffer import BufferReadSignature, LineBuffer, check_window
from imcflow.hw.streams import vector_stream
from imcflow.sw.arith import act_range
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.timing import ADDRESS_GENERATOR_LATENCY, window_ports, window_schedule
from imcflow.validate import check_choice, check_int

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
    check_int("pad_value", pad_value, *act_range(bits, signed))


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
    image needs, ``keep_next`` what it becomes when the window is read (``read``), so that the
    buffer's write decision is a register too. ``need`` and ``keep`` are registers loaded one
    window ahead, from the registers ``(iy1, ix1)`` that hold the position of the window after
    it, so no counter's increment lies before them in a cycle.

    With ``passes > 1`` the window is read over ``passes`` cycles through ``ports = ceil(k*k /
    passes)`` read ports (tap ``t`` by port ``t mod ports`` in pass ``t // ports``): the taps of
    every pass but the last go into registers, the last pass's stay in the read ports. The
    counters, ``need`` and ``keep`` move on in the last pass, so the buffer keeps the window's
    pixels until then. A consumer that takes a window every ``passes`` cycles or less often (a
    folded crossbar tile) loses nothing, and the buffer needs ``ports`` copies of its memory
    instead of ``k*k``.

    Parameters
    ----------
    geometry : WindowGeometry
        The input map (``h``, ``w``, ``channels``) and the window (square kernel, equal stride
        and zero padding on both axes).
    bits : int
        Bits per channel value.
    words : int
        Depth of the buffer read (at least ``geometry.line_words``).
    signed : bool
        Whether pixel values are two's complement (the lanes the block takes and passes on).
    pad_value : int
        Value of padded taps (0 by default; the lowest value for signed max pooling).
    passes : int
        Cycles to read a window (1 by default: every tap at once). Rounded down to the fewest
        that the same number of ports needs.

    Ports
    -----
    buffer : Out(`~imcflow.hw.linebuffer.BufferReadSignature`)
        Read port to the window buffer.
    o : Out(vector_stream(kernel*kernel*c, bits, signed))
        Windows in output raster order, lane ``(ky*kernel + kx)*c + ch`` as in
        `imcflow.sw.golden.windows`; ``last`` on the last window of each image.

    Attributes
    ----------
    geometry : WindowGeometry
    oh, ow : int
        Output height and width (``geometry.out_h``, ``geometry.out_w``).
    passes, ports : int
        Cycles to read a window, and the buffer's read ports (``ceil(k*k / passes)``).
    latency : int
        ``passes`` (`imcflow.sw.timing.ADDRESS_GENERATOR_LATENCY` + ``passes - 1``): a window is
        valid on ``o`` ``passes`` cycles after the cycle the buffer's ``level`` first covers it
        (its read starts there).
    interval : int
        ``passes``: one window per ``passes`` cycles while the buffer holds their pixels and
        ``o`` is ready.
    origin : Signal
        Formal hook: address of the first pixel of the image being read, driven (and checked
        against ``base`` and the tap addresses) only when elaborated for ``platform="formal"``.

    Raises
    ------
    UserError
        See `~imcflow.hw.linebuffer.check_window`; also if ``words`` is not an integer of at
        least ``geometry.line_words``, ``pad_value`` is not a lane value or ``passes`` is not in
        ``1..k*k``.
    """

    def __init__(self, geometry: WindowGeometry, bits: int, *, words: int, signed: bool = False,
                 pad_value: int = 0, passes: int = 1):
        check_window(geometry, bits)
        check_int("words", words, geometry.line_words)
        _check_pad_value(pad_value, bits, signed)
        check_int("passes", passes, 1, geometry.taps)
        self.ports, self.passes = window_ports(geometry.taps, passes)
        self.latency = ADDRESS_GENERATOR_LATENCY + self.passes - 1
        self.interval = self.passes
        g = self.geometry = geometry
        self.h, self.w, self.c, self.bits = g.h, g.w, g.channels, bits
        self.kernel, self.stride, self.padding = g.kernel, g.stride, g.padding
        self.words, self.signed, self.pad_value = words, bool(signed), pad_value
        self.oh, self.ow = g.out_h, g.out_w
        self.origin = Signal(range(max(words, 2)))
        super().__init__({
            "buffer": Out(BufferReadSignature(pixels=g.pixels, words=words, taps=self.ports,
                                              width=g.channels * bits)),
            "o": Out(vector_stream(g.lanes, bits, signed)),
        })

    def elaborate(self, platform):
        m = Module()
        h, w, k, s, p, words = self.h, self.w, self.kernel, self.stride, self.padding, self.words
        iy_end, ix_end = (self.oh - 1) * s - p, (self.ow - 1) * s - p

        # Top-left tap of the window to read next, and the address of each tap (one register
        # each, so that no addition lies between a register and the memory).
        # (one bit at least for a single row or column of windows or a one-word buffer: Verilog
        # has no empty vectors)
        iy = Signal(range(-p, max(iy_end + 1, 2 - p)), init=-p)
        ix = Signal(range(-p, max(ix_end + 1, 2 - p)), init=-p)
        offsets = [ky * w + kx for ky in range(k) for kx in range(k)]
        addrs = [Signal(range(max(words, 2)), init=(-p * w - p + off) % words, name=f"addr_{t}")
                 for t, off in enumerate(offsets)]
        base = addrs[0]
        last_col, last_row = ix == ix_end, iy == iy_end

        # Comparisons are only built where they can fail (Verilator rejects constant ones).
        def at_most(value, largest, hi):
            return value if largest <= hi else Mux(value > hi, hi, value)

        def at_least_0(value, smallest, mux=Mux):
            return value if smallest >= 0 else mux(value < 0, 0, value)

        def inside(value, smallest, largest, n):
            return Cat(*([value >= 0] if smallest < 0 else []),
                       *([value < n] if largest >= n else [])).all()

        def plus_at_most(value, add, largest, hi):  # min(value + add, hi), compared before adding
            return value + add if largest + add <= hi else Mux(value > hi - add, hi, value + add)

        def need_of(iy, ix):
            return (plus_at_most(iy, k - 1, iy_end, h - 1) * w
                    + plus_at_most(ix, k - 1, ix_end, w - 1))

        def keep_of(iy, ix, mux=Mux):   # (`mux` picks between ints for a register's init)
            first = at_least_0(iy, -p, mux) * w + at_least_0(ix, -p, mux)
            # In the top padding rows, the next row of windows starts at pixel 0 again, before
            # this window's first pixel: keep that.
            return mux((iy + s <= 0) & (iy != iy_end), 0, first) if p >= s else first

        def advance(iy, ix):  # the top-left tap of the window after the one at (iy, ix)
            end_col = ix == ix_end
            return Mux(end_col, Mux(iy == iy_end, -p, iy + s), iy), Mux(end_col, -p, ix + s)

        def keep_after(iy, ix):  # keep_of(*advance(iy, ix)), the advance's cases selected last
            return Mux(ix == ix_end,
                       Mux(iy == iy_end, keep_of(-p, -p, pymux), keep_of(iy + s, -p)),
                       keep_of(iy, ix + s))

        def pymux(c, a, b):   # Mux for ints
            return a if c else b

        # `need` and `keep` of the window to read next are registers, loaded with those of the
        # window after it when it is read; that window's top-left tap is a register pair too
        # (`iy1`, `ix1`, one window ahead of `iy`, `ix`): the read decision and the lookahead
        # both start from registers (the clock rate of an FPGA build).
        first_iy, first_ix = (-p, -p + s) if self.ow > 1 else ((-p + s, -p) if self.oh > 1
                                                                else (-p, -p))
        iy1 = Signal.like(iy, init=first_iy, name="iy1")
        ix1 = Signal.like(ix, init=first_ix, name="ix1")
        iy2, ix2 = advance(iy1, ix1)
        need = Signal(range(max(h * w, 2)),
                      init=min(k - 1 - p, h - 1) * w + min(k - 1 - p, w - 1))
        keep = Signal.like(self.buffer.keep, init=0)  # the first window keeps pixel 0
        keep1 = Signal.like(self.buffer.keep, name="keep1",  # the window after it: `keep_next`
                            init=keep_of(first_iy, first_ix, pymux))

        def moved(a):   # a tap address after the window is read
            return Mux(~last_col, _mod_add(a, s, words),
                       Mux(~last_row, _mod_add(a, s * w - ix_end - p, words),
                           _mod_add(a, h * w - (iy_end + p) * w - ix_end - p, words)))

        lane_mask = (1 << self.bits) - 1
        pad_word = Const(sum((self.pad_value & lane_mask) << (lane * self.bits)
                             for lane in range(self.c)), self.c * self.bits)
        row_in = [inside(iy + ky, ky - p, iy_end + ky, h) for ky in range(k)]
        col_in = [inside(ix + kx, kx - p, ix_end + kx, w) for kx in range(k)]
        free, fire, last = Signal(), Signal(), Signal()
        m.d.comb += [
            free.eq(~self.o.valid | self.o.ready),
            self.buffer.need.eq(need),
            self.buffer.done.eq(fire & last_col & last_row),
            self.buffer.keep.eq(keep),
            self.buffer.keep_next.eq(keep1),
            self.buffer.read.eq(fire),
            self.o.payload.last.eq(last),
        ]
        if self.passes == 1:
            # `fire`: the window is read into the output register. The read ports are enabled
            # whenever that register is free: they then load the window being waited for (or
            # hold it), and `fire` only marks it valid, so the read decision drives few
            # flip-flops.
            reads = [fire] * len(addrs)
            m.d.comb += [fire.eq(self.buffer.covered & free), self.buffer.en.eq(free)]
            m.d.comb += [self.buffer.addr[t].eq(a) for t, a in enumerate(addrs)]
            rows, cols = Signal(k), Signal(k)
            with m.If(free):
                m.d.sync += [last.eq(last_col & last_row), rows.eq(Cat(row_in)),
                             cols.eq(Cat(col_in))]
            m.d.comb += self.o.payload.data.eq(Cat(
                Mux(rows[ky] & cols[kx], self.buffer.data[ky * k + kx], pad_word)
                for ky in range(k) for kx in range(k)))
        else:
            # A read starts when the window is covered and the output register empty (not being
            # emptied: the consumer's ready is no input of the read); pass `step` reads tap
            # `step * ports + q` through port q; `fire` is the last pass (a register),
            # in which the counters move on. A pass's taps are in its ports the cycle after it:
            # into registers (`held`), but for the last pass's, which the ports hold.
            ports, passes = self.ports, self.passes
            go = Signal()
            step, fire_next = pass_counter(m, passes, go)
            start = (step == 0) & self.buffer.covered & ~self.o.valid
            m.d.comb += [go.eq(start | (step != 0)), fire.eq(fire_next), self.buffer.en.eq(go)]
            reads = [go & (step == t // ports) for t in range(len(addrs))]
            data = []
            for q in range(ports):
                taps = list(range(q, len(addrs), ports))
                taps += taps[-1:] * ((1 << len(step)) - len(taps))  # every `step` selects one
                used = Signal(name=f"inside_{q}")   # the tap read last is not padding
                # the port's address is a register holding the pass's tap address: the next
                # pass's in a pass, the next window's first in the last
                address = Signal.like(addrs[q], init=(-p * w - p + offsets[q]) % words,
                                      name=f"read_addr_{q}")
                with m.If(fire):
                    m.d.sync += address.eq(moved(addrs[q]))
                with m.Elif(go):
                    m.d.sync += address.eq(Array(addrs[t] for t in taps[1:] + taps[-1:])[step])
                m.d.comb += self.buffer.addr[q].eq(address)
                if platform == "formal":   # the address of the tap this pass reads
                    m.d.comb += Assert(address == Array(addrs[t] for t in taps)[step])
                with m.If(go):
                    m.d.sync += used.eq(Array(row_in[t // k] & col_in[t % k] for t in taps)[step])
                data.append(Mux(used, self.buffer.data[q], pad_word))
            out = []
            for t in range(len(addrs)):
                q, pass_ = t % ports, t // ports
                if pass_ == passes - 1:
                    out.append(data[q])
                    continue
                held = Signal(self.c * self.bits, name=f"held_{t}")
                with m.If(step == pass_ + 1):     # (a register: few gates before the enables)
                    m.d.sync += held.eq(data[q])
                out.append(held)
            m.d.comb += self.o.payload.data.eq(Cat(out))
            with m.If(fire):
                m.d.sync += last.eq(last_col & last_row)
            if platform == "formal":
                # the last pass is the register's; nothing is read while a window is shown;
                # the window being read stays covered
                m.d.comb += [Assert(step < passes), Assert(fire_next == (step == passes - 1)),
                             Assert((step == 0) | (~self.o.valid & (self.buffer.level > need)))]

        with m.If(fire):
            m.d.sync += [self.o.valid.eq(1), ix.eq(ix1), iy.eq(iy1), ix1.eq(ix2), iy1.eq(iy2),
                         need.eq(need_of(iy1, ix1)), keep.eq(keep1), keep1.eq(keep_after(iy1, ix1))]
            with m.If(~last_col):
                m.d.sync += [a.eq(_mod_add(a, s, words)) for a in addrs]
            with m.Elif(~last_row):
                m.d.sync += [a.eq(_mod_add(a, s * w - ix_end - p, words)) for a in addrs]
            with m.Else():
                m.d.sync += [a.eq(_mod_add(a, h * w - (iy_end + p) * w - ix_end - p, words))
                             for a in addrs]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

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
                # the registers loaded one window ahead hold the current window's values
                Assert((iy1 == advance(iy, ix)[0]) & (ix1 == advance(iy, ix)[1])),
                Assert(need == need_of(iy, ix)),
                Assert(keep == keep_of(iy, ix)),
                Assert(keep1 == keep_of(iy1, ix1)),
                *(Assert(a == (base + off) % words) for a, off in zip(addrs, offsets)),
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
                            Assert(addrs[ky * k + kx] == (self.origin + index) % words),
                            Assert(~reads[ky * k + kx]
                                   | ((level - words <= index) & (index < level))),
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
    geometry : WindowGeometry
        The input map (``h``, ``w``, ``channels``) and the window (square kernel, equal stride
        and zero padding on both axes).
    bits : int
        Bits per channel value.
    strategy : str
        ``"line"`` or ``"frame"``.
    signed : bool
        Whether pixel values are two's complement (the lanes the block takes and passes on).
    pad_value : int
        Value of padded taps (0 by default).
    passes : int
        Cycles to read a window (1 by default), through ``ceil(k*k / passes)`` read ports
        (`Im2colAddressGenerator`).

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
    geometry : WindowGeometry
    words : int
        Memory depth in pixels: ``geometry.line_words`` (line) or ``2*h*w`` (frame); each word
        has ``channels * bits`` bits.
    passes : int
        The generator's (``passes`` rounded down to the fewest its ports need).
    latency : int
        ``passes``: a window is valid ``passes`` cycles after the handshake of the last pixel it
        needs (frame: the last pixel of its image), when nothing stalls.
    interval : int
        ``passes``: one window per ``passes`` cycles while pixels keep up and ``o`` is ready.
    oh, ow : int
        Output height and width.

    Raises
    ------
    UserError
        See `Im2colAddressGenerator`; also if ``strategy`` is not ``"line"`` or ``"frame"``.
    """

    def __init__(self, geometry: WindowGeometry, bits: int, *, strategy: str = "line",
                 signed: bool = False, pad_value: int = 0, passes: int = 1):
        check_choice("strategy", strategy, tuple(STRATEGIES))
        # Check everything before creating the parts, so that none is left unused.
        check_window(geometry, bits)
        _check_pad_value(pad_value, bits, signed)
        check_int("passes", passes, 1, geometry.taps)
        self.strategy, self.geometry = strategy, geometry
        ports, self.passes = window_ports(geometry.taps, passes)
        self.buffer = STRATEGIES[strategy](geometry, bits, signed=signed, ports=ports)
        self.generator = Im2colAddressGenerator(geometry, bits, words=self.buffer.depth,
                                                signed=signed, pad_value=pad_value,
                                                passes=self.passes)
        self.words = self.buffer.words
        self.latency = self.buffer.latency + self.generator.latency
        self.interval = self.generator.interval
        self.oh, self.ow = self.generator.oh, self.generator.ow
        super().__init__({
            "i": In(vector_stream(geometry.channels, bits, signed)),
            "o": Out(vector_stream(geometry.lanes, bits, signed)),
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
