# amaranth: UnusedElaboratable=no
"""CrossbarTile under Verilator against `imcflow.sw.arith.crossbar_mvm` (testbench
tests/cocotb/crossbar_tb.py): 24 random geometries and the edge cases, each under random idle
cycles and backpressure, reprogrammed through its write port, then measured at full speed.

Both flavours (`imcflow.hw.crossbar.TARGETS`): a random tile's flavour follows from its seed (so
each bundle holds both), and every edge case is built twice, ``fpga`` and ``sim``, with the same
seed, stimulus, idle cycles and backpressure, and the two must agree on the cycle of every
handshake of every port.

Every tile's weights and ADC gain are part of its RTL, so each would need its own Verilator build.
Instead, a `~imcflow.verif.bank.Bank` puts many independent tiles side by side in one toplevel
(tile ``k`` is unit ``u<k>``), and the testbench exercises them concurrently: two builds for the
random geometries (one per encoding) and one for the edge cases. Each tile's geometry and data
come from its own seed, so ``IMCFLOW_SEED=<seed>`` rebuilds a bank of that one tile and replays
exactly its stimulus.

`run_bundle` is shared by tests/test_accumulator_cocotb.py and tests/test_core_cocotb.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imcflow.hw.crossbar import TARGETS, CrossbarTile
from imcflow.sw.arch import Arch
from imcflow.sw.arith import signed_range, weight_range
from imcflow.verif import runner
from imcflow.verif.bank import Bank

from test_crossbar import mvm, random_adc_shift, random_weight, random_windows

TB = Path(__file__).parent / "cocotb" / "crossbar_tb.py"
#: Verilator flags of these builds: the MAC arrays become megabytes of C++, which g++ compiles
#: about four times faster unoptimized; the simulations are short, so the slower model costs
#: less than it saves.
FLAGS = ["-CFLAGS", "-O0"]
#: beats per image: ``last`` is set on every IMAGE-th beat
IMAGE = 5


def run_bundle(tb: Path, name: str, components, units: list[dict], data: dict, tmp_path,
               **parameters) -> dict:
    """Build a `~imcflow.verif.bank.Bank` of ``components`` (cached; component ``k`` is unit
    ``u<k>``) and run testbench ``tb`` on it.

    ``units[k]`` describes component ``k`` to the testbench (its ``prefix`` is added here);
    ``data`` maps names to arrays, saved to an ``.npz`` whose path is the ``data`` parameter.
    """
    for k, unit in enumerate(units):
        unit["prefix"] = f"u{k}_"
    np.savez(tmp_path / "data.npz", **data)
    bank = Bank({f"u{k}": component for k, component in enumerate(components)})
    sim = runner.build(bank, name=name, parameters={"units": units, **parameters}, flags=FLAGS)
    report = runner.run(sim, tb, parameters={"data": str(tmp_path / "data.npz")})
    for unit, beats in zip(units, report["beats"]):
        print(f"{name} {unit['prefix']}: {beats} beats, latency {unit['latency']}, "
              f"interval {unit['interval']}")
    print(f"{name}: {sum(report['beats'])} beats of {len(units)} units in {report['cycles']} cycles")
    return report


# --- tiles and their stimulus -----------------------------------------------------------------

def tile_unit(k: int, seed: int, rows: int, cols: int, arch: Arch, *, weight=None, new_weight=None,
              adc_shift=None, target: str, data: dict):
    """A tile of flavour ``target`` (random weights unless given), its stimulus and golden
    outputs (into ``data`` under ``u<k>_``) and its description for the testbench."""
    rng = np.random.default_rng(seed)
    weight = random_weight(rng, (rows, cols), arch.weight_bits) if weight is None else weight
    new = random_weight(rng, (rows, cols), arch.weight_bits) if new_weight is None else new_weight
    adc_shift = random_adc_shift(rng, rows, arch) if adc_shift is None else adc_shift
    tile = CrossbarTile(weight, adc_shift=adc_shift, params=arch.crossbar, target=target)
    # every column once in random order, one twice (the last write counts), and a column index
    # beyond the tile where the index field can hold one (ignored)
    order = [*rng.permutation(cols), int(rng.integers(cols))]
    if cols & (cols - 1):
        order.insert(int(rng.integers(len(order))), cols)
    prefix = f"u{k}_"
    data[prefix + "write_col"] = np.array(order)
    data[prefix + "write_data"] = np.array([
        new[:, c] if c < cols else random_weight(rng, rows, arch.weight_bits) for c in order])
    for phase, n, image in (("a", 25, weight), ("b", 25, new), ("c", 12, new)):
        x = random_windows(rng, n, rows, arch.act_bits)
        data[f"{prefix}x_{phase}"], data[f"{prefix}y_{phase}"] = x, mvm(x, image, adc_shift, arch)
    return tile, {"rows": rows, "cols": cols, "act_bits": arch.act_bits,
                  "weight_bits": arch.weight_bits, "out_bits": tile.out_bits,
                  "steps": tile.steps, "latency": tile.latency, "interval": tile.interval,
                  "seed": seed, "idle": float(rng.uniform(0, 0.6)),
                  "stall": float(rng.uniform(0, 0.6))}


def random_geometry(seed: int, encoding: str):
    """Random tile geometry and architecture: bit widths, parallelism, analog interval."""
    rng = np.random.default_rng(seed)
    act_bits, adc_bits = int(rng.integers(2, 9)), int(rng.integers(2, 11))
    rows, cols = int(rng.integers(1, 37)), int(rng.integers(1, 11))
    col_parallelism = [None, 1, int(rng.integers(1, cols + 3))][int(rng.integers(3))]
    mvm_cycles = (int(rng.choice([1, 1, 2, 5])) if encoding == "pwm"
                  else act_bits + int(rng.choice([0, 0, 3])))
    arch = Arch(rows=rows + int(rng.integers(0, 5)), cols=cols + int(rng.integers(0, 3)),
                weight_bits=int(rng.integers(2, 9)), act_bits=act_bits, adc_bits=adc_bits,
                input_encoding=encoding, mvm_cycles=mvm_cycles, col_parallelism=col_parallelism)
    return rows, cols, arch


def check_tiles(name, cases, tmp_path):
    data, tiles, units = {}, [], []
    for k, (seed, rows, cols, arch, kwargs) in enumerate(cases):
        tile, unit = tile_unit(k, seed, rows, cols, arch, data=data, **kwargs)
        print(f"{name} u{k}: {tile.target}, seed {seed}, {rows}x{cols}, {arch.input_encoding}, "
              f"act {arch.act_bits}, "
              f"adc {arch.adc_bits}, w {arch.weight_bits}, p {tile.col_parallelism}, "
              f"mvm_cycles {arch.mvm_cycles}, adc_shift {tile.adc_shift}")
        tiles.append(tile)
        units.append(unit)
    report = run_bundle(TB, name, tiles, units, data, tmp_path, image=IMAGE)
    assert report["beats"] == [62] * len(cases)
    return data, report


@pytest.mark.parametrize("encoding", ["pwm", "bit_serial"])
def test_random_tiles(encoding, seeds, tmp_path):
    cases = [(seed, *random_geometry(seed, encoding), {"target": TARGETS[seed % 2]})
             for seed in seeds(12)]
    check_tiles(f"tiles_random_{encoding}", cases, tmp_path)


def test_edge_tiles(seeds, tmp_path):
    # The whole crossbar used; all weights at the maximum, reprogrammed to all at the minimum,
    # with all-maximum windows among the inputs and no ADC gain: the codes saturate at both ends
    # (pwm and bit_serial, all columns at once and one at a time); a single row, a single column
    # and a single cell; an analog interval longer than the steps; tree pipeline registers, with
    # an MVM per cycle (three in flight) and with bit planes.
    seed, = seeds(1)
    full = dict(rows=16, cols=6, act_bits=6, adc_bits=5, mvm_cycles=6)
    hi = weight_range(4)[1]
    extremes = dict(weight=np.full((16, 6), hi), new_weight=np.full((16, 6), -hi), adc_shift=0)
    edges = [
        (seed, 16, 6, Arch(**full, col_parallelism=6), extremes),
        (seed + 1, 16, 6, Arch(**full, input_encoding="bit_serial", col_parallelism=1), extremes),
        (seed + 2, 1, 7, Arch(rows=1, cols=8, mvm_cycles=3, col_parallelism=3), {}),
        (seed + 3, 1, 7, Arch(rows=4, cols=8, act_bits=3, input_encoding="bit_serial",
                              mvm_cycles=3), {}),
        (seed + 4, 20, 1, Arch(rows=20, cols=1, mvm_cycles=1), {}),
        (seed + 5, 1, 1, Arch(rows=1, cols=1, act_bits=2, adc_bits=2, weight_bits=2,
                              input_encoding="bit_serial", mvm_cycles=7), {}),
        (seed + 6, 20, 5, Arch(rows=20, cols=8, mvm_cycles=1, mac_stages=2), {}),
        (seed + 7, 7, 3, Arch(rows=8, cols=4, input_encoding="bit_serial", act_bits=3, adc_bits=4,
                              mvm_cycles=3, mac_stages=3), {}),
    ]
    # each edge case as tile 2e (sim) and 2e + 1 (fpga)
    cases = [(*case[:4], {**case[4], "target": target}) for case in edges for target in TARGETS]
    data, report = check_tiles("tiles_edges", cases, tmp_path)
    for k, planes_weight in ((0, 1), (2, (1 << 6) - 1)):
        for unit in (k, k + 1):
            lo, hi = (end * planes_weight for end in signed_range(5))
            assert (data[f"u{unit}_y_a"] == hi).any() and (data[f"u{unit}_y_b"] == lo).any()
    # the two flavours of a case: every handshake in the same cycle
    handshakes = report["handshakes"]
    for e in range(len(edges)):
        assert handshakes[2 * e] == handshakes[2 * e + 1], f"edge case {e}: flavours differ"
