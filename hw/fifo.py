"""Stream queues between blocks and between cores: `PipelineFifo`, `SkidBuffer`, and their model.

Both are `wiring.Component`s with a stream input ``i``, a stream output ``o`` (any payload shape,
e.g. a `~imcflow.hw.streams.VectorLayout`) and a ``level`` output. Every output is a function of
registers only: ``o.valid``, ``o.payload``, ``i.ready`` and ``level`` never depend combinationally
on an input, so chaining queues never builds long combinational paths between cores.

Timing (``latency``, ``interval``; see docs/design.md): a beat accepted on ``i`` in cycle ``t`` is
offered on ``o`` in cycle ``t + 1``. When neither empty nor full, a queue accepts and emits one
beat per cycle at the same time. A depth-1 FIFO is always empty or full, so it alternates
(``interval = 2``); use a `SkidBuffer` for a full-rate register slice.

`FifoModel` is the cycle-accurate behavioural model of both, used by the tests. ``peek`` and the
assertions added when elaborated for ``platform="formal"`` let `imcflow.verif.formal` prove them
by k-induction (see docs/verification.md).
"""

from __future__ import annotations

from collections import deque

from amaranth.hdl import Assert, Module, Mux, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from imcflow.sw.timing import FIFO_LATENCY
from imcflow.validate import check_int

__all__ = ["PipelineFifo", "SkidBuffer", "FifoModel"]


def _check_shape(shape):
    try:
        Shape.cast(shape)
    except TypeError:
        raise TypeError(f"Shape must be a shape-castable object, not {shape!r}") from None


def _check_depth(depth):
    check_int("depth", depth, 1)


class _Queue(wiring.Component):
    """Ports, timing attributes and the formal ``peek`` hook shared by both queues."""

    latency = FIFO_LATENCY

    def __init__(self, shape, depth: int):
        _check_shape(shape)
        _check_depth(depth)
        self._shape, self._depth = shape, depth
        self._peeks: list[tuple[Value, Signal]] = []
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    @property
    def shape(self):
        return self._shape

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def interval(self) -> int:
        """Cycles per beat of sustained flow: 1, or 2 for a depth-1 FIFO."""
        return 1 if self._depth > 1 else 2

    def peek(self, position) -> Value:
        """Formal hook: the payload of the beat ``position`` places behind the head.

        Position 0 is the beat offered on ``o``; the value is meaningful for ``position < level``.
        Call before elaboration; the returned signal is driven by this component.
        """
        value = Signal(Shape.cast(self._shape), name=f"peek_{len(self._peeks)}")
        self._peeks.append((Value.cast(position), value))
        return value


