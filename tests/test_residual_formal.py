# amaranth: UnusedElaboratable=no
"""Formal proofs (k-induction, SymbiYosys + z3) of the stream handshakes of Fork and Join: their
outputs never withdraw or change an offered beat, Fork delivers every input beat exactly once to
each output, in order, and Join consumes exactly one beat of each input per output and offers
the golden join of that pair (`imcflow.verif.contracts`); cover checks
show the interesting behaviours are reachable, so the proofs are not vacuous. Payloads are a few
bits wide to keep each proof to seconds."""

import pytest
from amaranth.hdl import unsigned

from imcflow.hw.residual import Fork, Join
from imcflow.verif.contracts import ForkSpec, JoinSpec, small_join
from imcflow.verif.formal import FormalError, check


@pytest.mark.parametrize("mode, depth", [("prove", 4), ("cover", 8)])
def test_fork_handshake(mode, depth):
    check(ForkSpec(Fork(unsigned(3))), mode=mode, depth=depth)


@pytest.mark.parametrize("mode, depth", [("prove", 4), ("cover", 8)])
def test_join_handshake(mode, depth):
    check(JoinSpec(small_join(), data=False), mode=mode, depth=depth)


def test_join_data_checked_for_every_input_pair():
    # each output is the golden join of the pair consumed three cycles before: 8 cycles from reset
    # reach every pair of 2-bit lane values and every stall pattern around them
    check(JoinSpec(small_join()), mode="bmc", depth=8)


class GreedyFork(Fork):
    """A broken Fork that forgets which output has taken the beat: a ready output sees it twice."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.sync += [taken.eq(0) for taken in self.taken]
        return m


def test_fork_proof_catches_a_duplicating_fork():
    with pytest.raises(FormalError, match="failed assertion"):
        check(ForkSpec(GreedyFork(unsigned(3))), mode="prove", depth=4)


class MisweightedJoin(Join):
    """A broken Join whose RTL weighs ``i_a`` by ``mult_a - 1``: every count and handshake is
    right, only the data are wrong."""

    def elaborate(self, platform):
        self.mult_a -= 1
        try:
            return super().elaborate(platform)
        finally:
            self.mult_a += 1


def test_join_proof_checks_the_data():
    good = small_join()
    dut = MisweightedJoin(good.c, good.a_shape, good.b_shape, good.requantizer)
    with pytest.raises(FormalError, match="failed assertion"):
        check(JoinSpec(dut), mode="bmc", depth=5)
