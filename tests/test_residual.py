# amaranth: UnusedElaboratable=no
"""Amaranth-simulator unit tests of the residual blocks (`imcflow.hw.residual`): Fork, SkipFifo
and Join against `imcflow.sw.golden.join`, under seeded random idle cycles and backpressure.

`run_maps` (maps on `VectorLayout` ports through `imcflow.verif.amaranth_sim.run_streams`) and
the random generators here are shared with tests/test_pool.py and tests/test_gen_accelerator.py.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.pool import MaxPool
from imcflow.hw.residual import Fork, Join, SkipFifo
from imcflow.hw.streams import VectorLayout, vector_stream
from imcflow.sw import golden
from imcflow.errors import UserError
from imcflow.sw.arith import Requantizer, act_range
from imcflow.sw.geometry import WindowGeometry
from imcflow.verif.amaranth_sim import run_streams


def beats(port, maps):
    """Payload words of a batch of maps ``(N, ..., lanes)`` for stream ``port`` (its payload is a
    `VectorLayout`): one beat per pixel or window, ``last`` on each map's last."""
    layout = port.p.shape()
    maps = np.asarray(maps).reshape(len(maps), -1, layout.lanes)
    return [layout.pack(v, last=j == maps.shape[1] - 1) for m in maps for j, v in enumerate(m)]


def run_maps(dut, inputs, outputs, *, seed, **rates):
    """`~imcflow.verif.amaranth_sim.run_streams` with batches of maps (``{port name: array}``)
    on the dut's `VectorLayout` ports of those names."""
    def words(maps):
        return {n: (getattr(dut, n), beats(getattr(dut, n), a)) for n, a in maps.items()}
    return run_streams(dut, words(inputs), words(outputs), seed=seed, **rates)


def random_map(rng, shape, bits, signed, extremes=0.2):
    """Random lanes over the full range, a fraction ``extremes`` of them at the range ends."""
    lo, hi = act_range(bits, signed)
    x = rng.integers(lo, hi + 1, size=shape)
    return np.where(rng.random(shape) < extremes, rng.choice([lo, hi], size=shape), x)


def random_rescale(rng, scale=1.0, shift=None):
    """``(mult, shift)`` with ``mult / 2**shift`` a quarter to four times ``scale`` (so some outputs
    saturate) and ``mult >= 1``; half of the drawn shifts are 1..3, where rounding ties abound."""
    if shift is None:
        shift = int(rng.integers(1, 4) if rng.random() < 0.5 else rng.integers(0, 24))
    return min(max(1, round(scale * 2 ** shift * rng.uniform(0.25, 4))), (1 << 16) - 1), shift


# --- Fork ---------------------------------------------------------------------------------------

def test_fork_delivers_every_beat_once_to_each_output(seeds):
    for seed in seeds(6):
        rng = np.random.default_rng(seed)
        layout = VectorLayout(int(rng.integers(1, 4)), 6)
        words = [int(w) for w in rng.integers(0, 1 << layout.size, size=200)]
        # Each output has its own backpressure pattern; both must see every beat, in order.
        dut = Fork(layout)
        run_streams(dut, {"i": (dut.i, words)},
                    {"o_main": (dut.o_main, words), "o_skip": (dut.o_skip, words)}, seed=seed,
                    idle=rng.uniform(0, 0.5), backpressure=rng.uniform(0, 0.7))


def test_fork_passes_one_beat_per_cycle_without_latency():
    words, dut = list(range(50)), Fork(unsigned(8))
    edges = run_streams(dut, {"i": (dut.i, words)},
                        {"o_main": (dut.o_main, words), "o_skip": (dut.o_skip, words)},
                        seed=0, idle=0, backpressure=0)
    assert edges["i"] == edges["o_main"] == edges["o_skip"] == list(range(50))
    assert Fork.latency == 0 and Fork.interval == 1


# --- Join ---------------------------------------------------------------------------------------

def random_join(rng):
    """Random Join parameters: channels, input shapes, multipliers, shift, output range."""
    a_signed, b_signed, act_signed = (bool(s) for s in rng.integers(0, 2, size=3))
    a_bits, b_bits = (int(rng.integers(2, 9)) for _ in "ab")
    mult_a, shift = random_rescale(rng)
    mult_b, _ = random_rescale(rng, shift=shift)
    return dict(c=int(rng.integers(1, 5)),
                a_shape=signed(a_bits) if a_signed else unsigned(a_bits),
                b_shape=signed(b_bits) if b_signed else unsigned(b_bits),
                requantizer=Requantizer((mult_a, mult_b), shift, int(rng.integers(2, 9)),
                                        act_signed))


def check_join(params, shape, rng, seed, **rates):
    dut = Join(**params)
    a = random_map(rng, (*shape, dut.c), dut.a_shape.width, dut.a_shape.signed)
    b = random_map(rng, (*shape, dut.c), dut.b_shape.width, dut.b_shape.signed)
    expected = golden.join(a, b, dut.mult_a, dut.mult_b, dut.shift, act_bits=dut.act_bits,
                           signed=dut.act_signed)
    return run_maps(dut, {"i_a": a, "i_b": b}, {"o": expected}, seed=seed, **rates)


