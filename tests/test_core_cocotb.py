# amaranth: UnusedElaboratable=no
"""CrossbarLayer under Verilator against `imcflow.sw.golden.crossbar_layer` (testbench
tests/cocotb/core_tb.py): 20 random layers and the edge cases in bundles (see
tests/test_crossbar_cocotb.py), each under random idle cycles and backpressure, then measured at
full speed: one window every ``interval`` cycles and ``latency`` from window to output pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imcflow.hw.core import CrossbarLayer
from imcflow.sw.arch import Arch
from imcflow.sw.arith import MULT_BITS, Requantizer, act_range, weight_range
from imcflow.sw.golden import crossbar_layer

from test_crossbar import random_adc_shift, random_weight, random_windows
from test_crossbar_cocotb import run_bundle

TB = Path(__file__).parent / "cocotb" / "core_tb.py"
IMAGE = 7


def layer_unit(k: int, seed: int, rows: int, channels: int, arch: Arch, *, signed: bool,
               data: dict, weight=None, bias=None, mult=None, shift=None, adc_shift=None):
    """A layer (random parameters unless given), its windows and golden output pixels (into
    ``data`` under ``u<k>_``) and its description for the testbench."""
    rng = np.random.default_rng(seed)
    weight = random_weight(rng, (rows, channels), arch.weight_bits) if weight is None else weight
    shift = int(rng.integers(4, 16)) if shift is None else shift
    if mult is None:
        mult = rng.integers(1 << (shift - 4), 1 << min(MULT_BITS, shift + 2), size=channels)
    bias = rng.integers(-300, 300, size=channels) if bias is None else bias
    if adc_shift is None:
        adc_shift = random_adc_shift(rng, min(rows, arch.rows), arch)
    layer = CrossbarLayer(weight, bias, Requantizer(mult, shift, arch.act_bits, signed),
                          adc_shift=adc_shift, params=arch.crossbar)
    for phase, n in (("a", 30), ("c", 10)):
        x = random_windows(rng, n, rows, arch.act_bits)
        data[f"u{k}_x_{phase}"] = x
        data[f"u{k}_y_{phase}"] = crossbar_layer(
            x, weight, bias, mult, shift, signed=signed, xbar_rows=arch.rows,
            encoding=arch.input_encoding, act_bits=arch.act_bits, adc_bits=arch.adc_bits,
            adc_shift=adc_shift)
    return layer, {"rows": rows, "channels": channels, "act_bits": arch.act_bits,
                   "signed": signed, "latency": layer.latency, "interval": layer.interval,
                   "seed": seed, "idle": float(rng.uniform(0, 0.6)),
                   "stall": float(rng.uniform(0, 0.6))}


def random_case(seed: int):
    """A random layer of up to 3 x 3 tiles on a small random architecture."""
    rng = np.random.default_rng(seed)
    encoding = ["pwm", "bit_serial"][int(rng.integers(2))]
    act_bits, xbar_rows, xbar_cols = int(rng.integers(2, 9)), int(rng.integers(4, 17)), int(rng.integers(2, 7))
    arch = Arch(rows=xbar_rows, cols=xbar_cols, weight_bits=int(rng.integers(2, 9)),
                act_bits=act_bits, adc_bits=int(rng.integers(3, 11)), input_encoding=encoding,
                mvm_cycles=(int(rng.choice([1, 2, 4])) if encoding == "pwm"
                            else act_bits + int(rng.choice([0, 2]))),
                col_parallelism=[None, 1, int(rng.integers(1, xbar_cols + 1))][int(rng.integers(3))])
    return dict(rows=int(rng.integers(1, 3 * xbar_rows + 1)),
                channels=int(rng.integers(1, 2 * xbar_cols + 3)), arch=arch,
                signed=bool(rng.integers(2)))


def check_layers(name, cases, tmp_path):
    data, layers, units = {}, [], []
    for k, (seed, case) in enumerate(cases):
        layer, unit = layer_unit(k, seed, data=data, **case)
        arch = case["arch"]
        print(f"{name} u{k}: seed {seed}, {case['rows']}x{case['channels']} on "
              f"{arch.rows}x{arch.cols} ({len(layer.tiles)}x{len(layer.tiles[0])} tiles), "
              f"{arch.input_encoding}, act {arch.act_bits}, adc {arch.adc_bits}, "
              f"w {arch.weight_bits}, p {layer.tiles[0][0].col_parallelism}, "
              f"mvm_cycles {arch.mvm_cycles}, signed {case['signed']}")
        layers.append(layer)
        units.append(unit)
    report = run_bundle(TB, name, layers, units, data, tmp_path, image=IMAGE)
    assert report["beats"] == [40] * len(cases)
    return data


@pytest.mark.parametrize("part", [0, 1])
def test_random_layers(part, seeds, tmp_path):
    # two bundles of 10, one per pytest-xdist worker
    check_layers(f"layers_random_{part}", [(s, random_case(s)) for s in seeds(10)], tmp_path)


def test_edge_layers(seeds, tmp_path):
    seed, = seeds(1)
    small = Arch(rows=12, cols=4, mvm_cycles=1)
    wmax = weight_range(small.weight_bits)[1]
    top = (1 << MULT_BITS) - 1
    # all weights at one end, all-maximum windows among the inputs, no ADC gain, a bias far
    # beyond the output range and the largest multiplier: ADC and accumulator saturate
    saturating = [dict(weight=np.full((24, 4), sign * wmax), bias=np.full(4, sign << 20),
                       mult=np.full(4, top), shift=0, adc_shift=0) for sign in (1, -1)]
    cases = [
        # k*k*C_in = rows exactly (one row tile), all columns at once, one cycle per MVM
        (seed, dict(rows=12, channels=4, arch=small.replace(col_parallelism=4), signed=False)),
        # rows + 1: a second row tile of one row; bit_serial, one column per cycle
        (seed + 1, dict(rows=13, channels=4, signed=True,
                        arch=small.replace(input_encoding="bit_serial", mvm_cycles=8,
                                           col_parallelism=1))),
        # cols + 1: a second, narrower and faster column tile; an analog interval of 3
        (seed + 2, dict(rows=7, channels=5, arch=small.replace(mvm_cycles=3, col_parallelism=2),
                        signed=False)),
        # a single row and a single column
        (seed + 3, dict(rows=1, channels=1, arch=small.replace(mvm_cycles=2), signed=True)),
        # saturation at both ends, ReLU and signed, over two row tiles
        (seed + 4, dict(rows=24, channels=4, arch=small, signed=False, **saturating[0])),
        (seed + 5, dict(rows=24, channels=4, arch=small, signed=True, **saturating[1])),
        (seed + 6, dict(rows=24, channels=4, arch=small, signed=True, **saturating[0])),
        (seed + 7, dict(rows=24, channels=4, arch=small, signed=False, **saturating[1])),
        # the 3x3 conv of 16 to 16 channels of the digits network on the default architecture
        (seed + 8, dict(rows=144, channels=16, arch=Arch(), signed=False)),
        (seed + 9, dict(rows=144, channels=16, arch=Arch(input_encoding="bit_serial",
                                                         col_parallelism=2), signed=False)),
    ]
    data = check_layers("layers_edges", cases, tmp_path)
    for k, signed, end in ((4, False, 1), (5, True, 0), (6, True, 1), (7, False, 0)):
        assert (data[f"u{k}_y_a"] == act_range(8, signed)[end]).any()
