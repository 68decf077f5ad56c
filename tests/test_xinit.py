# amaranth: UnusedElaboratable=no
"""Random initial register values: a missing reset must fail.

Verilator is 2-state and Amaranth writes every register's reset value as its Verilog initial
value, so a register that reset forgets would still start right. `imcflow.verif.runner.build`
therefore builds, by default, Verilog without those initial values
(`~imcflow.verif.runner.without_initial_values`) with ``--x-initial unique --x-assign unique``,
and `~imcflow.verif.runner.run` draws every register's power-up value from a seed
(``+verilator+seed+<n> +verilator+rand+reset+2``). Here a FIFO whose ``level`` register has no
reset passes with Amaranth's initial values and fails with random ones, and also fails a reset
in the middle of traffic.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from amaranth.hdl import Signal

from imcflow import rtl
from imcflow.hw.fifo import PipelineFifo
from imcflow.hw.pool import GlobalAvgPool
from imcflow.hw.streams import VectorLayout
from imcflow.sw.arith import Requantizer
from imcflow.verif import runner
from imcflow.verif.amaranth_sim import run_streams
from imcflow.verif.bank import Bank

TB = Path(__file__).parent / "cocotb" / "fifo_tb.py"


class ResetlessLevelFifo(PipelineFifo):
    """A `PipelineFifo` whose ``level`` register is ``reset_less``: the bug under test."""

    def __init__(self, shape, depth):
        super().__init__(shape, depth)
        self.level = Signal(range(depth + 1), name="level", reset_less=True)


def test_without_initial_values_keeps_memories_markers_and_gates_assertions():
    bank = Bank({"f": PipelineFifo(VectorLayout(2, 4), 4), "g": GlobalAvgPool(2, 2, 1, 8, Requantizer(1, 2, 8))})
    text = rtl.verilog(bank, "xinit_bank")
    plain = runner.without_initial_values(text)
    initialized = re.compile(r"^\s*reg\b[^;=]*=", re.M)
    assert len(initialized.findall(text)) > 5
    # Only Yosys' marker registers (which trigger `always @*` at time 0) keep a value.
    assert all("$auto$verilog_backend" in line for line in initialized.findall(plain))
    assert plain.count("initial begin") == text.count("initial begin") > 0   # memory contents
    assert "reg [2:0] level;" in plain and "reg [2:0] level = 3'h0;" in text
    # GlobalAvgPool's assertion is not checked while rst is high
    assert text.count("assert (") == plain.count("assert (rst || ") == 1


@pytest.fixture(scope="module")
def resetless():
    payload = {"width": 8, "depth": 16, "latency": 1, "interval": 1}
    return {random_init: runner.build(ResetlessLevelFifo(8, 16), parameters=payload,
                                      name=f"resetless_level_fifo_{'x' if random_init else 'i'}",
                                      random_init=random_init)
            for random_init in (False, True)}


def test_a_missing_reset_passes_with_the_initial_values(resetless):
    report = runner.run(resetless[False], TB, testcase="random_traffic",
                        parameters={"seed": 1, "beats": 400})
    assert report["beats"] == 400


@pytest.mark.parametrize("init_seed", [1, 2])
def test_a_missing_reset_fails_with_random_initial_values(resetless, init_seed):
    # The level register powers up at one of 32 values; these seeds draw non-zero ones, which
    # the testbench's cycle-by-cycle check against the FIFO model sees at once (the registers
    # `ready` and `valid` are reset, so the first beats still look right).
    with pytest.raises(runner.SimulationError) as failure:
        runner.run(resetless[True], TB, testcase="random_traffic", seed=init_seed,
                   parameters={"seed": 1, "beats": 400})
    message = str(failure.value)
    assert re.search(r"random_traffic: cycle 0: \(i\.ready, o\.valid, level\) = "
                     r"\(True, False, [1-9]\d*\), model says \(True, False, 0\)", message)
    assert f"initial values: random, +verilator+seed+{init_seed + 1}" in message


def test_a_missing_reset_fails_a_reset_in_traffic():
    dut = ResetlessLevelFifo(8, 4)
    words = list(range(100))
    with pytest.raises(AssertionError):
        run_streams(dut, {"i": (dut.i, words)}, {"o": (dut.o, words)}, seed=3, reset=True)
