# amaranth: UnusedElaboratable=no
"""CrossbarTile in the Amaranth simulator: constructor checks, bit-exactness with
`imcflow.sw.arith.crossbar_mvm` under random idle cycles and backpressure (both encodings, partial
and full column parallelism, ADC saturation at both ends), reprogramming, latency and interval.

These simulations run the ``fpga`` flavour: the ``sim`` flavour's data path is a Verilog module
(`imcflow.hw.crossbar.MVM_VERILOG`), which the Amaranth simulator cannot run; the same checks for
both flavours, and their handshake-for-handshake equality, are in tests/test_crossbar_cocotb.py.
Here both flavours are checked for identical ports and timing attributes.

`pack` and the random operands here are shared by tests/test_accumulator.py and
tests/test_core.py; the harness is `imcflow.verif.amaranth_sim.run_streams`.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from imcflow.errors import UserError
from imcflow.hw.crossbar import CrossbarTile
from imcflow.hw.streams import VectorLayout
from imcflow.sw.arch import Arch
from imcflow.sw.arith import crossbar_mvm, signed_range, weight_range
from imcflow.verif.amaranth_sim import flat, run_streams, stream_receive, stream_send
from imcflow.verif.scoreboard import Scoreboard


# --- stimulus and golden words shared by the crossbar, accumulator and layer tests -------------

def pack(layout: VectorLayout, vectors, image=None):
    """Words of ``vectors`` (n, lanes); ``last`` on every ``image``-th beat (and the final one)."""
    image = image or len(vectors)
    return [layout.pack(v, last=(n + 1) % image == 0 or n + 1 == len(vectors))
            for n, v in enumerate(vectors)]


def random_weight(rng, shape, weight_bits, extremes=0.2):
    """Signed weights over the whole symmetric range, a fraction of them at its ends."""
    lo, hi = weight_range(weight_bits)
    w = rng.integers(lo, hi + 1, size=shape)
    return np.where(rng.random(shape) < extremes, rng.choice([lo, hi], size=shape), w)


def random_windows(rng, n, rows, act_bits):
    """``n`` input vectors: uniform, sparse, and whole vectors at 0 or at the maximum."""
    top = (1 << act_bits) - 1
    x = rng.integers(0, top + 1, size=(n, rows))
    kind = rng.integers(0, 5, size=n)
    x[kind == 1] *= rng.random((int((kind == 1).sum()), rows)) < 0.3
    x[kind == 2] = top
    x[kind == 3] = 0
    return x


def random_adc_shift(rng, rows, arch):
    """A gain that puts typical dot products near the ADC range: some codes saturate, some don't,
    and rounding matters."""
    x_rms = ((1 << arch.act_bits) - 1) / 2 if arch.input_encoding == "pwm" else 0.5
    spread = np.sqrt(rows) * x_rms * weight_range(arch.weight_bits)[1] / 2
    return max(0, int(np.log2(max(spread, 1))) - arch.adc_bits + 2 + int(rng.integers(-2, 3)))


def mvm(x, weight, adc_shift, arch):
    return crossbar_mvm(x, weight, encoding=arch.input_encoding, act_bits=arch.act_bits,
                        adc_bits=arch.adc_bits, adc_shift=adc_shift)


def check_tile(tile, x, *, seed, image=5, idle=0.3, backpressure=0.3):
    """Send windows ``x`` through ``tile`` and compare every beat with the golden model; returns
    the golden outputs and the handshake edges."""
    i_layout, o_layout = tile.i.payload.shape(), tile.o.payload.shape()
    want = mvm(x, tile.weight, tile.adc_shift, tile.params)
    edges = run_streams(tile, {"i": (tile.i, pack(i_layout, x, image))},
                        {"o": (tile.o, pack(o_layout, want, image))}, seed=seed, idle=idle,
                        backpressure=backpressure)
    return want, edges


# --- constructor checks ------------------------------------------------------------------------

ARCH = Arch(rows=8, cols=4, mvm_cycles=1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(params=Arch()), "params: must be a imcflow.sw.arch.CrossbarParams, not Arch("),
    (dict(weight=np.ones((2, 2)) / 2), "weight: must be an array of integers, not "),
    (dict(weight=[[True]]), "weight: must be an array of integers, not [[True]]"),
    (dict(weight=[1, 2]), "weight: must be a non-empty 2-D array, not one of shape (2,)"),
    (dict(weight=np.zeros((0, 2), int)),
     "weight: must be a non-empty 2-D array, not one of shape (0, 2)"),
    (dict(weight=[[8, -7]]), "weight: must have every element in -7..7, not -7..8"),
    (dict(weight=np.zeros((9, 1), int)), "weight: shape (9, 1) exceeds the 8 x 4 crossbar"),
    (dict(weight=np.zeros((1, 5), int)), "weight: shape (1, 5) exceeds the 8 x 4 crossbar"),
    (dict(adc_shift=-1), "adc_shift: must be a non-negative integer, not -1"),
    (dict(adc_shift=1.0), "adc_shift: must be a non-negative integer, not 1.0"),
    (dict(target="asic"), "target: must be one of 'sim', 'fpga', not 'asic'"),
])
def test_constructor_checks(kwargs, message):
    args = dict(weight=np.zeros((3, 2), int), adc_shift=0, params=ARCH.crossbar) | kwargs
    with pytest.raises(UserError) as info:
        CrossbarTile(args.pop("weight"), **args)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("target", ["sim", "fpga"])
@pytest.mark.parametrize("rows, cols, arch, interval, latency, out_bits", [
    # pwm, no col_parallelism: the fewest columns per cycle that finish within mvm_cycles
    # (Arch.columns_per_cycle): all 4 at once for 1 cycle, one per cycle (4 steps) for 5
    (8, 4, Arch(rows=8, cols=4, mvm_cycles=1), 1, 4, 8),
    (8, 4, Arch(rows=8, cols=4, mvm_cycles=5), 5, 7, 8),
    # two columns per cycle: ceil(3 / 2) = 2 steps
    (5, 3, Arch(rows=8, cols=4, mvm_cycles=1, col_parallelism=2), 2, 5, 8),
    # parallelism beyond the used columns is all columns at once
    (5, 3, Arch(rows=8, cols=8, mvm_cycles=1, col_parallelism=6), 1, 4, 8),
    # bit_serial: act_bits planes per group, output adc_bits + act_bits wide
    (4, 6, Arch(rows=8, cols=8, input_encoding="bit_serial", act_bits=4, adc_bits=5,
                mvm_cycles=4, col_parallelism=4), 8, 11, 9),
    # ... and 4 planes x ceil(6 / 2) groups = 12 steps within 20 cycles
    (4, 6, Arch(rows=8, cols=8, input_encoding="bit_serial", act_bits=4, adc_bits=5,
                mvm_cycles=20), 20, 15, 9),
    # adder-tree pipeline registers: one cycle of latency each, the same interval
    (8, 4, Arch(rows=8, cols=4, mvm_cycles=5, mac_stages=3), 5, 10, 8),
    # row folds: 2 groups x 3 folds = 6 steps
    (8, 4, Arch(rows=8, cols=4, mvm_cycles=1, col_parallelism=2, row_folds=3), 6, 9, 8),
])
def test_geometry_and_timing_attributes(rows, cols, arch, interval, latency, out_bits, target):
    # Both flavours: the same ports, steps and timing.
    tile = CrossbarTile(np.zeros((rows, cols), int), adc_shift=0, params=arch.crossbar,
                        target=target)
    assert tile.target == target
    assert (tile.interval, tile.latency, tile.out_bits) == (interval, latency, out_bits)
    assert tile.interval == arch.mvm_interval(cols)
    assert tile.i.payload.shape() == VectorLayout(rows, arch.act_bits)
    assert tile.o.payload.shape() == VectorLayout(cols, out_bits, signed_=True)
    other = CrossbarTile(np.zeros((rows, cols), int), adc_shift=0, params=arch.crossbar,
                         target={"sim": "fpga", "fpga": "sim"}[target])
    assert tile.signature == other.signature
    assert (tile.steps, tile.latency, tile.interval) == (other.steps, other.latency, other.interval)


def test_sim_flavour_refuses_the_amaranth_simulator():
    # The sim flavour's arithmetic is a Verilog module; the Amaranth simulator would leave its
    # output at 0, so the first MVM fails an assertion that says so instead of computing zeros.
    tile = CrossbarTile(np.ones((3, 2), int), adc_shift=0, params=ARCH.crossbar, target="sim")
    x = np.ones((2, 3), int)
    with pytest.raises(AssertionError, match=r"target='sim'\) runs in Verilog simulators only"):
        check_tile(tile, x, seed=0, idle=None, backpressure=None)


# --- bit-exactness under idle cycles and backpressure --------------------------------------------

GEOMETRIES = [
    # rows, cols, arch
    pytest.param(6, 3, Arch(rows=8, cols=4, mvm_cycles=1), id="pwm-full-p-interval1"),
    pytest.param(7, 5, Arch(rows=8, cols=8, mvm_cycles=3, col_parallelism=2), id="pwm-p2-partial"),
    pytest.param(5, 4, Arch(rows=8, cols=4, mvm_cycles=1, col_parallelism=1), id="pwm-p1"),
    pytest.param(1, 1, Arch(rows=1, cols=1, mvm_cycles=1, act_bits=3, adc_bits=2),
                 id="pwm-1x1"),
    pytest.param(9, 5, Arch(rows=16, cols=8, input_encoding="bit_serial", act_bits=4,
                            adc_bits=4, mvm_cycles=4), id="bs-full-p"),
    pytest.param(6, 5, Arch(rows=8, cols=8, input_encoding="bit_serial", act_bits=3,
                            adc_bits=3, mvm_cycles=3, col_parallelism=2), id="bs-p2-partial"),
    pytest.param(4, 1, Arch(rows=4, cols=2, input_encoding="bit_serial", act_bits=2,
                            adc_bits=6, mvm_cycles=5), id="bs-1col-slow"),
    pytest.param(13, 5, Arch(rows=16, cols=8, mvm_cycles=2, col_parallelism=3, mac_stages=2),
                 id="pwm-p3-mac2"),
    pytest.param(1, 2, Arch(rows=4, cols=2, mvm_cycles=1, mac_stages=3), id="pwm-1row-mac3"),
    pytest.param(7, 3, Arch(rows=8, cols=4, input_encoding="bit_serial", act_bits=3,
                            adc_bits=4, mvm_cycles=3, mac_stages=5), id="bs-mac5"),
    # row folds: 7 rows in 3 folds of 3 (the last padded), 9 in 4 of 3 (the last empty), 2 in 3 of 1
    pytest.param(7, 5, Arch(rows=8, cols=8, mvm_cycles=1, col_parallelism=2, row_folds=3,
                            mac_stages=2), id="pwm-p2-fold3-mac2"),
    pytest.param(9, 5, Arch(rows=16, cols=8, input_encoding="bit_serial", act_bits=3,
                            adc_bits=4, mvm_cycles=3, col_parallelism=2, row_folds=4,
                            mac_stages=1), id="bs-p2-fold4-mac1"),
    pytest.param(2, 3, Arch(rows=4, cols=4, mvm_cycles=1, row_folds=3), id="pwm-fold3-2rows"),
]


@pytest.mark.parametrize("rows, cols, arch", GEOMETRIES)
def test_matches_crossbar_mvm(rows, cols, arch, seeds):
    # Every output beat equals the golden model's, in order, none lost or duplicated, with `last`
    # carried through, while the producer idles and the consumer stalls at random.
    for seed in seeds(2):
        rng = np.random.default_rng(seed)
        weight = random_weight(rng, (rows, cols), arch.weight_bits)
        tile = CrossbarTile(weight, adc_shift=random_adc_shift(rng, rows, arch),
                            params=arch.crossbar)
        check_tile(tile, random_windows(rng, 24, rows, arch.act_bits), seed=seed,
                   idle=rng.uniform(0, 0.6), backpressure=rng.uniform(0, 0.6))


@pytest.mark.parametrize("encoding", ["pwm", "bit_serial"])
@pytest.mark.parametrize("sign", [1, -1], ids=["max", "min"])
def test_adc_saturates_at_both_ends(encoding, sign, seeds):
    # All weights at one end of their range and all inputs at the maximum drive every dot
    # product past the ADC range: each code must clip to that end, not wrap.
    arch = Arch(rows=16, cols=4, act_bits=6, adc_bits=5, input_encoding=encoding, mvm_cycles=6,
                col_parallelism=3)
    weight = np.full((16, 4), sign * weight_range(arch.weight_bits)[1])
    tile = CrossbarTile(weight, adc_shift=1, params=arch.crossbar)
    rng = np.random.default_rng(seeds(1)[0])
    x = np.concatenate([np.full((4, 16), 63), random_windows(rng, 8, 16, 6)])
    want, _ = check_tile(tile, x, seed=int(rng.integers(1 << 31)))
    end = signed_range(arch.adc_bits)[sign > 0]
    assert (want[:4] == end * ((1 << 6) - 1 if encoding == "bit_serial" else 1)).all()


# --- reprogramming ----------------------------------------------------------------------------

@pytest.mark.parametrize("arch", [
    Arch(rows=8, cols=4, mvm_cycles=1),
    Arch(rows=8, cols=4, mvm_cycles=2, col_parallelism=2),
    Arch(rows=8, cols=4, input_encoding="bit_serial", act_bits=3, adc_bits=6, mvm_cycles=3,
         col_parallelism=1),
    Arch(rows=8, cols=4, mvm_cycles=2, col_parallelism=2, row_folds=2, mac_stages=1),
    Arch(rows=8, cols=4, input_encoding="bit_serial", act_bits=3, adc_bits=6, mvm_cycles=3,
         col_parallelism=1, row_folds=3),
], ids=["pwm-full-p", "pwm-p2", "bs-p1", "pwm-p2-fold2", "bs-p1-fold3"])
def test_reprogram_then_compute(arch, seeds):
    # Windows A with the initial image, then column writes (random order, some columns twice, one
    # out of range, which is ignored), then windows B: A must see only the old image and B only
    # the new one, although the writes are offered while A's last MVM still reads the weights.
    for seed in seeds(2):
        rng = np.random.default_rng(seed)
        rows, cols = 5, 3
        old = random_weight(rng, (rows, cols), arch.weight_bits)
        new = old.copy()
        tile = CrossbarTile(old, adc_shift=1, params=arch.crossbar)
        w_layout = tile.i_weight.payload.shape()
        writes = []
        for col in [*rng.permutation(cols), int(rng.integers(cols)), cols]:
            column = random_weight(rng, rows, arch.weight_bits)
            if col < cols:
                new[:, col] = column
            writes.append(w_layout.const({"col": int(col), "data": column.tolist()}).as_value().value)
        a, b = (random_windows(rng, 6, rows, arch.act_bits) for _ in range(2))
        i_layout, o_layout = tile.i.payload.shape(), tile.o.payload.shape()
        a_words, b_words = pack(i_layout, a), pack(i_layout, b)
        w_edges, a_edges = [], []
        received = []

        async def producer(ctx):
            i, w = flat(tile.i), flat(tile.i_weight)
            await stream_send(ctx, i, a_words, idle=0.3, rng=random.Random(seed))
            for word in writes:
                ctx.set(w.valid, 1)
                ctx.set(w.payload, word)
                # a pending write holds off the next input
                assert not ctx.get(tile.i.ready)
                await ctx.tick().until(w.ready)
                ctx.set(w.valid, 0)
            await stream_send(ctx, i, b_words, idle=0.3, rng=random.Random(seed + 1))

        async def consumer(ctx):
            received.extend(await stream_receive(ctx, flat(tile.o), 12, backpressure=0.3,
                                                 rng=random.Random(seed + 2)))

        async def monitor(ctx):
            cycle = 0
            async for _, _, wv, wr, iv, ir in ctx.tick().sample(
                    tile.i_weight.valid, tile.i_weight.ready, tile.i.valid, tile.i.ready):
                if wv and wr:
                    w_edges.append(cycle)
                if iv and ir:
                    a_edges.append(cycle)
                cycle += 1
                assert cycle < 20_000, "not done (stall?)"

        sim = Simulator(tile)
        sim.add_clock(1e-6)
        sim.add_testbench(producer)
        sim.add_testbench(consumer)
        sim.add_testbench(monitor, background=True)
        sim.run()
        expected = pack(o_layout, mvm(a, old, 1, arch)) + pack(o_layout, mvm(b, new, 1, arch))
        Scoreboard.check(expected, received, name="tile.o", fmt=lambda w: repr(o_layout.unpack(w)))
        # the first write waited until the last MVM of A had issued all its steps
        assert w_edges[0] >= a_edges[len(a) - 1] + tile.steps


# --- latency and interval ---------------------------------------------------------------------

@pytest.mark.parametrize("arch, cols", [
    (Arch(rows=8, cols=4, mvm_cycles=1), 4),
    (Arch(rows=8, cols=4, mvm_cycles=4), 4),
    (Arch(rows=8, cols=8, mvm_cycles=1, col_parallelism=2), 5),
    (Arch(rows=8, cols=8, mvm_cycles=8, col_parallelism=2), 5),
    (Arch(rows=8, cols=8, input_encoding="bit_serial", act_bits=4, mvm_cycles=4,
          col_parallelism=2), 3),
    (Arch(rows=8, cols=8, input_encoding="bit_serial", act_bits=4, mvm_cycles=9), 3),
    (Arch(rows=8, cols=4, mvm_cycles=1, mac_stages=2), 4),
    (Arch(rows=8, cols=8, input_encoding="bit_serial", act_bits=4, mvm_cycles=4,
          col_parallelism=2, mac_stages=4), 3),
    (Arch(rows=8, cols=8, mvm_cycles=1, col_parallelism=2, row_folds=4, mac_stages=1), 5),
    (Arch(rows=8, cols=8, input_encoding="bit_serial", act_bits=4, mvm_cycles=4,
          col_parallelism=2, row_folds=2), 3),
], ids=["pwm-1", "pwm-analog4", "pwm-p2", "pwm-p2-analog8", "bs-p2", "bs-analog9", "pwm-1-mac2",
        "bs-p2-mac4", "pwm-p2-fold4-mac1", "bs-p2-fold2"])
def test_latency_and_interval(arch, cols):
    # A producer that never idles and a consumer that never stalls: inputs are taken exactly
    # every `interval` cycles, each result is valid `latency` cycles after its input, and the
    # outputs follow each other every `interval` cycles (no bubbles).
    n, rows = 12, 6
    rng = np.random.default_rng(0)
    tile = CrossbarTile(random_weight(rng, (rows, cols), arch.weight_bits), adc_shift=2,
                        params=arch.crossbar)
    x = random_windows(rng, n, rows, arch.act_bits)
    _, edges = check_tile(tile, x, seed=0, idle=None, backpressure=None)
    assert np.diff(edges["i"]).tolist() == [tile.interval] * (n - 1)
    assert (np.array(edges["o"]) - edges["i"]).tolist() == [tile.latency] * n