class PipelineFifo(_Queue):
    """First-in first-out stream queue of ``depth`` beats, stored in a `Memory`.

    Parameters
    ----------
    shape : shape-like
        Payload shape or layout.
    depth : int
        Capacity in beats, at least 1.

    Attributes
    ----------
    i : In(stream.Signature(shape))
        Input stream; ``i.ready`` is ``level != depth``.
    o : Out(stream.Signature(shape))
        Output stream; ``o.valid`` is ``level != 0``.
    level : Out(range(depth + 1))
        Beats held, counting the one offered on ``o``.
    latency : int
        1: a beat accepted in cycle ``t`` is on ``o`` in cycle ``t + 1``.
    interval : int
        1 (one beat in and one out per cycle); 2 when ``depth == 1``.

    Raises
    ------
    TypeError
        If ``shape`` is not shape-castable or ``depth`` is not a positive integer.

    Notes
    -----
    The read port is synchronous and transparent and is addressed with the *next* head pointer,
    so its data register is the output register and no beat waits in a separate pipeline stage:
    all ``depth`` beats live in the memory, which maps to block RAM. A depth-1 FIFO is a single
    register instead (a one-row memory would have a zero-width address).
    """

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        do_write = self.i.valid & self.i.ready
        do_read = self.o.valid & self.o.ready
        # ``i.ready`` (``level != depth``) and ``o.valid`` (``level != 0``) are registers of
        # their own: they start the producer's and the consumer's stall decisions, which on an
        # FPGA fan out to hundreds of enables, from a flip-flop instead of from a comparator of
        # ``level``. Their next values take the handshakes through one gate each, not through
        # the adder of the next level: a write makes the queue non-empty and a read non-full,
        # and only a read of the last beat (a write into the last free place) without the
        # other empties (fills) it.
        ready, valid = Signal(name="ready", init=1), Signal(name="valid")
        m.d.comb += [self.i.ready.eq(ready), self.o.valid.eq(valid)]
        m.d.sync += [
            self.level.eq(self.level + do_write - do_read),
            ready.eq(do_read | (ready & ~(do_write & (self.level == depth - 1)))),
            valid.eq(do_write | (valid & ~(do_read & (self.level == 1)))),
        ]
        if platform == "formal":
            m.d.comb += [Assert(ready == (self.level != depth)), Assert(valid == (self.level != 0))]

        if depth == 1:
            # A one-row Memory has a zero-width address, which Verilog cannot express.
            with m.If(do_write):
                m.d.sync += self.o.payload.eq(self.i.payload)
            for _, value in self._peeks:
                m.d.comb += value.eq(self.o.payload)
            return m

        m.submodules.storage = storage = Memory(shape=self._shape, depth=depth, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(transparent_for=(w_port,))
        produce = Signal(range(depth))
        consume = Signal(range(depth))

        def incr(pointer):
            return Mux(pointer == depth - 1, 0, pointer + 1)

        consume_next = Mux(do_read, incr(consume), consume)
        m.d.comb += [
            w_port.addr.eq(produce),
            w_port.data.eq(self.i.payload),
            w_port.en.eq(do_write),
            r_port.addr.eq(consume_next),
            self.o.payload.eq(r_port.data),
        ]
        m.d.sync += consume.eq(consume_next)
        with m.If(do_write):
            m.d.sync += produce.eq(incr(produce))

        for position, value in self._peeks:
            port = storage.read_port(domain="comb")
            index = consume + position
            m.d.comb += [
                port.addr.eq(Mux(index >= depth, index - depth, index)),
                value.eq(port.data),
            ]
        if platform == "formal":
            # Representation invariants: pointers in range and ``level`` beats apart.
            distance = produce - consume + Mux(produce < consume, depth, 0)
            m.d.comb += [
                Assert(consume < depth),
                Assert(produce < depth),
                Assert(distance == Mux(self.level == depth, 0, self.level)),
            ]
        return m


class SkidBuffer(_Queue):
    """Register slice: a two-beat queue built from two registers, at full rate.

    Breaks every combinational path through a stream (``valid``, ``payload`` and ``ready``)
    without a memory. Cycle for cycle it behaves as ``PipelineFifo(shape, 2)``.

    Parameters
    ----------
    shape : shape-like
        Payload shape or layout.

    Attributes
    ----------
    i : In(stream.Signature(shape))
        Input stream; ``i.ready`` is low only while the skid register is occupied.
    o : Out(stream.Signature(shape))
        Output stream, driven by the output register.
    level : Out(range(3))
        Beats held (0, 1 or 2).
    depth : int
        2.
    latency : int
        1.
    interval : int
        1.

    Raises
    ------
    TypeError
        If ``shape`` is not shape-castable.
    """

    def __init__(self, shape):
        super().__init__(shape, 2)

    def elaborate(self, platform):
        m = Module()
        skid = Signal.like(self.o.payload)
        skid_valid = Signal()

        m.d.comb += [
            self.i.ready.eq(~skid_valid),
            self.level.eq(self.o.valid + skid_valid),
        ]
        with m.If(~self.o.valid | self.o.ready):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]

        for position, value in self._peeks:
            m.d.comb += value.eq(Mux(position == 0, self.o.payload, skid))
        if platform == "formal":
            m.d.comb += Assert(self.o.valid | ~skid_valid)
        return m


class FifoModel:
    """Cycle-accurate behavioural model of `PipelineFifo` (and of `SkidBuffer` with ``depth=2``).

    Read the outputs of the current cycle (``i_ready``, ``o_valid``, ``o_payload``, ``level``),
    then call `step` with the inputs of the same cycle to advance one clock edge.
    """

    def __init__(self, depth: int):
        _check_depth(depth)
        self.depth = depth
        self._beats: deque = deque()

    @property
    def level(self) -> int:
        return len(self._beats)

    @property
    def i_ready(self) -> bool:
        return self.level != self.depth

    @property
    def o_valid(self) -> bool:
        return self.level != 0

    @property
    def o_payload(self):
        """The beat offered on ``o`` (None when empty)."""
        return self._beats[0] if self._beats else None

    def step(self, i_valid: bool, i_payload, o_ready: bool) -> tuple[bool, bool]:
        """Advance one clock edge; returns ``(accepted, emitted)``, the two handshakes."""
        accepted, emitted = bool(i_valid and self.i_ready), bool(o_ready and self.o_valid)
        if emitted:
            self._beats.popleft()
        if accepted:
            self._beats.append(i_payload)
        return accepted, emitted
