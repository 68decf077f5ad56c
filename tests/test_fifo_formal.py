"""Formal proofs (k-induction, SymbiYosys + z3) that PipelineFifo and SkidBuffer never lose,
duplicate or reorder a beat, never withdraw an offered beat, and report `level` correctly; cover
checks that full, empty and full-rate behaviour are reachable, so the proofs are not vacuous."""

import re
from pathlib import Path

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Cover, Elaboratable, Module, Shape, Signal, Value

from imcflow.hw.fifo import PipelineFifo, SkidBuffer
from imcflow.hw.streams import VectorLayout
from imcflow.verif.formal import FormalError, check


class QueueSpec(Elaboratable):
    """The contract of a stream queue with ports ``i``, ``o``, ``level``, attribute ``depth`` and
    the formal hook ``peek(position)``.

    The environment is free: any ``i.valid``, ``i.payload`` and ``o.ready`` in every cycle (the
    producer need not even follow the stream rules). Properties:

    - ``level`` equals the beats accepted minus the beats emitted, and ``i.ready``/``o.valid`` are
      ``level != depth``/``level != 0`` (no overflow, no beat held back);
    - an offered output beat stays offered, unchanged, until accepted;
    - tracked beat: at an arbitrary (``AnySeq``) input handshake the harness records the payload
      and how many beats are ahead of it; that count drops with each output handshake and, when
      it is 0, the beat emitted must be the recorded one. As the choice is arbitrary, this holds
      for every beat: none is lost, duplicated or reordered.
    """

    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        depth, width = dut.depth, Shape.cast(dut.shape).width
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
            m.d.comb += [Assert(ahead < dut.level), Assert(dut.peek(ahead) == value)]
            with m.If(emitted):
                with m.If(ahead == 0):
                    m.d.comb += Assert(o_payload == value)
                    m.d.sync += tracking.eq(0)
                with m.Else():
                    m.d.sync += ahead.eq(ahead - 1)
        with m.Elif(accepted & AnySeq(1)):
            m.d.sync += [tracking.eq(1), ahead.eq(dut.level - emitted), value.eq(i_payload)]
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


QUEUES = [pytest.param(lambda d=d: PipelineFifo(4, d), id=f"fifo-d{d}") for d in (1, 2, 3, 4, 5)]
QUEUES += [pytest.param(lambda: PipelineFifo(VectorLayout(2, 3), 4), id="fifo-vector-d4"),
           pytest.param(lambda: SkidBuffer(4), id="skid"),
           pytest.param(lambda: SkidBuffer(VectorLayout(2, 3)), id="skid-vector")]


@pytest.mark.parametrize("make", QUEUES)
def test_queue_contract_proved(make):
    dut = make()
    check(QueueSpec(dut), mode="prove", depth=dut.depth + 3)


@pytest.mark.parametrize("make", QUEUES[:2] + QUEUES[-2:-1])
def test_queue_behaviours_reachable(make):
    dut = make()
    check(QueueSpec(dut), mode="cover", depth=2 * dut.depth + 4)


class BrokenFifo(PipelineFifo):
    """A FIFO that drops the beat offered on `o` whenever a beat arrives while it is full-1."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If((self.level == self.depth - 1) & self.i.valid & ~self.o.ready):
            m.d.sync += self.level.eq(self.level)
        return m


@pytest.mark.parametrize("mode", ["prove", "bmc"])
def test_proof_fails_on_a_broken_fifo(mode, tmp_path, monkeypatch):
    # The harness must catch a FIFO whose level stops counting (so it silently overwrites a beat),
    # keep the failing run's directory and point at its counterexample trace.
    monkeypatch.setenv("IMCFLOW_CACHE", str(tmp_path))
    with pytest.raises(FormalError, match=r"failed assertion") as failure:
        check(QueueSpec(BrokenFifo(4, 3)), mode=mode, depth=6, name="broken")
    traces = re.findall(r"^trace: (.+)$", str(failure.value), re.M)
    assert traces and all(Path(trace).is_file() for trace in traces)
    assert Path(tmp_path, "formal", f"broken-{mode}", "spec.sby").is_file()