def test_join_matches_golden(seeds):
    # half the seeds share the multipliers over 1..c passes (`Arch.requant_lanes`)
    for k, seed in enumerate(seeds(8)):
        rng = np.random.default_rng(seed)
        params = random_join(rng)
        if k % 2:
            params["passes"] = int(rng.integers(1, params["c"] + 1))
        print(params)
        check_join(params, (2, int(rng.integers(1, 5)), int(rng.integers(1, 5))), rng, seed,
                   idle=rng.uniform(0, 0.5), backpressure=rng.uniform(0, 0.6))


def test_join_consumes_a_pair_per_cycle_with_latency_three():
    params = dict(c=2, a_shape=unsigned(8), b_shape=signed(8),
                  requantizer=Requantizer((3, 700), 7, 8, True))
    edges = check_join(params, (3, 3, 4), np.random.default_rng(1), 1, idle=0, backpressure=0)
    assert edges["i_a"] == edges["i_b"] == list(range(36))
    assert edges["o"] == [edge + 3 for edge in edges["i_a"]]
    assert Join(**params).latency == 3


@pytest.mark.parametrize("passes", [1, 2, 4])
def test_join_rounds_half_up_at_the_boundary(passes):
    # pairs whose sum a * mult_a + b * mult_b lies exactly on or next to a rounding boundary
    # (dropped bits 0b0111..., 0b1000...): with several passes the rounding constant is added
    # to the products of i_b, so a constant off by one shows here
    mult_a, mult_b, shift = 37, 101, 6
    a_range, b_range = range(0, 256), range(-128, 128)
    half, mask = 1 << (shift - 1), (1 << shift) - 1
    pairs = [(x, y) for x in a_range[::3] for y in b_range
             if (x * mult_a + y * mult_b) & mask in (half - 1, half)]
    rng = np.random.default_rng(passes)
    chosen = np.array(pairs)[rng.choice(len(pairs), 4 * 3 * 4, replace=False)]
    a, b = chosen[:, 0].reshape(4, 3, 4), chosen[:, 1].reshape(4, 3, 4)
    params = dict(c=4, a_shape=unsigned(8), b_shape=signed(8),
                  requantizer=Requantizer((mult_a, mult_b), shift, 8, True), passes=passes)
    expected = golden.join(a, b, mult_a, mult_b, shift, act_bits=8, signed=True)
    run_maps(Join(**params), {"i_a": a.reshape(1, 4, 3, 4), "i_b": b.reshape(1, 4, 3, 4)},
             {"o": expected.reshape(1, 4, 3, 4)}, seed=passes, idle=0.2, backpressure=0.3)


