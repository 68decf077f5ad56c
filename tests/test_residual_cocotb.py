# amaranth: UnusedElaboratable=no
"""Fork, Join and whole residual blocks (Fork, a max-pool main path, SkipFifo, Join) under
Verilator, against `imcflow.sw.golden`.

Each test builds one `~imcflow.verif.bank.Bank`: 20 random configurations (one seed each,
printed; with ``IMCFLOW_SEED=<seed>`` the bank holds that one configuration, so a failing seed
reproduces alone) plus the edge cases, side by side in one toplevel, so that a single Verilator
build covers them all. tests/cocotb/stream_bank_tb.py drives every unit with seeded random idle
cycles and independent random backpressure on each output and checks every beat; a second run
with neither measures latency and rate. `Unit` and `run_bank` are shared with
tests/test_pool_cocotb.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import wiring

from imcflow.hw.residual import Fork, Join
from imcflow.hw.streams import VectorLayout
from imcflow.sw import golden
from imcflow.sw.arith import Requantizer, act_range
from imcflow.verif import runner
from imcflow.verif.bank import Bank
from test_residual import Residual, beats, random_join, random_map

TB = Path(__file__).parent / "cocotb" / "stream_bank_tb.py"


@dataclass
class Unit:
    """One block of a bank: the component, its input maps and golden output maps (batches of
    ``(N, ..., lanes)`` arrays per port), the seed of its traffic and the traffic's rates."""

    name: str
    dut: wiring.Component
    inputs: dict
    outputs: dict
    seed: int = 0
    idle: float = 0.0
    backpressure: float = 0.0
    info: dict = field(default_factory=dict)

    def parameters(self, full_rate: bool) -> dict:
        ports = {**self.inputs, **self.outputs}
        layouts = {port: getattr(self.dut, port).p.shape() for port in ports}
        return {"name": self.name, "seed": self.seed,
                "idle": 0 if full_rate else self.idle,
                "backpressure": 0 if full_rate else self.backpressure,
                "inputs": {p: beats(getattr(self.dut, p), a) for p, a in self.inputs.items()},
                "outputs": {p: beats(getattr(self.dut, p), a) for p, a in self.outputs.items()},
                "layouts": {p: [lay.lanes, lay.bits, lay.signed] for p, lay in layouts.items()}}


def run_bank(bank_name: str, units: list[Unit], *, timeout: int = 50_000) -> dict:
    """Build the bank of ``units`` and run it twice: with each unit's random traffic, then at
    full rate. Returns the full-rate run's handshake cycles, ``{"<unit>.<port>": [cycles]}``."""
    for unit in units:
        print(f"{unit.name}: seed {unit.seed}, idle {unit.idle:.2f}, "
              f"backpressure {unit.backpressure:.2f}, {unit.info}")
    build = runner.build(Bank({unit.name: unit.dut for unit in units}), name=bank_name)
    for full_rate in (False, True):
        cycles = runner.run(build, TB, parameters={
            "units": [unit.parameters(full_rate) for unit in units],
            "timeout": timeout, "tail": 32})["cycles"]
    return cycles


def traffic(rng) -> dict:
    """Seeded random rates of idle cycles and backpressure for one unit."""
    return dict(idle=float(rng.uniform(0, 0.6)), backpressure=float(rng.uniform(0, 0.7)))


# --- Fork ---------------------------------------------------------------------------------------

def test_fork_under_verilator(seeds):
    units = []
    for n, seed in enumerate(seeds(20)):
        rng = np.random.default_rng(seed)
        layout = VectorLayout(int(rng.integers(1, 5)), int(rng.integers(1, 9)),
                              bool(rng.integers(0, 2)))
        fmap = random_map(rng, (3, 4, 5, layout.lanes), layout.bits, layout.signed)
        units.append(Unit(f"f{n}", Fork(layout), {"i": fmap}, {"o_main": fmap, "o_skip": fmap},
                          seed, info=dict(layout=layout), **traffic(rng)))
    cycles = run_bank("fork_bank", units)
    for unit in units:
        # full rate: both copies of every beat leave in the cycle it arrives
        i = cycles[f"{unit.name}.i"]
        assert i == list(range(len(i)))
        assert cycles[f"{unit.name}.o_main"] == cycles[f"{unit.name}.o_skip"] == i


