# amaranth: UnusedElaboratable=no
"""AdcAccumulator in the Amaranth simulator: constructor checks, accumulator widths,
bit-exactness with `imcflow.sw.arith.requantize` of the row tiles' sum plus bias (each input with
its own idle cycles, backpressure on the output, saturation at both ends), the `last` check,
latency and interval."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from imcflow.hw.accumulator import AdcAccumulator
from imcflow.hw.crossbar import tile_output_range
from imcflow.sw.arch import Arch
from imcflow.sw.arith import MULT_BITS, act_range, requantize
from imcflow.verif.amaranth_sim import run_streams

from test_crossbar import pack

PWM = Arch(act_bits=8, adc_bits=8)
BIT_SERIAL = Arch(act_bits=4, adc_bits=6, input_encoding="bit_serial")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(arch=None), TypeError, "Arch must be an imcflow.sw.arch.Arch, not None"),
    (dict(bias=[1.5, 2]), TypeError, "Bias must be an array of integers, not [1.5, 2]"),
    (dict(bias=5), ValueError, "Bias must be a non-empty 1-D array, not one of shape ()"),
    (dict(mult=[1, 1 << 16]), ValueError, "Mult must have every element in 0..65535, not 1..65536"),
    (dict(mult=[-1, 3]), ValueError, "Mult must have every element in 0..65535, not -1..3"),
    (dict(mult=[1, 2, 3]), ValueError, "Mult must have one element per column (2), not 3"),
    (dict(shift=48), ValueError, "Shift must be an integer in 0..47, not 48"),
    (dict(shift="3"), TypeError, "Shift must be an integer in 0..47, not '3'"),
    (dict(row_tiles=0), ValueError, "Row tiles must be a positive integer, not 0"),
    (dict(signed=1), TypeError, "Signed must be a bool, not 1"),
])
def test_constructor_checks(kwargs, error, message):
    args = dict(bias=[0, 0], mult=[1, 1], shift=0, row_tiles=1, signed=False, arch=PWM) | kwargs
    with pytest.raises(error) as info:
        AdcAccumulator(args.pop("bias"), args.pop("mult"), args.pop("shift"), **args)
    assert str(info.value) == message


@pytest.mark.parametrize("arch, row_tiles, bias, in_bits, acc_range", [
    # T codes of [-128, 127] plus a bias in [-5, 7]
    (PWM, 3, [-5, 7], 8, (-3 * 128 - 5, 3 * 127 + 7)),
    # bit_serial tiles deliver codes of [-32, 31] shift-added over 4 planes: times 15
    (BIT_SERIAL, 2, [1000, 0], 10, (-2 * 32 * 15, 2 * 31 * 15 + 1000)),
])
def test_widths_follow_the_value_ranges(arch, row_tiles, bias, in_bits, acc_range):
    acc = AdcAccumulator(bias, [1] * len(bias), 0, row_tiles=row_tiles, signed=True, arch=arch)
    assert acc.in_bits == in_bits
    assert acc.acc_shape == Shape.cast(range(acc_range[0], acc_range[1] + 1))
    assert len(acc.i) == row_tiles
    assert (acc.latency, acc.interval) == (3, 1)


def requantized(parts, bias, mult, shift, arch, signed):
    return requantize(parts.sum(axis=0) + bias, mult, shift, act_bits=arch.act_bits, signed=signed)


def random_parts(rng, n, row_tiles, cols, arch):
    """Row-tile outputs (row_tiles, n, cols) over their whole range, some at its ends."""
    lo, hi = tile_output_range(arch)
    parts = rng.integers(lo, hi + 1, size=(row_tiles, n, cols))
    ends = rng.random(parts.shape) < 0.15
    return np.where(ends, rng.choice([lo, hi], size=parts.shape), parts)


def check_accumulator(acc, parts, *, seed, image=4, idle=0.3, backpressure=0.3):
    """Send row-tile outputs ``parts`` through ``acc`` and compare every output beat with the
    golden requantization; returns it and the handshake edges."""
    in_layout, o_layout = acc.i[0].payload.shape(), acc.o.payload.shape()
    want = requantized(parts, acc.bias, acc.mult, acc.shift, acc.arch, acc.signed)
    sources = {f"i{t}": (acc.i[t], pack(in_layout, parts[t], image))
               for t in range(acc.row_tiles)}
    edges = run_streams(acc, sources, {"o": (acc.o, pack(o_layout, want, image))}, seed=seed,
                        idle=idle, backpressure=backpressure)
    return want, edges


@pytest.mark.parametrize("arch", [PWM, BIT_SERIAL], ids=["pwm", "bit_serial"])
@pytest.mark.parametrize("signed", [False, True], ids=["relu", "signed"])
def test_matches_requantize(arch, signed, seeds):
    # Random row-tile counts, biases, multipliers and shifts; every input stream idles on its own,
    # the output stalls: every beat must equal the golden requantization, in order.
    for seed in seeds(3):
        rng = np.random.default_rng(seed)
        row_tiles, cols = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        shift = int(rng.integers(0, 4) if rng.random() < 0.3 else rng.integers(4, 20))
        mult = rng.integers(0, 1 << min(MULT_BITS, shift + int(rng.integers(1, 12))), size=cols)
        bias = rng.integers(-3000, 3000, size=cols)
        acc = AdcAccumulator(bias, mult, shift, row_tiles=row_tiles, signed=signed, arch=arch)
        check_accumulator(acc, random_parts(rng, 30, row_tiles, cols, arch), seed=seed,
                          idle=rng.uniform(0, 0.6), backpressure=rng.uniform(0, 0.6))


@pytest.mark.parametrize("signed", [False, True], ids=["relu", "signed"])
def test_saturates_at_both_ends_without_wrapping(signed, seeds):
    # Extreme sums times the largest multiplier with no shift: far outside the activation range
    # on both sides; the widest intermediate (acc * mult) must not wrap.
    arch, row_tiles = BIT_SERIAL, 4
    lo, hi = tile_output_range(arch)
    bias = np.array([-(1 << 20), 1 << 20, 0])
    acc = AdcAccumulator(bias, [(1 << MULT_BITS) - 1] * 3, 0, row_tiles=row_tiles, signed=signed,
                         arch=arch)
    parts = np.stack([np.full((2, 3), lo), np.full((2, 3), hi)], axis=1)
    parts = np.broadcast_to(parts.reshape(1, 4, 3), (row_tiles, 4, 3)).copy()
    want, _ = check_accumulator(acc, parts, seed=seeds(1)[0])
    a_lo, a_hi = act_range(arch.act_bits, signed)
    assert want[0:2, 0].tolist() == [a_lo] * 2 and want[2:4, 1].tolist() == [a_hi] * 2


def test_last_must_agree():
    acc = AdcAccumulator([0], [1], 0, row_tiles=2, signed=False, arch=PWM)

    async def bench(ctx):
        for t, last in enumerate([0, 1]):
            ctx.set(acc.i[t].valid, 1)
            ctx.set(acc.i[t].payload.last, last)
        await ctx.tick()

    sim = Simulator(acc)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    with pytest.raises(AssertionError, match="`last` of the row tiles disagree"):
        sim.run()


def test_latency_and_interval():
    # Inputs every cycle, output always ready: one output per cycle, `latency` after its inputs.
    rng, n = np.random.default_rng(1), 16
    acc = AdcAccumulator([3, -2], [40000, 7], 9, row_tiles=3, signed=False, arch=PWM)
    parts = random_parts(rng, n, 3, 2, PWM)
    _, edges = check_accumulator(acc, parts, seed=0, idle=None, backpressure=None)
    assert edges["i0"] == edges["i1"] == edges["i2"] == list(range(n))
    assert edges["o"] == [e + acc.latency for e in edges["i0"]]
