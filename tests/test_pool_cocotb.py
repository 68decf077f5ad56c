# amaranth: UnusedElaboratable=no
"""MaxPool, AvgPool and GlobalAvgPool under Verilator, against `imcflow.sw.golden`.

As in tests/test_residual_cocotb.py, each test builds one `Bank` of 20 random geometries (one
seed each, printed; ``IMCFLOW_SEED=<seed>`` keeps that one alone) plus the edge cases, runs it
with seeded random idle cycles and backpressure on every unit (three images back to back each),
then again at full rate to check the timing against the window source's cycle-accurate model.
"""

from __future__ import annotations

import numpy as np

from imcflow.hw.im2col import window_schedule
from imcflow.hw.pool import AvgPool, GlobalAvgPool, MaxPool
from imcflow.sw.timing import GLOBAL_POOL_LATENCY
from imcflow.sw import golden
from imcflow.sw.arith import Requantizer, act_range
from imcflow.sw.geometry import WindowGeometry
from test_residual import random_map, random_rescale
from test_residual_cocotb import Unit, extreme_maps, run_bank, traffic

IMAGES = 3



def random_geometry(rng, padded=True):
    """h, w, c, bits, kernel, stride, padding, signed: any fitting combination."""
    kernel = int(rng.integers(1, 5))
    padding = int(rng.integers(0, kernel)) if padded else 0
    signed = bool(rng.integers(0, 2))
    low = max(1, kernel - 2 * padding)
    return (int(rng.integers(low, 10)), int(rng.integers(low, 10)), int(rng.integers(1, 5)),
            int(rng.integers(2 if signed else 1, 9)), kernel, int(rng.integers(1, 4)), padding,
            signed)


# h, w, c, bits, kernel, stride, padding, signed
EDGES = {
    "c1_k1": (4, 5, 1, 8, 1, 1, 0, False),
    "stride2_odd": (7, 9, 2, 8, 3, 2, 1, True),
    "stride2_odd_k2": (5, 7, 1, 4, 2, 2, 0, False),
    "k_eq_w": (5, 5, 3, 6, 5, 1, 0, True),
    "k_eq_w_padded": (3, 3, 1, 8, 3, 3, 2, False),
}


def timing_matches_window_source(unit, cycles, reducer_latency=1):
    """At full rate each pooled pixel leaves ``reducer_latency`` cycles after the window
    source's model offers its window, and the input is taken as the model says."""
    h, w, c, _, kernel, stride, padding, _ = unit.info["geometry"]
    pixels, windows = window_schedule(WindowGeometry(h, w, c, kernel, stride, padding),
                                      images=IMAGES)
    assert cycles[f"{unit.name}.i"] == list(pixels)
    assert cycles[f"{unit.name}.o"] == list(windows + reducer_latency)


# --- MaxPool ------------------------------------------------------------------------------------

def max_pool_unit(name, geometry, fmap, seed, **rates):
    h, w, c, bits, kernel, stride, padding, signed = geometry
    expected = golden.max_pool(fmap, kernel, stride, padding, pad_value=act_range(bits, signed)[0])
    return Unit(name, MaxPool(WindowGeometry(h, w, c, kernel, stride, padding), bits, signed=signed),
                {"i": fmap}, {"o": expected}, seed, info=dict(geometry=geometry), **rates)


def test_max_pool_under_verilator(seeds):
    units = []
    for n, seed in enumerate(seeds(20)):
        rng = np.random.default_rng(seed)
        geometry = random_geometry(rng)
        h, w, c, bits, *_, signed = geometry
        fmap = random_map(rng, (IMAGES, h, w, c), bits, signed)
        units.append(max_pool_unit(f"m{n}", geometry, fmap, seed, **traffic(rng)))
    for name, geometry in EDGES.items():
        h, w, c, bits, *_, signed = geometry
        fmap = random_map(np.random.default_rng(len(units)), (IMAGES, h, w, c), bits, signed)
        units.append(max_pool_unit(name, geometry, fmap, 0, idle=0.3, backpressure=0.3))
    for signed in (False, True):  # all-lowest (ties with padding), all-highest, alternating
        geometry = (5, 6, 2, 8, 3, 2, 1, signed)
        units.append(max_pool_unit(f"extremes_{'s' if signed else 'u'}", geometry,
                                   extreme_maps((5, 6, 2), 8, signed), 0, idle=0.2,
                                   backpressure=0.4))
    cycles = run_bank("max_pool_bank", units)
    for unit in units:
        timing_matches_window_source(unit, cycles)


# --- AvgPool ------------------------------------------------------------------------------------

