"""Formal contracts of the stream blocks, for `imcflow.verif.formal.check`.

Each spec is an `Elaboratable` around a design under test ``dut``: it drives the inputs from
``AnySeq`` and states the block's contract with ``Assert``. The tests prove them by k-induction
on the real blocks (tests/test_fifo_formal.py, tests/test_residual_formal.py), and
`imcflow.verif.mutate` runs them as bounded model checks on mutants, which it wraps in an
``Instance`` (`as_instance`) with the block's signature; a mutant has no formal hooks, so the
specs take ``internal=False`` there and state only what the ports show.

- `QueueSpec`: PipelineFifo, SkidBuffer, SkipFifo (no beat lost, duplicated, reordered or
  corrupted; ``level`` right; an offered beat held until taken).
- `ForkSpec`: each input beat exactly once to each output, in order, with its payload.
- `JoinSpec`: one output per pair of input beats, and its value is the golden join of that pair.
- `each_unit`: a spec applied to every unit of a `~imcflow.verif.bank.Bank`.
- `SameBehaviour`: two modules of one block (the original and a mutant) show the same outputs in
  every cycle for every input that follows the stream rules: `imcflow mutate`'s equivalence
  check under the protocol (a mutant that differs only when a producer breaks the stream rules
  is no bug).
- `Driven`: one module under inputs that follow the stream rules, its own assertions the
  properties (`imcflow mutate`'s activation check).
"""

from __future__ import annotations

import numpy as np
from amaranth.asserts import AnySeq
from amaranth.hdl import (Array, Assert, Assume, Cat, ClockSignal, Const, Cover, Elaboratable,
                          Instance, Module, ResetSignal, Shape, Signal, Value, signed, unsigned)
from amaranth.lib import wiring
from amaranth.lib.wiring import In

__all__ = ["free_producer", "obeys_stream_rules", "QueueSpec", "ForkSpec", "JoinSpec",
           "small_join", "each_unit", "as_instance", "Driven", "SameBehaviour"]


def _add(m, dut):
    if isinstance(dut, Elaboratable):
        m.submodules.dut = dut


def free_producer(m, port):
    """Drive input stream ``port`` from ``AnySeq``, assuming only the stream rules: once
    ``valid`` is asserted it stays, with the same payload, until the handshake."""
    payload = Value.cast(port.payload)
    m.d.comb += [port.valid.eq(AnySeq(1)), payload.eq(AnySeq(len(payload)))]
    waiting, held = Signal(name=f"{port.valid.name}_waiting"), Signal.like(payload)
    m.d.sync += [waiting.eq(port.valid & ~port.ready), held.eq(payload)]
    with m.If(waiting):
        m.d.comb += [Assume(port.valid), Assume(payload == held)]


def obeys_stream_rules(m, port):
    """Assert that output stream ``port`` keeps an offered beat, unchanged, until the handshake."""
    payload = Value.cast(port.payload)
    waiting, held = Signal(name=f"{port.valid.name}_waiting"), Signal.like(payload)
    m.d.sync += [waiting.eq(port.valid & ~port.ready), held.eq(payload)]
    with m.If(waiting):
        m.d.comb += [Assert(port.valid), Assert(payload == held)]


