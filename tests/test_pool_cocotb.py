# amaranth: UnusedElaboratable=no
"""GlobalAvgPool under Verilator, against `imcflow.sw.golden`.

As in tests/test_residual_cocotb.py, each test builds one `Bank` of 20 random geometries (one
seed each, printed; ``IMCFLOW_SEED=<seed>`` keeps that one alone) plus the edge cases, runs it
with seeded random idle cycles and backpressure on every unit (three images back to back each),
then again at full rate to check the cycle of every handshake.
"""

from __future__ import annotations

import numpy as np

from imcflow.hw.pool import GlobalAvgPool
from imcflow.sw import golden
from test_residual import random_map, random_rescale
from test_residual_cocotb import Unit, extreme_maps, run_bank, traffic

IMAGES = 3


# --- GlobalAvgPool ------------------------------------------------------------------------------

def global_unit(name, fmap, bits, signed, mult, shift, act_bits, act_signed, seed, **rates):
    _, h, w, c = fmap.shape
    dut = GlobalAvgPool(h, w, c, bits, signed=signed, mult=mult, shift=shift, act_bits=act_bits,
                        act_signed=act_signed)
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
        assert cycles[f"{unit.name}.o"] == [(n + 1) * h * w - 1 + GlobalAvgPool.latency
                                            for n in range(IMAGES)]
