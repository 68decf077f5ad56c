# amaranth: UnusedElaboratable=no
"""Amaranth-simulator unit tests of the pooling blocks (`imcflow.hw.pool`) against
`imcflow.sw.golden`, under seeded random idle cycles and backpressure: the window reducers on
their own, then MaxPool and AvgPool (window source + reducer), and GlobalAvgPool."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from imcflow.errors import UserError
from imcflow.hw.im2col import window_schedule
from imcflow.hw.pool import AvgPool, GlobalAvgPool, MaxPool, WindowAverage, WindowMax
from imcflow.sw.timing import GLOBAL_POOL_LATENCY
from imcflow.hw.streams import VectorLayout
from imcflow.sw import golden
from imcflow.sw.arith import Requantizer, act_range
from imcflow.sw.geometry import WindowGeometry
from imcflow.verif.amaranth_sim import run_streams
from test_residual import random_map, random_rescale, run_maps


def random_window(rng, images=2):
    """A random pooling geometry (kernel, stride, c, bits, signed) and a batch of maps."""
    kernel = int(rng.integers(1, 4))
    signed = bool(rng.integers(0, 2))
    g = dict(kernel=kernel, stride=int(rng.integers(1, 3)), c=int(rng.integers(1, 4)),
             bits=int(rng.integers(2 if signed else 1, 9)), signed=signed)
    shape = (images, int(rng.integers(kernel, 7)), int(rng.integers(kernel, 7)), g["c"])
    return g, random_map(rng, shape, g["bits"], signed)


# --- the window reducers on their own -----------------------------------------------------------

def check_window_max(g, fmap, padding, seed, **rates):
    pad_value = act_range(g["bits"], g["signed"])[0]
    windows = golden.windows(fmap, g["kernel"], g["stride"], padding, pad_value)
    expected = golden.max_pool(fmap, g["kernel"], g["stride"], padding, pad_value=pad_value)
    dut = WindowMax(g["kernel"], g["c"], g["bits"], signed=g["signed"])
    return run_maps(dut, {"i": windows}, {"o": expected}, seed=seed, **rates)


def check_window_average(g, fmap, mult, shift, act_bits, act_signed, seed, **rates):
    windows = golden.windows(fmap, g["kernel"], g["stride"])
    expected = golden.avg_pool(fmap, g["kernel"], g["stride"], mult, shift, act_bits=act_bits,
                               signed=act_signed)
    dut = WindowAverage(g["kernel"], g["c"], g["bits"],
                        Requantizer(mult, shift, act_bits, act_signed), signed=g["signed"])
    return run_maps(dut, {"i": windows}, {"o": expected}, seed=seed, **rates)


def test_window_max_matches_golden_max_pool(seeds):
    for seed in seeds(8):
        rng = np.random.default_rng(seed)
        g, fmap = random_window(rng)
        padding = int(rng.integers(0, g["kernel"]))
        print(g, "map", fmap.shape, "padding", padding)
        check_window_max(g, fmap, padding, seed, idle=rng.uniform(0, 0.5),
                         backpressure=rng.uniform(0, 0.6))


def test_window_average_matches_golden_avg_pool(seeds):
    for seed in seeds(8):
        rng = np.random.default_rng(seed)
        g, fmap = random_window(rng)
        mult, shift = random_rescale(rng, 1 / g["kernel"] ** 2)
        act_bits, act_signed = int(rng.integers(2, 9)), bool(rng.integers(0, 2))
        print(g, "map", fmap.shape, "mult", mult, "shift", shift, "act", act_bits, act_signed)
        check_window_average(g, fmap, mult, shift, act_bits, act_signed, seed,
                             idle=rng.uniform(0, 0.5), backpressure=rng.uniform(0, 0.6))


def test_window_reducers_take_a_window_per_cycle_with_their_latency():
    # A producer that never idles and a consumer that never stalls: one window per cycle, each
    # result `latency` cycles after its window: 1 for the maximum, 3 for the average (its sum
    # and product registers, then the rounding and saturation).
    g = dict(kernel=3, stride=1, c=2, bits=8, signed=False)
    fmap = random_map(np.random.default_rng(0), (2, 5, 6, 2), 8, False)
    for latency, edges in (
            (1, check_window_max(g, fmap, 1, 0, idle=0, backpressure=0)),
            (3, check_window_average(g, fmap, 7282, 16, 8, False, 0, idle=0, backpressure=0))):
        assert edges["i"] == list(range(len(edges["i"])))
        assert edges["o"] == [edge + latency for edge in edges["i"]]
    assert (WindowMax.latency, WindowAverage.latency) == (1, 3)


# --- MaxPool and AvgPool: the window source and a reducer -------------------------------------

def check_max_pool(geometry, fmap, seed, **rates):
    h, w, c, bits, kernel, stride, padding, signed = geometry
    dut = MaxPool(WindowGeometry(h, w, c, kernel, stride, padding), bits, signed=signed)
    expected = golden.max_pool(fmap, kernel, stride, padding, pad_value=act_range(bits, signed)[0])
    return dut, run_maps(dut, {"i": fmap}, {"o": expected}, seed=seed, **rates)


POOL_EDGES = {  # h, w, c, bits, kernel, stride, padding, signed
    "c1-k1": (3, 4, 1, 8, 1, 1, 0, False),
    "stride2-odd": (5, 7, 2, 8, 3, 2, 1, True),
    "k=w": (4, 4, 2, 6, 4, 1, 0, False),
    "k=w-padded": (3, 3, 1, 4, 3, 3, 2, True),
    "stride>kernel": (7, 5, 1, 3, 2, 3, 1, False),
}


@pytest.mark.parametrize("geometry", POOL_EDGES.values(), ids=POOL_EDGES.keys())
def test_max_pool_matches_golden(geometry, seeds):
    h, w, c, bits, _, _, _, signed = geometry
    for seed in seeds(1):
        rng = np.random.default_rng(seed)
        fmap = random_map(rng, (3, h, w, c), bits, signed, extremes=0.4)
        check_max_pool(geometry, fmap, seed, idle=rng.uniform(0, 0.5),
                       backpressure=rng.uniform(0, 0.6))


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_max_pool_of_extreme_maps(signed):
    # An all-lowest map ties with the padding; an all-highest one is the largest code.
    lo, hi = act_range(8, signed)
    fmap = np.stack([np.full((5, 5, 2), lo), np.full((5, 5, 2), hi)])
    check_max_pool((5, 5, 2, 8, 3, 2, 1, signed), fmap, 0, idle=0.3, backpressure=0.3)


@pytest.mark.parametrize("geometry", POOL_EDGES.values(), ids=POOL_EDGES.keys())
def test_max_pool_adds_one_cycle_to_the_window_source(geometry):
    # Never idle, never stalled: each pooled pixel leaves exactly one cycle after the window
    # source's cycle-accurate model offers its window; no bubble anywhere else.
    h, w, c, bits, kernel, stride, padding, signed = geometry
    fmap = random_map(np.random.default_rng(0), (2, h, w, c), bits, signed)
    dut, edges = check_max_pool(geometry, fmap, 0, idle=0, backpressure=0)
    pixels, windows = window_schedule(WindowGeometry(h, w, c, kernel, stride, padding), images=2)
    assert edges["i"] == list(pixels)
    assert edges["o"] == list(windows + 1)
    assert dut.latency == dut.source.latency + 1


def test_avg_pool_matches_golden(seeds):
    for seed in seeds(4):
        rng = np.random.default_rng(seed)
        g, fmap = random_window(rng)
        mult, shift = random_rescale(rng, 1 / g["kernel"] ** 2)
        act_bits, act_signed = int(rng.integers(2, 9)), bool(rng.integers(0, 2))
        print(g, "map", fmap.shape, "mult", mult, "shift", shift, "act", act_bits, act_signed)
        _, h, w, c = fmap.shape
        dut = AvgPool(WindowGeometry(h, w, c, g["kernel"], g["stride"]), g["bits"],
                      Requantizer(mult, shift, act_bits, act_signed), signed=g["signed"])
        expected = golden.avg_pool(fmap, g["kernel"], g["stride"], mult, shift,
                                   act_bits=act_bits, signed=act_signed)
        run_maps(dut, {"i": fmap}, {"o": expected}, seed=seed, idle=rng.uniform(0, 0.5),
                 backpressure=rng.uniform(0, 0.6))


# --- GlobalAvgPool ------------------------------------------------------------------------------

def random_global(rng):
    h, w = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    mult, shift = random_rescale(rng, 1 / (h * w))
    return dict(h=h, w=w, c=int(rng.integers(1, 4)), bits=int(rng.integers(2, 9)),
                signed=bool(rng.integers(0, 2)),
                requantizer=Requantizer(mult, shift, int(rng.integers(2, 9)),
                                        bool(rng.integers(0, 2))))


def check_global(params, images, rng, seed, **rates):
    dut = GlobalAvgPool(**params)
    fmap = random_map(rng, (images, dut.h, dut.w, dut.c), dut.bits, dut.signed)
    expected = golden.global_avg_pool(fmap, dut.mult, dut.shift, act_bits=dut.act_bits,
                                      signed=dut.act_signed)
    return run_maps(dut, {"i": fmap}, {"o": expected}, seed=seed, **rates)


def test_global_avg_pool_matches_golden(seeds):
    for seed in seeds(8):
        rng = np.random.default_rng(seed)
        params = random_global(rng)
        print(params)
        check_global(params, 3, rng, seed, idle=rng.uniform(0, 0.5),
                     backpressure=rng.uniform(0, 0.9))


@pytest.mark.parametrize("h, w", [(1, 1), (2, 3)])
def test_global_avg_pool_takes_images_back_to_back(h, w):
    # Every pixel of four images in consecutive cycles; one result a cycle after each image.
    params = dict(h=h, w=w, c=2, bits=8, requantizer=Requantizer(3000, 14, 8))
    edges = check_global(params, 4, np.random.default_rng(0), 0, idle=0, backpressure=0)
    pixels = h * w
    assert edges["i"] == list(range(4 * pixels))
    assert edges["o"] == [pixels * (n + 1) - 1 + GLOBAL_POOL_LATENCY for n in range(4)]


@pytest.mark.parametrize("passes", [2, 4])
def test_global_avg_pool_with_shared_multipliers(passes, seeds):
    # 4 channels, ceil(4 / passes) multipliers: each result `passes - 1` cycles later, still
    # bit-exact under idle cycles and backpressure
    params = dict(h=2, w=3, c=4, bits=8, requantizer=Requantizer(3000, 14, 8), passes=passes)
    edges = check_global(params, 4, np.random.default_rng(0), 0, idle=0, backpressure=0)
    assert edges["i"] == list(range(4 * 6))
    assert edges["o"] == [6 * (n + 1) - 1 + GLOBAL_POOL_LATENCY + passes - 1 for n in range(4)]
    for seed in seeds(3):
        rng = np.random.default_rng(seed)
        check_global(params, 3, rng, seed, idle=rng.uniform(0, 0.5),
                     backpressure=rng.uniform(0, 0.9))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_global_avg_pool_asserts_when_last_is_misplaced():
    layout = VectorLayout(1, 4)
    dut = GlobalAvgPool(1, 2, 1, 4, Requantizer(1, 0, 4))
    with pytest.raises(AssertionError, match="`last` does not mark pixel h\\*w"):
        run_streams(dut, {"i": (dut.i, [layout.pack([1], last=True)] * 2)},
                    {"o": (dut.o, [layout.pack([2], last=True)])}, seed=0, idle=0, backpressure=0)
    gc.collect()  # close the aborted simulation's testbenches under this test's warning filter


# --- constructor checks -------------------------------------------------------------------------

R = Requantizer(1, 0, 8)


@pytest.mark.parametrize("make, message", [
    # (the geometry and the requantizer check their own fields: tests/test_values.py)
    (lambda: WindowMax(0, 1, 8), "kernel: must be a positive integer, not 0"),
    (lambda: WindowMax(2, 1.0, 8), r"c: must be a positive integer, not 1\.0"),
    (lambda: WindowMax(2, 1, True), "bits: must be a positive integer, not True"),
    (lambda: WindowAverage(2, 1, 8, (1, 0, 8)),
     r"requantizer: must be a imcflow\.sw\.arith\.Requantizer, not \(1, 0, 8\)"),
    (lambda: WindowAverage(2, 1, 8, Requantizer([1, 2], 0, 8)),
     r"requantizer\.mult: must be one multiplier, not \(1, 2\)"),
    (lambda: MaxPool(WindowGeometry(4, 4, 1, 3), 0), "bits: must be a positive integer, not 0"),
    (lambda: MaxPool((4, 4, 1, 3), 8), "geometry: must be a imcflow.sw.geometry.WindowGeometry"),
    (lambda: AvgPool(WindowGeometry(4, 4, 1, 3, 1, 1), 8, R),
     "window.padding: average pooling has none, not 1"),
    (lambda: GlobalAvgPool(0, 1, 1, 8, R), "h: must be a positive integer, not 0"),
    (lambda: GlobalAvgPool(1, -2, 1, 8, R), "w: must be a positive integer, not -2"),
    (lambda: GlobalAvgPool(1, 1, 1, "8", R), "bits: must be a positive integer, not '8'"),
])
def test_constructors_check_parameters(make, message):
    with pytest.raises(UserError, match=f"^{message}"):
        make()