class QueueSpec(Elaboratable):
    """The contract of a stream queue with ports ``i``, ``o``, ``level`` and attribute ``depth``.

    The environment is free: any ``i.valid``, ``i.payload`` and ``o.ready`` in every cycle (the
    producer need not even follow the stream rules). Properties:

    - ``level`` equals the beats accepted minus the beats emitted, and ``i.ready``/``o.valid`` are
      ``level != depth``/``level != 0`` (no overflow, no beat held back);
    - an offered output beat stays offered, unchanged, until accepted;
    - tracked beat: at an arbitrary (``AnySeq``) input handshake the harness records the payload
      and how many beats are ahead of it; that count drops with each output handshake and, when
      it is 0, the beat emitted must be the recorded one. As the choice is arbitrary, this holds
      for every beat: none is lost, duplicated, reordered or corrupted.

    With ``internal=True`` (k-induction) the queue's formal hook ``peek(position)`` ties the
    tracked beat to its storage: the beat ``ahead`` places behind the head is the recorded one,
    and the head is the beat offered.
    """

    def __init__(self, dut, *, internal: bool = True):
        self.dut, self.internal = dut, internal

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        _add(m, dut)
        depth, width = dut.depth, len(Value.cast(dut.i.payload))
        i_payload, o_payload = Value.cast(dut.i.payload), Value.cast(dut.o.payload)
        m.d.comb += [dut.i.valid.eq(AnySeq(1)), i_payload.eq(AnySeq(width)), dut.o.ready.eq(AnySeq(1))]
        accepted = dut.i.valid & dut.i.ready
        emitted = dut.o.valid & dut.o.ready

        count = Signal(range(depth + 1))
        m.d.sync += count.eq(count + accepted - emitted)
        m.d.comb += [
            Assert(dut.level == count),
            Assert(dut.i.ready == (dut.level != depth)),
            Assert(dut.o.valid == (dut.level != 0)),
        ]

        stalled, held = Signal(), Signal(width)
        m.d.sync += [stalled.eq(dut.o.valid & ~dut.o.ready), held.eq(o_payload)]
        with m.If(stalled):
            m.d.comb += [Assert(dut.o.valid), Assert(o_payload == held)]

        tracking, ahead, value = Signal(), Signal(range(depth)), Signal(width)
        with m.If(tracking):
            m.d.comb += Assert(ahead < dut.level)
            if self.internal:
                m.d.comb += Assert(dut.peek(ahead) == value)
            with m.If(emitted):
                with m.If(ahead == 0):
                    m.d.comb += Assert(o_payload == value)
                    m.d.sync += tracking.eq(0)
                with m.Else():
                    m.d.sync += ahead.eq(ahead - 1)
        with m.Elif(accepted & AnySeq(1)):
            m.d.sync += [tracking.eq(1), ahead.eq(dut.level - emitted), value.eq(i_payload)]
        if self.internal:
            with m.If(dut.o.valid):
                m.d.comb += Assert(o_payload == dut.peek(0))

        # reachability: full, then emptied again; at full rate, a beat in and out in one cycle
        full_seen = Signal()
        with m.If(dut.level == depth):
            m.d.sync += full_seen.eq(1)
        m.d.comb += Cover(full_seen & (dut.level == 0))
        if dut.interval == 1:
            m.d.comb += Cover(accepted & emitted)
        return m


class ForkSpec(Elaboratable):
    """Fork with a producer that follows the stream rules and two free consumers.

    Per output, ``ahead`` counts its handshakes minus the input's: it stays 0 or 1 (never a beat
    twice, never the input consumed before this output took it), and an output that is ahead
    offers nothing. An output beat is always the input beat now offered, and the input beat is
    consumed exactly when both outputs have taken it (neither waits for the other), so output
    beat ``n`` is input beat ``n``: each beat exactly once, in order. With both consumers ready, the input never waits (full rate).
    With ``internal=True`` (k-induction), ``ahead`` also equals the Fork's ``taken`` state.
    """

    def __init__(self, dut, *, internal: bool = True):
        self.dut, self.internal = dut, internal

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        _add(m, dut)
        free_producer(m, dut.i)
        consumed = dut.i.valid & dut.i.ready
        served = Const(1)   # every output has taken the beat offered, now or before
        for n, o in enumerate((dut.o_main, dut.o_skip)):
            m.d.comb += o.ready.eq(AnySeq(1))
            obeys_stream_rules(m, o)
            delivered = o.valid & o.ready
            ahead = Signal(name=f"{o.valid.name}_ahead")
            m.d.sync += ahead.eq(ahead + delivered - consumed)
            m.d.comb += [
                Assert(~consumed | ahead | delivered),  # consumed only once this output took it
                Assert(~(ahead & delivered)),           # never twice
                Assert(~(ahead & o.valid)),             # an output that took the beat offers none
                Assert(~o.valid | (dut.i.valid & (Value.cast(o.payload) == Value.cast(dut.i.payload)))),
            ]
            served &= ahead | delivered
            if self.internal:
                m.d.comb += Assert(ahead == dut.taken[n])
        # the input beat leaves exactly when both outputs have it: neither waits for the other
        m.d.comb += Assert(consumed == (dut.i.valid & served))
        m.d.comb += Assert(~(dut.i.valid & dut.o_main.ready & dut.o_skip.ready) | dut.i.ready)
        # reachable: the outputs taking one beat in different cycles, and back-to-back beats
        main_first = Signal()
        with m.If(dut.o_main.valid & dut.o_main.ready & ~consumed):
            m.d.sync += main_first.eq(1)
        m.d.comb += Cover(main_first & consumed & ~dut.o_main.valid)
        last_consumed = Signal()
        m.d.sync += last_consumed.eq(consumed)
        m.d.comb += Cover(last_consumed & consumed)
        return m


