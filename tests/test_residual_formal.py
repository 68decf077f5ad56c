# amaranth: UnusedElaboratable=no
"""Formal proofs (k-induction, SymbiYosys + z3) of the stream handshakes of Fork and Join: their
outputs never withdraw or change an offered beat, Fork delivers every input beat exactly once to
each output, in order, and Join consumes exactly one beat of each input per output; cover checks
show the interesting behaviours are reachable, so the proofs are not vacuous. Payloads are a few
bits wide to keep each proof to seconds."""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, Signal, Value, signed, unsigned

from imcflow.hw.residual import Fork, Join
from imcflow.verif.formal import FormalError, check


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


class ForkSpec(Elaboratable):
    """Fork with a producer that follows the stream rules and two free consumers.

    Per output, ``ahead`` counts its handshakes minus the input's: it stays 0 or 1 and equals the
    Fork's ``taken`` state, and an output that is ahead offers nothing. An output beat is always
    the input beat now offered (``payload`` passes through), and the input beat is consumed only
    once both outputs have taken it, so output beat ``n`` is input beat ``n``: each beat exactly
    once, in order. With both consumers ready, the input never waits (full rate).
    """

    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        free_producer(m, dut.i)
        consumed = dut.i.valid & dut.i.ready
        for o, taken in zip((dut.o_main, dut.o_skip), dut.taken):
            m.d.comb += o.ready.eq(AnySeq(1))
            obeys_stream_rules(m, o)
            delivered = o.valid & o.ready
            ahead = Signal(name=f"{o.valid.name}_ahead")
            m.d.sync += ahead.eq(ahead + delivered - consumed)
            m.d.comb += [
                Assert(ahead == taken),
                Assert(~consumed | ahead | delivered),  # consumed only once this output took it
                Assert(~(ahead & delivered)),           # never twice
                Assert(~o.valid | (dut.i.valid & (Value.cast(o.payload) == Value.cast(dut.i.payload)))),
            ]
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


class JoinSpec(Elaboratable):
    """Join with two producers that follow the stream rules (and agree on ``last``) and a free
    consumer.

    Both inputs are consumed in the same cycles; ``pending``, input pairs consumed minus outputs
    taken, is always the output register's ``valid`` (0 or 1): one output per pair, none lost or
    added. The output keeps an offered beat unchanged until it is taken, and when the output
    register is free (empty or being taken), a pair offered on both inputs is consumed at once.
    """

    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        a, b, o = dut.i_a, dut.i_b, dut.o
        free_producer(m, a)
        free_producer(m, b)
        with m.If(a.valid & b.valid):
            m.d.comb += Assume(a.p.last == b.p.last)
        m.d.comb += o.ready.eq(AnySeq(1))
        obeys_stream_rules(m, o)
        consumed_a, consumed_b = a.valid & a.ready, b.valid & b.ready
        taken = o.valid & o.ready
        pending = Signal()
        m.d.sync += pending.eq(pending + consumed_a - taken)
        m.d.comb += [
            Assert(consumed_a == consumed_b),
            Assert(pending == o.valid),
            Assert(~(a.valid & b.valid & (~o.valid | o.ready)) | (a.ready & b.ready)),
            Cover(taken & consumed_a),
        ]
        stalled_pair = Signal()
        m.d.sync += stalled_pair.eq(a.valid & b.valid & ~a.ready)
        m.d.comb += Cover(stalled_pair & consumed_a)
        return m


def small_join():
    return Join(1, unsigned(2), signed(2), mult_a=3, mult_b=1, shift=1, act_bits=2,
                act_signed=True)


@pytest.mark.parametrize("mode, depth", [("prove", 4), ("cover", 8)])
def test_fork_handshake(mode, depth):
    check(ForkSpec(Fork(unsigned(3))), mode=mode, depth=depth)


@pytest.mark.parametrize("mode, depth", [("prove", 4), ("cover", 8)])
def test_join_handshake(mode, depth):
    check(JoinSpec(small_join()), mode=mode, depth=depth)


class GreedyFork(Fork):
    """A broken Fork that forgets which output has taken the beat: a ready output sees it twice."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.sync += [taken.eq(0) for taken in self.taken]
        return m


def test_fork_proof_catches_a_duplicating_fork():
    with pytest.raises(FormalError, match="failed assertion"):
        check(ForkSpec(GreedyFork(unsigned(3))), mode="prove", depth=4)
