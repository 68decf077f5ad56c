"""Line buffer: the activation memory of an IMC core, holding the fewest pixels windows need.

A `LineBuffer` receives a raster pixel stream and keeps the pixels still needed by the windows
that have not been read yet in a `~amaranth.lib.memory.Memory` used as a circular buffer of
exactly `imcflow.sw.golden.line_buffer_words` words (``(k-1)`` rows plus ``k`` pixels for a
window inside the map). An `~imcflow.hw.im2col.Im2colAddressGenerator` reads the windows through
its ``r`` port (`BufferReadSignature`), which has one read port per kernel tap so that a whole
window is read in one cycle. `~imcflow.hw.framebuffer.FrameBuffer` is the same kind of buffer
(`WindowBuffer`) with the frame strategy's depth and rules. docs/line-buffer.md explains the
design.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2

from imcflow.hw.streams import vector_stream
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.timing import WINDOW_BUFFER_LATENCY
from imcflow.validate import check_instance, check_int

__all__ = ["check_window", "BufferReadSignature", "WindowBuffer", "LineBuffer"]


def check_window(geometry, bits) -> None:
    """A `UserError` unless ``geometry`` is a `~imcflow.sw.geometry.WindowGeometry` (which
    validated itself) and ``bits`` a positive integer."""
    check_instance("geometry", geometry, WindowGeometry)
    check_int("bits", bits, 1)


class BufferReadSignature(wiring.Signature):
    """The port through which an `~imcflow.hw.im2col.Im2colAddressGenerator` reads a window buffer.

    Members, seen from the reader (the buffer has the flipped signature):

    ``addr`` : Out(``taps`` x ``ceil_log2(max(words, 2))`` bits)
        Memory address of each kernel tap of the window being read.
    ``en`` : Out(1)
        Read strobe: ``data`` shows the words at ``addr`` from the next cycle on, and holds them
        while ``en`` is low.
    ``data`` : In(``taps`` x ``width`` bits)
        The pixels read (lane ``c`` of a pixel in bits ``[c*bits, (c+1)*bits)``).
    ``level`` : In(signed)
        The reader may read pixel ``n`` (raster index in the reader's current image) in this cycle
        if and only if ``n < level``. It counts a pixel written in this same cycle when the read
        ports are transparent (one per tap) and may exceed ``pixels`` when the next image is
        arriving, or be negative
        when the reader has moved to an image whose first pixels have not arrived.
    ``need`` : Out(``range(max(pixels, 2))``)
        Raster index of the last pixel of the window the reader reads next.
    ``covered`` : In(1)
        ``need < level``: the window may be read in this cycle. The buffer computes it from its
        registered count for both cases of this cycle's write and selects by the write, so that
        the read decision does not wait for the sum ``level`` (the clock rate of an FPGA build).
        Without transparent ports it is a register, selected a cycle ahead against that cycle's
        ``need``: it lags by one cycle after ``need`` changes or ``done``, which happen only
        when a window is read (the reader, reading over several passes, then has a full output
        register).
    ``keep`` : Out(``range(max(pixels, 2))``)
        Raster index of the oldest pixel of the reader's image that a window not yet read needs.
    ``keep_next`` : Out(``range(max(pixels, 2))``)
        What ``keep`` becomes when the window being read is read (``read``), so that the buffer
        decides a cycle ahead whether it may write.
    ``read`` : Out(1)
        Pulsed when the reader reads a window: ``need`` and ``keep`` move on from the next cycle.
    ``done`` : Out(1)
        Pulsed with ``read`` when the reader reads the last window of its image: from the next
        cycle on, indices refer to the next image.

    Parameters
    ----------
    pixels : int
        Pixels per image, ``H * W``.
    words : int
        Depth of the buffer's memory.
    taps : int
        Read ports: ``k * k``, or fewer for a reader that reads a window over several cycles.
    width : int
        Bits of a pixel word, ``c * bits``.
    """

    def __init__(self, *, pixels: int, words: int, taps: int, width: int):
        self.pixels, self.words, self.taps, self.width = pixels, words, taps, width
        super().__init__({
            # one bit at least (a one-word buffer): Verilog has no empty vectors
            "addr": wiring.Out(data.ArrayLayout(unsigned(ceil_log2(max(words, 2))), taps)),
            "en": wiring.Out(1),
            "data": wiring.In(data.ArrayLayout(unsigned(width), taps)),
            "level": wiring.In(range(-pixels, pixels + words + 1)),
            "keep": wiring.Out(range(max(pixels, 2))),
            "keep_next": wiring.Out(range(max(pixels, 2))),
            "read": wiring.Out(1),
            "need": wiring.Out(range(max(pixels, 2))),
            "covered": wiring.In(1),
            "done": wiring.Out(1),
        })

    def __eq__(self, other):
        return (type(other) is type(self) and
                (other.pixels, other.words, other.taps, other.width) ==
                (self.pixels, self.words, self.taps, self.width))

    def __repr__(self):
        return (f"BufferReadSignature(pixels={self.pixels}, words={self.words}, taps={self.taps}, "
                f"width={self.width})")


class WindowBuffer(wiring.Component):
    """A circular buffer of pixels with one read port per kernel tap (base of both strategies).

    Pixel ``n`` of the image stream (counted over all images) is written to address
    ``n mod words``. The buffer counts ``level``, the pixels written counted from the first pixel
    of the reader's current image; ``done`` on ``r`` subtracts ``H * W``. Subclasses state when a
    pixel may be written (`_may_write`) and which pixels may be read (`_readable`). ``i.ready``
    is a register, decided a cycle ahead for each case of the write, the read and ``done``
    (``keep_next`` on ``r``), and equal to `_may_write` in every cycle (a simulation assertion).

    Ports
    -----
    i : In(vector_stream(c, bits, signed))
        Pixels in raster order, images back to back. ``last`` is not used: every image has
        ``H * W`` pixels.
    r : In(`BufferReadSignature`)
        The read side, driven by an `~imcflow.hw.im2col.Im2colAddressGenerator`.

    Attributes
    ----------
    geometry : WindowGeometry
        The input map and the window (`imcflow.sw.geometry`); ``h``, ``w``, ``c`` and ``kernel``
        are its sizes.
    words : int
        Pixels the buffer holds at most: the depth of its memory of ``c * bits``-bit words (a
        one-word buffer gets a second, unused word so that its address has a bit).
    depth : int
        The memory's depth, addresses modulo it: ``words``, or ``words + 1`` (a spare word) when
        the ports are not transparent.
    ports : int
        Read ports (``geometry.taps`` unless given: one per kernel tap).
    latency : int
        0: a pixel is readable in the cycle of its handshake (the read ports are transparent to
        the write port); 1 with fewer ports than taps (a window read over several cycles): the
        ports are then not transparent, so neither the read data nor ``covered`` waits for the
        producer's handshake (on an FPGA, no bypass multiplexer behind every read port).
    interval : int
        1: one pixel per cycle while the buffer may write.
    origin : Signal
        Formal hook: address of the first pixel of the reader's image, driven (and checked
        against the write pointer) only when elaborated for ``platform="formal"``.
    """

    interval = 1

    def __init__(self, geometry: WindowGeometry, bits: int, words: int, *, signed: bool = False,
                 ports: int | None = None):
        check_window(geometry, bits)
        self.ports = geometry.taps if ports is None else ports
        check_int("ports", self.ports, 1, geometry.taps)
        self.latency = WINDOW_BUFFER_LATENCY + (self.ports < geometry.taps)
        # Without transparent ports, a spare word: the slot the next pixel goes to then never
        # holds a pixel still needed, so the memory is written whenever a pixel is offered and
        # its write enable does not wait for the handshake (on an FPGA, a LUT-RAM's enable
        # reaches every cell of it).
        self.depth = words + (self.latency == 1)
        self.geometry = geometry
        self.h, self.w, self.c = geometry.h, geometry.w, geometry.channels
        self.kernel = geometry.kernel
        self.bits = bits
        self.words, self.signed = words, bool(signed)
        self.origin = Signal(range(max(self.depth, 2)))
        super().__init__({
            "i": In(vector_stream(geometry.channels, bits, signed)),
            "r": In(BufferReadSignature(pixels=geometry.pixels, words=self.depth, taps=self.ports,
                                        width=geometry.channels * bits)),
        })

    def _may_write(self, shifted, keep):
        """Whether the next pixel may be written, given ``shifted(offset)``, the level plus
        ``offset`` (a register: the comparison has no adder before it), and the reader's
        ``keep``."""
        raise NotImplementedError  # pragma: no cover

    def _readable(self, level):
        """The ``level`` shown to the reader, given the pixels written (this cycle's included)."""
        raise NotImplementedError  # pragma: no cover

    def elaborate(self, platform):
        m = Module()
        pixels = self.h * self.w
        m.submodules.memory = memory = Memory(shape=self.c * self.bits, depth=max(self.depth, 2),
                                          init=[])  # a one-word memory has no address bits
        write_port = memory.write_port()
        write = Signal()
        counters = {}

        def shifted(offset):
            """A register equal to ``count + offset``: it moves with ``count``, whose next value
            is chosen among sums computed before ``write`` and ``done``, which come late (the
            producer's and the reader's handshakes)."""
            if offset not in counters:
                counter = counters[offset] = Signal(
                    range(-pixels + min(offset, 0), pixels + self.words + 1 + max(offset, 0)),
                    init=offset, name=f"count_{offset}".replace("-", "m"))
                m.d.sync += counter.eq(Mux(write, Mux(self.r.done, counter + 1 - pixels, counter + 1),
                                           Mux(self.r.done, counter - pixels, counter)))
            return counters[offset]

        count = shifted(0)
        wptr = Signal(range(max(self.depth, 2)))
        # `i.ready` is a register: next cycle's `_may_write` for each case of this cycle's write,
        # done and read (``keep`` moving on to ``keep_next``), selected by them, so that the
        # write decision starts from a flip-flop (an empty buffer may write).
        ready, r = Signal(init=1, name="may_write"), self.r

        def may_write(add, keep):   # after `add` pixels written and ``keep``
            return self._may_write(lambda offset: shifted(offset + add), keep)

        m.d.sync += [
            ready.eq(Mux(r.read,
                         Mux(r.done, Mux(write, may_write(1 - pixels, r.keep_next),
                                         may_write(-pixels, r.keep_next)),
                             Mux(write, may_write(1, r.keep_next), may_write(0, r.keep_next))),
                         Mux(write, may_write(1, r.keep), may_write(0, r.keep)))),
            Assert(ready == may_write(0, r.keep), "WindowBuffer: the write decision lags"),
        ]
        m.d.comb += [
            self.i.ready.eq(ready),
            write.eq(self.i.valid & self.i.ready),
            write_port.en.eq(write if self.depth == self.words else self.i.valid),
            write_port.addr.eq(wptr),
            write_port.data.eq(self.i.payload.data.as_value()),
        ]
        if self.latency == 0:   # this cycle's pixel is readable: the ports are transparent
            m.d.comb += [
                self.r.level.eq(self._readable(count + write)),
                self.r.covered.eq(Mux(write, self._readable(shifted(1)) > self.r.need,
                                      self._readable(count) > self.r.need)),
            ]
        else:
            # a register: next cycle's comparison for both cases of this cycle's write, against
            # this cycle's `need`, so the read decision starts from a flip-flop. It lags a
            # cycle after `need` moves on or `done`, both with the reader's read of a window,
            # when the reader's output register is full and it does not look.
            covered = Signal(name="covered")
            m.d.sync += covered.eq(Mux(write, self._readable(shifted(1)) > self.r.need,
                                       self._readable(count) > self.r.need))
            m.d.comb += [self.r.level.eq(self._readable(count)), self.r.covered.eq(covered)]
            if platform == "formal":
                need_was, done_was, started = Signal.like(self.r.need), Signal(), Signal()
                m.d.sync += [need_was.eq(self.r.need), done_was.eq(self.r.done), started.eq(1)]
                with m.If(started & (need_was == self.r.need) & ~done_was):
                    m.d.comb += Assert(covered == (self._readable(count) > self.r.need))
        with m.If(write):
            m.d.sync += wptr.eq(Mux(wptr == self.depth - 1, 0, wptr + 1))
        for tap in range(self.ports):
            read_port = memory.read_port(transparent_for=(write_port,) if self.latency == 0 else ())
            m.d.comb += [
                read_port.en.eq(self.r.en),
                read_port.addr.eq(self.r.addr[tap]),
                self.r.data[tap].eq(read_port.data),
            ]
        if platform == "formal":
            with m.If(self.r.done):
                m.d.sync += self.origin.eq((self.origin + pixels) % self.depth)
            m.d.comb += [
                Assert((wptr < self.depth) & (self.origin < self.depth)),
                Assert(wptr == (self.origin + count) % self.depth),
                *(Assert(counter == count + offset) for offset, counter in counters.items()),
            ]
            self._formal(m, count)
        return m

    def _formal(self, m, count):
        """Add the strategy's occupancy assertions (``count``: the registered level)."""
        raise NotImplementedError  # pragma: no cover


class LineBuffer(WindowBuffer):
    """Input buffer of the line strategy: ``line_buffer_words`` pixels in a circular buffer.

    A pixel may be written unless it would overwrite one that a window not yet read needs
    (``level < keep + words``); it may be read as soon as it is written. So the producer stalls
    only when the buffer is full of needed pixels, and the whole map never has to be stored.

    Parameters
    ----------
    geometry : WindowGeometry
        The input map (``h``, ``w``, ``channels``) and the window (square kernel, equal stride
        and zero padding on both axes).
    bits : int
        Bits per channel value.
    signed : bool
        Whether pixel values are two's complement (the lanes the block takes and passes on).
    ports : int, optional
        Read ports: ``geometry.taps`` (default) or fewer, for a reader that reads a window over
        several cycles.

    Ports and attributes are those of `WindowBuffer`, with ``words`` equal to
    ``geometry.line_words`` (`imcflow.sw.golden.line_buffer_words`).

    Raises
    ------
    UserError
        See `check_window`.
    """

    def __init__(self, geometry: WindowGeometry, bits: int, *, signed: bool = False,
                 ports: int | None = None):
        check_window(geometry, bits)
        super().__init__(geometry, bits, geometry.line_words, signed=signed, ports=ports)

    def _may_write(self, shifted, keep):
        return shifted(-self.words) < keep

    def _readable(self, level):
        return level

    def _formal(self, m, count):
        # Never more pixels held than words: those from ``keep`` (needed) to the last written.
        m.d.comb += Assert(count - self.r.keep <= self.words)