def _join_reference(dut, a, b):
    """The golden output lane of the join for lanes ``a``, ``b``: a table computed by
    `imcflow.sw.golden.join` when the inputs have at most 12 bits together (independent of the
    RTL's arithmetic), else the RTL twin `imcflow.hw.arith.requantize_sum`."""
    from imcflow.hw.arith import requantize_sum
    from imcflow.sw import golden

    a_shape, b_shape = dut.a_shape, dut.b_shape
    if a_shape.width + b_shape.width > 12:
        return requantize_sum(a * dut.mult_a + b * dut.mult_b, dut.shift, dut.act_bits,
                              dut.act_signed)

    def value(code, shape):
        return code - (1 << shape.width) if shape.signed and code >> (shape.width - 1) else code

    codes_a, codes_b = np.arange(1 << a_shape.width), np.arange(1 << b_shape.width)
    av = np.array([value(int(c), a_shape) for c in codes_a])[:, None]
    bv = np.array([value(int(c), b_shape) for c in codes_b])[None, :]
    table = golden.join(av, bv, dut.mult_a, dut.mult_b, dut.shift, act_bits=dut.act_bits,
                        signed=dut.act_signed)
    out_shape = signed(dut.act_bits) if dut.act_signed else unsigned(dut.act_bits)
    # entry (code of a) * 2**width(b) + (code of b)
    entries = Array(Const(int(v), out_shape) for v in table.reshape(-1))
    return entries[Cat(Value.cast(b).as_unsigned(), Value.cast(a).as_unsigned())]