# --- Join ---------------------------------------------------------------------------------------

def join_unit(name, params, a, b, seed, **rates):
    dut = Join(**params)
    expected = golden.join(a, b, dut.mult_a, dut.mult_b, dut.shift, act_bits=dut.act_bits,
                           signed=dut.act_signed)
    return Unit(name, dut, {"i_a": a, "i_b": b}, {"o": expected}, seed, info=params, **rates)


def extreme_maps(shape, bits, signed):
    """Maps at the low end, the high end, and alternating between them."""
    lo, hi = act_range(bits, signed)
    alternate = np.where(np.indices(shape).sum(axis=0) % 2 == 0, lo, hi)
    return np.stack([np.full(shape, lo), np.full(shape, hi), alternate])


def test_join_under_verilator(seeds):
    units = []
    for n, seed in enumerate(seeds(20)):
        rng = np.random.default_rng(seed)
        params = random_join(rng)
        shape = (3, int(rng.integers(1, 6)), int(rng.integers(1, 6)), params["c"])
        a = random_map(rng, shape, params["a_shape"].width, params["a_shape"].signed)
        b = random_map(rng, shape, params["b_shape"].width, params["b_shape"].signed)
        units.append(join_unit(f"j{n}", params, a, b, seed, **traffic(rng)))
    # Edges: both inputs at their extremes, to saturation at both ends of signed and unsigned
    # outputs; one channel; the largest multipliers.
    for name, a_shape, b_shape, mult_a, mult_b, shift, act_signed in [
        ("sat_unsigned", unsigned(8), unsigned(8), 65535, 65535, 8, False),
        ("sat_signed", signed(8), signed(8), 65535, 40000, 10, True),
        ("neg_into_relu", signed(6), unsigned(4), 3, 1, 0, False),
        ("identity", signed(8), signed(8), 1, 0, 0, True),
    ]:
        a = extreme_maps((2, 3, 1), a_shape.width, a_shape.signed)
        b = extreme_maps((2, 3, 1), b_shape.width, b_shape.signed)[::-1]
        params = dict(c=1, a_shape=a_shape, b_shape=b_shape,
                      requantizer=Requantizer((mult_a, mult_b), shift, 8, act_signed))
        units.append(join_unit(name, params, a, b, 0, idle=0.3, backpressure=0.3))
    cycles = run_bank("join_bank", units)
    for unit in units:
        # full rate: a pair consumed every cycle, its sum valid the next cycle
        a, b, o = (cycles[f"{unit.name}.{port}"] for port in ("i_a", "i_b", "o"))
        assert a == b == list(range(len(a)))
        assert o == [t + Join(c=1, a_shape=unsigned(8), b_shape=unsigned(8),
                              requantizer=Requantizer((1, 1), 0, 8)).latency for t in a]


# --- whole residual blocks ----------------------------------------------------------------------

def test_residual_blocks_under_verilator(seeds):
    # Fork, a 3x3 max pool (same size), SkipFifo and Join: at the full-rate skip depth, a pixel
    # per cycle goes in over three images back to back.
    units = []
    for n, seed in enumerate(seeds(6)):
        rng = np.random.default_rng(seed)
        h, w = int(rng.integers(3, 8)), int(rng.integers(3, 8))
        fmap = random_map(rng, (3, h, w, 2), 6, False)
        expected = golden.join(golden.max_pool(fmap, 3, 1, 1), fmap, 1, 1, 1, act_bits=6,
                               signed=False)
        dut = Residual(h, w, 2, 6)
        units.append(Unit(f"r{n}", dut, {"i": fmap}, {"o": expected}, seed,
                          info=dict(h=h, w=w, depth=dut.skip.depth), **traffic(rng)))
    cycles = run_bank("residual_bank", units)
    for unit in units:
        i = cycles[f"{unit.name}.i"]
        assert i == list(range(len(i)))
