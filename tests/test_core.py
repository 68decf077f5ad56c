# amaranth: UnusedElaboratable=no
"""CrossbarLayer in the Amaranth simulator: constructor checks, tiling into row and column tiles,
bit-exactness with `imcflow.sw.golden.crossbar_layer` under random idle cycles and backpressure,
latency and interval."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from imcflow.errors import UserError
from imcflow.hw.core import CrossbarLayer
from imcflow.sw.arch import Arch
from imcflow.sw.arith import MULT_BITS, Requantizer
from imcflow.sw.golden import crossbar_layer
from imcflow.verif.amaranth_sim import run_streams

from test_crossbar import pack, random_adc_shift, random_weight, random_windows

ARCH = Arch(rows=8, cols=4, mvm_cycles=1)


@pytest.mark.parametrize("kwargs, message", [
    # (the requantizer checks its own fields: tests/test_values.py)
    (dict(params=Arch().to_dict()), "params: must be a imcflow.sw.arch.CrossbarParams, not {"),
    (dict(weight=[[0.5]]), "weight: must be an array of integers, not [[0.5]]"),
    (dict(weight=np.full((2, 3), 9)), "weight: must have every element in -7..7, not 9..9"),
    (dict(bias=[0, 0]), "bias: must have one element per output channel (3), not 2"),
    (dict(requantizer=Requantizer([1, 2], 0, 8)),
     "requantizer.mult: must be 3 multipliers, not (1, 2)"),
    (dict(adc_shift=None), "adc_shift: must be a non-negative integer, not None"),
    (dict(target="asic"), "target: must be one of 'sim', 'fpga', not 'asic'"),
])
def test_constructor_checks(kwargs, message):
    args = dict(weight=np.zeros((2, 3), int), bias=[0] * 3, requantizer=Requantizer([1] * 3, 0, 8),
                adc_shift=0, params=ARCH.crossbar) | kwargs
    with pytest.raises(UserError) as info:
        CrossbarLayer(args.pop("weight"), args.pop("bias"), args.pop("requantizer"), **args)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("rows, channels, tile_shapes", [
    (8, 4, [[(8, 4)]]),                                   # exactly one crossbar
    (9, 4, [[(8, 4)], [(1, 4)]]),                         # rows + 1: a second, one-row tile
    (3, 5, [[(3, 4), (3, 1)]]),                           # cols + 1: a second, one-column tile
    (20, 9, [[(8, 4), (8, 4), (8, 1)], [(8, 4), (8, 4), (8, 1)], [(4, 4), (4, 4), (4, 1)]]),
])
def test_tiles_hold_only_the_used_rows_and_columns(rows, channels, tile_shapes):
    rng = np.random.default_rng(0)
    weight = random_weight(rng, (rows, channels), ARCH.weight_bits)
    layer = CrossbarLayer(weight, [0] * channels, Requantizer([1] * channels, 0, 8), adc_shift=0,
                          params=ARCH.crossbar)
    Fragment.get(layer, platform=None)                    # elaborates, tiles included
    assert [[tile.weight.shape for tile in row] for row in layer.tiles] == tile_shapes
    assert np.array_equal(np.block([[tile.weight for tile in row] for row in layer.tiles]), weight)
    assert [acc.row_tiles for acc in layer.accumulators] == [len(tile_shapes)] * len(tile_shapes[0])
    first = layer.tiles[0][0]
    assert (layer.interval, layer.latency) == (first.interval, first.latency + 3)


def random_layer(rng, rows, channels, arch, signed):
    weight = random_weight(rng, (rows, channels), arch.weight_bits)
    shift = int(rng.integers(6, 16))
    mult = rng.integers(1 << (shift - 5), 1 << min(MULT_BITS, shift + 2), size=channels)
    bias = rng.integers(-200, 200, size=channels)
    adc_shift = random_adc_shift(rng, min(rows, arch.rows), arch)
    return CrossbarLayer(weight, bias, Requantizer(mult, shift, arch.act_bits, signed),
                         adc_shift=adc_shift, params=arch.crossbar)


def check_layer(layer, x, *, seed, image=7, idle=0.3, backpressure=0.3):
    """Send windows ``x`` through ``layer``, compare every output pixel with the golden model;
    returns it and the handshake edges."""
    arch, r, o_layout = layer.params, layer.requantizer, layer.o.payload.shape()
    want = crossbar_layer(x, layer.weight, layer.bias, np.array(r.mult), r.shift,
                          signed=r.signed, xbar_rows=arch.rows,
                          encoding=arch.input_encoding, act_bits=arch.act_bits,
                          adc_bits=arch.adc_bits, adc_shift=layer.tiles[0][0].adc_shift)
    edges = run_streams(layer, {"i": (layer.i, pack(layer.i.payload.shape(), x, image))},
                        {"o": (layer.o, pack(o_layout, want, image))}, seed=seed, idle=idle,
                        backpressure=backpressure)
    return want, edges


LAYERS = [
    pytest.param(8, 4, Arch(rows=8, cols=4, mvm_cycles=1), False, id="one-tile"),
    pytest.param(9, 4, Arch(rows=8, cols=4, mvm_cycles=2, col_parallelism=2), True,
                 id="rows+1-p2"),
    pytest.param(5, 5, Arch(rows=8, cols=4, mvm_cycles=1, col_parallelism=1), False,
                 id="cols+1-p1"),
    # the narrow column tile finishes first and waits, without delaying its next window
    pytest.param(6, 5, Arch(rows=8, cols=4, mvm_cycles=4, col_parallelism=1), True,
                 id="cols+1-analog"),
    pytest.param(13, 6, Arch(rows=6, cols=4, act_bits=4, adc_bits=5, input_encoding="bit_serial",
                             mvm_cycles=4, col_parallelism=3), False, id="3x2-bit_serial"),
    pytest.param(1, 1, Arch(rows=4, cols=4, mvm_cycles=3), True, id="1x1"),
]


@pytest.mark.parametrize("rows, channels, arch, signed", LAYERS)
def test_matches_crossbar_layer(rows, channels, arch, signed, seeds):
    for seed in seeds(2):
        rng = np.random.default_rng(seed)
        layer = random_layer(rng, rows, channels, arch, signed)
        check_layer(layer, random_windows(rng, 20, rows, arch.act_bits), seed=seed,
                    idle=rng.uniform(0, 0.6), backpressure=rng.uniform(0, 0.6))


@pytest.mark.parametrize("rows, channels, arch, signed", LAYERS)
def test_latency_and_interval(rows, channels, arch, signed):
    # Windows back to back and an output that never stalls: a window is taken every `interval`
    # cycles (the stage time of P pixels is P * interval) and each output pixel is valid
    # `latency` cycles after its window; narrower column tiles add no bubbles.
    rng, n = np.random.default_rng(2), 10
    layer = random_layer(rng, rows, channels, arch, signed)
    _, edges = check_layer(layer, random_windows(rng, n, rows, arch.act_bits), seed=0, idle=None,
                           backpressure=None)
    assert np.diff(edges["i"]).tolist() == [layer.interval] * (n - 1)
    assert (np.array(edges["o"]) - edges["i"]).tolist() == [layer.latency] * n
