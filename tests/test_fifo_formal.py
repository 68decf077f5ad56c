"""Formal proofs (k-induction, SymbiYosys + z3) that PipelineFifo, SkidBuffer and SkipFifo never
lose, duplicate, reorder or corrupt a beat, never withdraw an offered beat, and report `level`
correctly (`imcflow.verif.contracts.QueueSpec`); SkipFifo at the depths the generator uses for
the zoo's residual networks. Cover checks show full, empty and full-rate behaviour reachable, so
the proofs are not vacuous, and queues that count `level` right but drop, duplicate, reorder or
corrupt data fail the proof."""

import re
from pathlib import Path

import pytest
from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.fifo import PipelineFifo, SkidBuffer
from imcflow.hw.residual import SkipFifo
from imcflow.hw.streams import VectorLayout
from imcflow.verif import contracts
from imcflow.verif.contracts import QueueSpec
from imcflow.verif.formal import FormalError, check


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


# --- the skip FIFO at the depths the generator uses ------------------------------------------------

def skip_fifo(depth, width=2):
    fifo = SkipFifo(width, depth)
    fifo.peek = fifo.fifo.peek   # the formal hook of the PipelineFifo inside
    return fifo


@pytest.mark.parametrize("depth", [22, 70])
def test_skip_fifo_contract_proved_at_generated_depths(depth):
    # 22: digits' block_add; 70: the largest skip FIFO of resnet8/20/32 (36, 38, 20 and 22 are the
    # others). The payload is 2 bits: the FIFO never looks at the data, so by data independence a
    # tracked-word proof on 2-bit words covers every width (docs/verification.md). With the
    # storage invariants, 2-step induction suffices at any depth.
    check(QueueSpec(skip_fifo(depth)), mode="prove", depth=2)


# --- queues that keep `level` right but get the data wrong ----------------------------------------

class RegisterQueue(wiring.Component):
    """A register-array FIFO with a deliberate data bug that leaves ``level`` right:

    - ``corrupt``: the beat written while one beat is held gets bit 0 flipped;
    - ``duplicate``: a read while two beats are held does not advance the head (the head leaves
      twice; the last beat is lost);
    - ``drop``: a read while two beats are held advances the head by two (a beat is skipped and a
      stale slot leaves later);
    - ``reorder``: a beat written while two are held goes before the second of them.
    """

    interval = 1

    def __init__(self, width, depth, bug):
        self.shape, self.depth, self.bug = width, depth, bug
        self._peeks = []
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width)),
                          "level": Out(range(depth + 1))})

    def peek(self, position):
        value = Signal(self.shape)
        self._peeks.append((position, value))
        return value

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        slots = Array(Signal(self.shape, name=f"slot{n}") for n in range(depth))
        head = Signal(range(depth))

        def at(offset):
            index = head + offset
            return Mux(index >= depth, index - depth, index)

        write, read = self.i.valid & self.i.ready, self.o.valid & self.o.ready
        m.d.comb += [self.i.ready.eq(self.level != depth), self.o.valid.eq(self.level != 0),
                     self.o.payload.eq(slots[head])]
        m.d.sync += self.level.eq(self.level + write - read)
        tail = at(self.level)
        data = self.i.payload
        if self.bug == "corrupt":
            data = Mux(self.level == 1, self.i.payload ^ 1, self.i.payload)
        with m.If(write):
            if self.bug == "reorder":
                with m.If((self.level == 2) & ~read):
                    m.d.sync += [slots[at(1)].eq(data), slots[at(2)].eq(slots[at(1)])]
                with m.Else():
                    m.d.sync += slots[tail].eq(data)
            else:
                m.d.sync += slots[tail].eq(data)
        with m.If(read):
            step = 1
            if self.bug == "duplicate":
                step = Mux(self.level == 2, 0, 1)
            elif self.bug == "drop":
                step = Mux(self.level == 2, 2, 1)
            m.d.sync += head.eq(at(step))
        for position, value in self._peeks:
            m.d.comb += value.eq(slots[at(position)])
        return m


def test_register_queue_without_a_bug_meets_the_contract():
    # the harness below is a correct queue when it has no bug: no false alarm within 8 cycles
    check(QueueSpec(RegisterQueue(3, 4, None), internal=False), mode="bmc", depth=8)


@pytest.mark.parametrize("bug", ["corrupt", "duplicate", "drop", "reorder"])
def test_proof_fails_on_a_queue_that_counts_right_but_loses_data(bug, tmp_path, monkeypatch):
    # `level` stays equal to beats in minus beats out, so only the tracked beat can catch these,
    # and from the ports alone (internal=False): the beat that leaves is not the one recorded.
    monkeypatch.setenv("IMCFLOW_CACHE", str(tmp_path))
    with pytest.raises(FormalError, match="failed assertion") as failure:
        check(QueueSpec(RegisterQueue(3, 4, bug), internal=False), mode="bmc", depth=8, name=bug)
    source = Path(contracts.__file__).read_text().splitlines()
    failed = {source[int(n) - 1].strip()
              for n in re.findall(r"contracts\.py:(\d+)", str(failure.value))}
    assert failed == {"m.d.comb += Assert(o_payload == value)"}, failed