class JoinSpec(Elaboratable):
    """Join with two producers that follow the stream rules (and agree on ``last``) and a free
    consumer.

    Both inputs are consumed in the same cycles; ``pending``, input pairs consumed minus outputs
    taken, is at most 3 (the product, sum and output registers): no output is offered with none
    pending, one is whenever three are, and one pending but not offered for two cycles is offered
    in the third; so one output per pair, none lost or added. With ``internal=True``
    (k-induction) ``pending`` also equals the output's ``valid`` plus the Join's ``sum_valid``
    and ``total_valid``. The spec computes the golden output of each consumed pair
    (`_join_reference`, lane by lane, and ``last`` of ``i_a``) into a queue of three and asserts
    that the output offered is exactly its oldest: the data and their order. The output keeps an
    offered beat unchanged until it is taken, and a pair offered on both inputs is consumed at
    once unless three are pending and the output is not taken.

    The data property (``data=True``) is for bounded model checks: one output beat depends on
    one pair consumed three cycles before, so a few cycles from reset reach every pair of values;
    k-induction proves the rest (``data=False``).
    """

    def __init__(self, dut, *, internal: bool = True, data: bool = True):
        self.dut, self.internal, self.data = dut, internal, data

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        _add(m, dut)
        a, b, o = dut.i_a, dut.i_b, dut.o
        free_producer(m, a)
        free_producer(m, b)
        with m.If(a.valid & b.valid):
            m.d.comb += Assume(a.p.last == b.p.last)
        m.d.comb += o.ready.eq(AnySeq(1))
        obeys_stream_rules(m, o)
        consumed_a, consumed_b = a.valid & a.ready, b.valid & b.ready
        taken = o.valid & o.ready
        pending, waited, late = Signal(2), Signal(), Signal()
        waiting = (pending != 0) & ~o.valid
        m.d.sync += [pending.eq(pending + consumed_a - taken), waited.eq(waiting),
                     late.eq(waiting & waited)]
        m.d.comb += [
            Assert(consumed_a == consumed_b),
            Assert(pending <= 3),
            Assert((pending != 0) | ~o.valid),
            Assert((pending != 3) | o.valid),
            Assert(~late | o.valid),
            Assert(~(a.valid & b.valid & ((pending < 3) | o.ready)) | (a.ready & b.ready)),
            Cover(taken & consumed_a),
            Cover(pending == 3),
        ]
        if self.internal:
            m.d.comb += Assert(pending == o.valid + dut.sum_valid + dut.total_valid)
        queue = [Signal.like(Value.cast(o.payload), name=f"expected{n}") for n in range(3)]
        with m.If(taken):
            m.d.sync += [queue[0].eq(queue[1]), queue[1].eq(queue[2])]
        with m.If(consumed_a & self.data):
            golden_ = Cat(*[Value.cast(_join_reference(dut, a.p.data[ch], b.p.data[ch]))
                            [:dut.act_bits] for ch in range(dut.c)], a.p.last)
            for k, entry in enumerate(queue):   # behind the pending ones still queued
                with m.If(pending - taken == k):
                    m.d.sync += entry.eq(golden_)
        with m.If(o.valid & self.data):
            m.d.comb += Assert(Value.cast(o.payload) == queue[0])
        stalled_pair = Signal()
        m.d.sync += stalled_pair.eq(a.valid & b.valid & ~a.ready)
        m.d.comb += Cover(stalled_pair & consumed_a)
        return m


def small_join():
    """A Join small enough to prove in seconds: one lane, 2-bit inputs, saturating output."""
    from imcflow.hw.residual import Join
    from imcflow.sw.arith import Requantizer
    return Join(1, unsigned(2), signed(2), Requantizer((3, 1), 1, 2, True))


class _UnitPorts:
    """Unit ``name`` of a bank seen alone: port ``p`` is the bank's ``<name>_<p>``; other
    attributes are the unit component's."""

    def __init__(self, bank, name, unit):
        self._bank, self._name, self._unit = bank, name, unit

    def __getattr__(self, attr):
        try:
            return getattr(self._bank, f"{self._name}_{attr}")
        except AttributeError:
            return getattr(self._unit, attr)


