# amaranth: UnusedElaboratable=no
"""AdcAccumulator under Verilator against `imcflow.sw.arith.requantize` of the row tiles' sum
plus bias (testbench tests/cocotb/accumulator_tb.py): 24 random configurations and the edge
cases in two bundles (see tests/test_crossbar_cocotb.py), each under independent random idle
cycles on every row-tile input and backpressure on the output, then measured at full speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imcflow.hw.accumulator import AdcAccumulator
from imcflow.sw.arch import Arch
from imcflow.sw.arith import MAX_SHIFT, MULT_BITS, Requantizer, act_range, requantize

from test_accumulator import random_parts
from test_crossbar_cocotb import run_bundle

TB = Path(__file__).parent / "cocotb" / "accumulator_tb.py"
IMAGE = 4


def accumulator_unit(k: int, seed: int, arch: Arch, row_tiles: int, cols: int, *, signed: bool,
                     data: dict, bias=None, mult=None, shift=None, parts=None):
    """An accumulator (random requantization unless given), its stimulus and golden outputs (into
    ``data`` under ``u<k>_``) and its description for the testbench."""
    rng = np.random.default_rng(seed)
    if shift is None:
        shift = int(rng.integers(0, 4) if rng.random() < 0.3 else rng.integers(4, 24))
    if mult is None:
        mult = rng.integers(0, 1 << min(MULT_BITS, shift + int(rng.integers(1, 12))), size=cols)
    if bias is None:
        bias = rng.integers(-5000, 5000, size=cols)
    accumulator = AdcAccumulator(bias, Requantizer(mult, shift, arch.act_bits, signed),
                                 row_tiles=row_tiles, params=arch.crossbar)
    for phase, n in (("a", 30), ("c", 12)):
        p = random_parts(rng, n, row_tiles, cols, arch) if parts is None else parts[:, :n]
        data[f"u{k}_parts_{phase}"] = p
        data[f"u{k}_y_{phase}"] = requantize(p.sum(axis=0) + bias, mult, shift,
                                            act_bits=arch.act_bits, signed=signed)
    return accumulator, {"row_tiles": row_tiles, "cols": cols, "in_bits": accumulator.in_bits,
                         "act_bits": arch.act_bits, "signed": signed,
                         "latency": accumulator.latency, "interval": accumulator.interval,
                         "seed": seed, "idle": float(rng.uniform(0, 0.6)),
                         "stall": float(rng.uniform(0, 0.6))}


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    encoding = ["pwm", "bit_serial"][int(rng.integers(2))]
    act_bits = int(rng.integers(2, 9))
    arch = Arch(act_bits=act_bits, adc_bits=int(rng.integers(2, 13)), input_encoding=encoding,
                mvm_cycles=8)
    return dict(arch=arch, row_tiles=int(rng.integers(1, 5)), cols=int(rng.integers(1, 9)),
                signed=bool(rng.integers(2)))


def check_accumulators(name, cases, tmp_path):
    data, accumulators, units = {}, [], []
    for k, (seed, case) in enumerate(cases):
        accumulator, unit = accumulator_unit(k, seed, data=data, **case)
        arch = case["arch"]
        print(f"{name} u{k}: seed {seed}, {case['row_tiles']} row tiles x {case['cols']} cols, "
              f"{arch.input_encoding}, act {arch.act_bits}, adc {arch.adc_bits}, "
              f"signed {case['signed']}, shift {accumulator.shift}, acc {accumulator.acc_shape}")
        accumulators.append(accumulator)
        units.append(unit)
    report = run_bundle(TB, name, accumulators, units, data, tmp_path, image=IMAGE)
    assert report["beats"] == [42] * len(cases)
    return data


def test_random_accumulators(seeds, tmp_path):
    check_accumulators("accumulators_random", [(s, random_case(s)) for s in seeds(24)], tmp_path)


def test_edge_accumulators(seeds, tmp_path):
    # Sums at both ends of the range of four row tiles, extreme biases and the largest multiplier
    # without a shift: the widest intermediate is reached and the output saturates at both ends
    # (ReLU and signed); the largest shift; a zero multiplier; one row tile of one column.
    seed, = seeds(1)
    arch = Arch(act_bits=8, adc_bits=10, input_encoding="bit_serial")
    lo, hi = arch.crossbar.output_range
    ends = np.repeat(np.array([lo, hi] * 21).reshape(1, 42, 1), 4, axis=0)
    top = (1 << MULT_BITS) - 1
    extremes = dict(bias=np.array([-(1 << 24), 1 << 24, 0]), mult=np.full(3, top), shift=0,
                    parts=np.repeat(ends, 3, axis=2))
    cases = [
        (seed, dict(arch=arch, row_tiles=4, cols=3, signed=False, **extremes)),
        (seed + 1, dict(arch=arch, row_tiles=4, cols=3, signed=True, **extremes)),
        (seed + 2, dict(arch=arch, row_tiles=2, cols=5, signed=True, shift=MAX_SHIFT,
                        mult=np.full(5, top))),
        (seed + 3, dict(arch=Arch(), row_tiles=3, cols=2, signed=False, mult=np.zeros(2, int))),
        (seed + 4, dict(arch=Arch(act_bits=2, adc_bits=2), row_tiles=1, cols=1, signed=True)),
    ]
    data = check_accumulators("accumulators_edges", cases, tmp_path)
    for k, signed in ((0, False), (1, True)):
        a_lo, a_hi = act_range(8, signed)
        assert (data[f"u{k}_y_a"] == a_lo).any() and (data[f"u{k}_y_a"] == a_hi).any()