@pytest.mark.parametrize("passes", [2, 3])
def test_join_with_shared_multipliers_takes_a_pair_per_passes_cycles(passes):
    # 3 channels, ceil(3 / passes) multiplier pairs: a pair is taken into the input registers
    # every `passes` cycles (the next one in the last pass of the one before), its output valid
    # `passes` + 3 cycles later
    params = dict(c=3, a_shape=unsigned(8), b_shape=signed(8),
                  requantizer=Requantizer((3, 700), 7, 8, True), passes=passes)
    edges = check_join(params, (2, 3, 2), np.random.default_rng(2), 2, idle=0, backpressure=0)
    assert edges["i_a"] == edges["i_b"] == list(range(0, 12 * passes, passes))
    assert edges["o"] == [edge + passes + 3 for edge in edges["i_a"]]
    assert (Join(**params).lanes, Join(**params).latency) == (-(-3 // passes), passes + 3)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_join_asserts_when_last_disagrees():
    layout = VectorLayout(1, 4)
    dut = Join(1, unsigned(4), unsigned(4), Requantizer((1, 1), 0, 4))
    with pytest.raises(AssertionError, match="`last` of i_a and i_b disagree"):
        run_streams(dut, {"i_a": (dut.i_a, [layout.pack([1], last=True)]),
                          "i_b": (dut.i_b, [layout.pack([2])])},
                    {"o": (dut.o, [layout.pack([3], last=True)])}, seed=0, idle=0, backpressure=0)
    gc.collect()  # close the aborted simulation's testbenches under this test's warning filter


@pytest.mark.parametrize("kwargs, error, message", [
    # (the requantizer checks its own fields: tests/test_values.py)
    (dict(c=0), UserError, "c: must be a positive integer, not 0"),
    (dict(requantizer=Requantizer(1, 0, 8)), UserError,
     r"requantizer\.mult: must be 2 multipliers, not 1"),
    (dict(requantizer=None), UserError,
     r"requantizer: must be a imcflow\.sw\.arith\.Requantizer, not None"),
    (dict(a_shape="x"), TypeError, "Object 'x' cannot be converted to an Amaranth shape"),
])
def test_join_checks_parameters(kwargs, error, message):
    params = dict(c=2, a_shape=unsigned(8), b_shape=unsigned(8),
                  requantizer=Requantizer((1, 1), 0, 8)) | kwargs
    with pytest.raises(error, match=message):
        Join(**params)


# --- SkipFifo -----------------------------------------------------------------------------------

def test_skip_fifo_is_a_pipeline_fifo(seeds):
    for seed in seeds(2):
        rng = np.random.default_rng(seed)
        layout = VectorLayout(2, 5)
        words = [int(w) for w in rng.integers(0, 1 << layout.size, size=300)]
        fifo = SkipFifo(layout, int(rng.integers(1, 9)))
        edges = run_streams(fifo, {"i": (fifo.i, words)}, {"o": (fifo.o, words)}, seed=seed,
                            idle=0.3, backpressure=0.5)
        assert all(o >= i + fifo.latency for i, o in zip(edges["i"], edges["o"]))


@pytest.mark.parametrize("depth", [0, 2.5])
def test_skip_fifo_checks_its_depth(depth):
    with pytest.raises(UserError, match=f"^depth: must be a positive integer, not {depth!r}$"):
        SkipFifo(VectorLayout(2, 5), depth)


# --- a whole residual block: Fork, a max-pool main path, SkipFifo, Join ----------------------------

class Residual(wiring.Component):
    """A residual block for the tests: Fork, a 3x3 same-size max pool as the main path, a
    SkipFifo of ``depth`` beats on the skip path (default: the full-rate depth, `skip_depth`
    plus the main path's latency plus one), and a Join adding both."""

    def __init__(self, h, w, c, bits, depth=None):
        self.fork = Fork(VectorLayout(c, bits))
        self.main = MaxPool(WindowGeometry(h, w, c, 3, 1, 1), bits)
        if depth is None:
            depth = skip_depth(h, w) + self.main.latency + 1
        self.skip = SkipFifo(VectorLayout(c, bits), depth)
        self.join = Join(c, unsigned(bits), unsigned(bits), Requantizer((1, 1), 1, bits))
        super().__init__({"i": In(vector_stream(c, bits)), "o": Out(vector_stream(c, bits))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fork, m.submodules.main = self.fork, self.main
        m.submodules.skip, m.submodules.join = self.skip, self.join
        wiring.connect(m, wiring.flipped(self.i), self.fork.i)
        wiring.connect(m, self.fork.o_main, self.main.i)
        wiring.connect(m, self.fork.o_skip, self.skip.i)
        wiring.connect(m, self.main.o, self.join.i_a)
        wiring.connect(m, self.skip.o, self.join.i_b)
        wiring.connect(m, self.join.o, wiring.flipped(self.o))
        return m


def skip_depth(h, w):
    """The fewest skip FIFO beats with which the residual block cannot deadlock.

    The main path emits pixel ``j`` once pixel ``last[j]`` (the last its window needs) has
    entered it, and the join consumes the skip path's pixel ``j`` only then. Meanwhile pixels
    ``j .. last[j]`` have passed the fork: ``last[j] - j`` wait in the FIFO and one in the fork,
    offered to the full FIFO after the main path took it.
    """
    _, last = golden.window_input_range(h, w, 3, 1, 1)
    return int((last - np.arange(h * w)).max())


def residual_case(h, w, seed):
    rng = np.random.default_rng(seed)
    fmap = random_map(rng, (3, h, w, 2), 6, False)
    expected = golden.join(golden.max_pool(fmap, 3, 1, 1), fmap, 1, 1, 1, act_bits=6, signed=False)
    return fmap, expected


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("h, w", [(4, 5), (3, 3), (6, 4)])
def test_residual_block_needs_the_skip_depth_and_deadlocks_with_one_less(h, w, seeds):
    # With `skip_depth` beats the block matches the golden model under random traffic; with one
    # less, the fork waits for the FIFO, the FIFO for the join and the join for the main path,
    # which waits for the fork: nothing moves, and the test sees the stall.
    depth = skip_depth(h, w)
    for seed in seeds(1):
        fmap, expected = residual_case(h, w, seed)
        run_maps(Residual(h, w, 2, 6, depth), {"i": fmap}, {"o": expected}, seed=seed)
        with pytest.raises(AssertionError, match="stalled"):
            run_maps(Residual(h, w, 2, 6, depth - 1), {"i": fmap}, {"o": expected}, seed=seed,
                     max_cycles=1000)
        gc.collect()  # close the stalled simulation's testbenches under the warning filter


@pytest.mark.parametrize("h, w", [(4, 5), (5, 8)])
def test_residual_block_runs_at_full_rate_with_the_main_path_latency_more(h, w):
    # A pixel per cycle in, back to back over three images, needs room for the pixels that
    # arrive while the main path computes: `skip_depth + main.latency + 1`. One less costs cycles.
    fmap, expected = residual_case(h, w, 0)
    full = Residual(h, w, 2, 6)
    edges = run_maps(full, {"i": fmap}, {"o": expected}, seed=0, idle=0, backpressure=0)
    assert edges["i"] == list(range(3 * h * w))
    edges = run_maps(Residual(h, w, 2, 6, full.skip.depth - 1), {"i": fmap}, {"o": expected},
                     seed=0, idle=0, backpressure=0)
    assert edges["i"][-1] > 3 * h * w - 1