def each_unit(bank, units: dict, spec, **kwargs) -> Elaboratable:
    """``spec(unit, **kwargs)`` for every unit of ``bank`` (a Bank, or its `as_instance`),
    ``units`` being the Bank's ``{name: component}``."""

    class Specs(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.bank = bank
            for name, unit in units.items():
                m.submodules[f"spec_{name}"] = spec(_UnitPorts(bank, name, unit), **kwargs)
            return m
    return Specs()


def as_instance(block, module: str, ports: dict | None = None) -> wiring.Component:
    """A component with ``block``'s signature whose logic is the RTLIL or Verilog module
    ``module`` (an ``Instance``; its ports named as Amaranth names them, ``i__payload``), with
    extra input ports ``ports`` (e.g. ``{"mutsel": Const(3, 6)}``). It carries ``block``'s public
    attributes that specs read (``depth``, ``shape``, ``latency``, ``interval``)."""

    class Wrapped(wiring.Component):
        def elaborate(self, platform):
            m = Module()
            connections = {f"i_{k}": v for k, v in (ports or {}).items()}
            for path, member, value in self.signature.flatten(self):
                name = "__".join(map(str, path))
                connections[("i_" if member.flow == In else "o_") + name] = Value.cast(value)
            m.submodules.block = Instance(module, i_clk=ClockSignal(), i_rst=ResetSignal(),
                                          **connections)
            return m

    wrapped = Wrapped(block.signature)
    for key in ("shape", "depth", "interval", "latency"):
        if hasattr(block, key):
            setattr(wrapped, key, getattr(block, key))
    return wrapped


def _is_stream(member) -> bool:
    return member.is_signature and {"valid", "ready", "payload"} <= set(member.signature.members)


def _ports(obj, signature):
    """``(member, value)`` of every port of ``obj``, a stream as one port, arrays unrolled."""
    for name, member in signature.members.items():
        values = [getattr(obj, name)]
        for _ in member.dimensions:
            values = [v for value in values for v in value]
        for value in values:
            if member.is_port or _is_stream(member):
                yield member, value
            else:
                yield from _ports(value, member.signature)


class Driven(Elaboratable):
    """Module ``module`` with ``block``'s ports alone: every input stream follows the stream
    rules (`free_producer`), every other input, ``ready`` of the output streams included, is
    free. It adds no property: the module's own assertions are checked (`imcflow mutate`'s
    activation check puts one inside a module)."""

    def __init__(self, block, module: str):
        self.block, self.module = block, module

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = as_instance(self.block, self.module)
        for member, port in _ports(dut, dut.signature):
            if _is_stream(member) and member.flow == In:
                free_producer(m, port)
            elif _is_stream(member):
                m.d.comb += port.ready.eq(AnySeq(1))
            elif member.flow == In:
                m.d.comb += Value.cast(port).eq(AnySeq(len(Value.cast(port))))
        return m


class SameBehaviour(Elaboratable):
    """Modules ``gold`` and ``gate`` with ``block``'s ports (e.g. the original and a mutant) side
    by side on the same inputs: every output, ``ready`` of the input streams included, is equal
    in every cycle, a payload while ``valid``. Every input stream follows the stream rules
    (`free_producer` on gold's port, gate's port wired to it); every other input, ``ready`` of
    the output streams included, is free.

    With ``rules=False`` nothing is assumed of the inputs (an input stream's ``valid`` and
    payload are free too) and payloads are compared in every cycle: equal ports for every input,
    so the two can replace each other inside any design (e.g. a submodule of a block, whose
    neighbours need not follow the stream rules nor ignore a payload that is not valid)."""

    def __init__(self, block, gold: str, gate: str, *, rules: bool = True):
        self.block, self.gold, self.gate, self.rules = block, gold, gate, rules

    def elaborate(self, platform):
        m = Module()
        gold, gate = as_instance(self.block, self.gold), as_instance(self.block, self.gate)
        m.submodules.gold, m.submodules.gate = gold, gate
        for (member, a), (_, b) in zip(_ports(gold, gold.signature), _ports(gate, gate.signature)):
            if _is_stream(member) and member.flow == In:
                if self.rules:
                    free_producer(m, a)
                else:
                    payload = Value.cast(a.payload)
                    m.d.comb += [a.valid.eq(AnySeq(1)), payload.eq(AnySeq(len(payload)))]
                m.d.comb += [b.valid.eq(a.valid), Value.cast(b.payload).eq(Value.cast(a.payload)),
                             Assert(a.ready == b.ready)]
            elif _is_stream(member):
                m.d.comb += [a.ready.eq(AnySeq(1)), b.ready.eq(a.ready),
                             Assert(a.valid == b.valid)]
                with m.If(a.valid | (not self.rules)):
                    m.d.comb += Assert(Value.cast(a.payload) == Value.cast(b.payload))
            elif member.flow == In:
                a, b = Value.cast(a), Value.cast(b)
                m.d.comb += [a.eq(AnySeq(len(a))), b.eq(a)]
            else:
                m.d.comb += Assert(Value.cast(a) == Value.cast(b))
        return m