def avg_pool_unit(name, geometry, fmap, mult, shift, act_bits, act_signed, seed, **rates):
    h, w, c, bits, kernel, stride, _, signed = geometry
    expected = golden.avg_pool(fmap, kernel, stride, mult, shift, act_bits=act_bits,
                               signed=act_signed)
    dut = AvgPool(WindowGeometry(h, w, c, kernel, stride), bits,
                  Requantizer(mult, shift, act_bits, act_signed), signed=signed)
    return Unit(name, dut, {"i": fmap}, {"o": expected}, seed,
                info=dict(geometry=geometry, mult=mult, shift=shift, act_bits=act_bits,
                          act_signed=act_signed), **rates)


def test_avg_pool_under_verilator(seeds):
    units = []
    for n, seed in enumerate(seeds(20)):
        rng = np.random.default_rng(seed)
        geometry = random_geometry(rng, padded=False)
        h, w, c, bits, kernel, *_, signed = geometry
        mult, shift = random_rescale(rng, 1 / kernel ** 2)
        fmap = random_map(rng, (IMAGES, h, w, c), bits, signed)
        units.append(avg_pool_unit(f"a{n}", geometry, fmap, mult, shift, int(rng.integers(2, 9)),
                                   bool(rng.integers(0, 2)), seed, **traffic(rng)))
    for name, geometry in EDGES.items():
        geometry = (*geometry[:6], 0, geometry[7])
        h, w, c, bits, kernel, *_, signed = geometry
        fmap = random_map(np.random.default_rng(len(units)), (IMAGES, h, w, c), bits, signed)
        units.append(avg_pool_unit(name, geometry, fmap, round(2 ** 12 / kernel ** 2), 12, bits,
                                   signed, 0, idle=0.3, backpressure=0.3))
    for signed in (False, True):  # saturating sums of extreme maps, both output ranges
        units.append(avg_pool_unit(f"extremes_{'s' if signed else 'u'}", (4, 6, 2, 8, 2, 2, 0, signed),
                                   extreme_maps((4, 6, 2), 8, signed), 65535, 10, 8, signed, 0,
                                   idle=0.2, backpressure=0.4))
    cycles = run_bank("avg_pool_bank", units)
    for unit in units:  # the sum and product registers, then the output register
        timing_matches_window_source(unit, cycles, reducer_latency=3)


# --- GlobalAvgPool ------------------------------------------------------------------------------

def global_unit(name, fmap, bits, signed, mult, shift, act_bits, act_signed, seed, **rates):
    _, h, w, c = fmap.shape
    dut = GlobalAvgPool(h, w, c, bits, Requantizer(mult, shift, act_bits, act_signed),
                        signed=signed)
    expected = golden.global_avg_pool(fmap, mult, shift, act_bits=act_bits, signed=act_signed)
    return Unit(name, dut, {"i": fmap}, {"o": expected}, seed,
                info=dict(shape=fmap.shape, bits=bits, signed=signed, mult=mult, shift=shift,
                          act_bits=act_bits, act_signed=act_signed), **rates)


def test_global_avg_pool_under_verilator(seeds):
    units = []
    for n, seed in enumerate(seeds(20)):
        rng = np.random.default_rng(seed)
        h, w, c = (int(rng.integers(1, 9)) for _ in "hwc")
        bits, signed = int(rng.integers(2, 9)), bool(rng.integers(0, 2))
        mult, shift = random_rescale(rng, 1 / (h * w))
        fmap = random_map(rng, (IMAGES, h, w, c), bits, signed)
        units.append(global_unit(f"g{n}", fmap, bits, signed, mult, shift,
                                 int(rng.integers(2, 9)), bool(rng.integers(0, 2)), seed,
                                 **traffic(rng)))
    one_pixel = random_map(np.random.default_rng(1), (IMAGES, 1, 1, 1), 8, False)
    units.append(global_unit("one_pixel", one_pixel, 8, False, 1, 0, 8, False, 0, idle=0.3,
                             backpressure=0.3))
    for signed in (False, True):  # the largest sums, saturated at both ends
        units.append(global_unit(f"extremes_{'s' if signed else 'u'}",
                                 extreme_maps((7, 7, 3), 8, signed), 8, signed, 65535, 12, 8,
                                 signed, 0, idle=0.2, backpressure=0.8))
    cycles = run_bank("global_avg_pool_bank", units)
    for unit in units:
        # full rate: every pixel of the images back to back, a result a cycle after each image
        _, h, w, _ = unit.info["shape"]
        assert cycles[f"{unit.name}.i"] == list(range(IMAGES * h * w))
        assert cycles[f"{unit.name}.o"] == [(n + 1) * h * w - 1 + GLOBAL_POOL_LATENCY
                                            for n in range(IMAGES)]
