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

from imcflow.errors import UserError
from imcflow.hw.accumulator import AdcAccumulator
from imcflow.sw.arch import Arch
from imcflow.sw.arith import MULT_BITS, Requantizer, act_range, requantize
from imcflow.verif.amaranth_sim import run_streams

from test_crossbar import pack

PWM = Arch(act_bits=8, adc_bits=8)
BIT_SERIAL = Arch(act_bits=4, adc_bits=6, input_encoding="bit_serial")


@pytest.mark.parametrize("kwargs, message", [
    # (the requantizer checks its own fields: tests/test_values.py)
    (dict(params=PWM), "params: must be a imcflow.sw.arch.CrossbarParams, not Arch("),
    (dict(bias=[1.5, 2]), "bias: must be an array of integers, not [1.5, 2]"),
    (dict(bias=5), "bias: must be a non-empty 1-D array, not one of shape ()"),
    (dict(requantizer=Requantizer([1, 2, 3], 0, 8)),
     "requantizer.mult: must be 2 multipliers, not (1, 2, 3)"),
    (dict(requantizer=Requantizer(1, 0, 8)), "requantizer.mult: must be 2 multipliers, not 1"),
    (dict(requantizer=(1, 0, 8)),
     "requantizer: must be a imcflow.sw.arith.Requantizer, not (1, 0, 8)"),
    (dict(row_tiles=0), "row_tiles: must be a positive integer, not 0"),
])
def test_constructor_checks(kwargs, message):
    args = dict(bias=[0, 0], requantizer=Requantizer([1, 1], 0, 8), row_tiles=1,
                params=PWM.crossbar) | kwargs
    with pytest.raises(UserError) as info:
        AdcAccumulator(args.pop("bias"), args.pop("requantizer"), **args)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("arch, row_tiles, bias, in_bits, acc_range", [
    # T codes of [-128, 127] plus a bias in [-5, 7]
    (PWM, 3, [-5, 7], 8, (-3 * 128 - 5, 3 * 127 + 7)),
    # bit_serial tiles deliver codes of [-32, 31] shift-added over 4 planes: times 15
    (BIT_SERIAL, 2, [1000, 0], 10, (-2 * 32 * 15, 2 * 31 * 15 + 1000)),
])
def test_widths_follow_the_value_ranges(arch, row_tiles, bias, in_bits, acc_range):
    acc = AdcAccumulator(bias, Requantizer([1] * len(bias), 0, arch.act_bits, True),
                         row_tiles=row_tiles, params=arch.crossbar)
    assert acc.in_bits == in_bits
    assert acc.acc_shape == Shape.cast(range(acc_range[0], acc_range[1] + 1))
    assert len(acc.i) == row_tiles
    assert (acc.latency, acc.interval) == (3, 1)


def requantized(parts, bias, mult, shift, arch, signed):
    return requantize(parts.sum(axis=0) + bias, mult, shift, act_bits=arch.act_bits, signed=signed)


def random_parts(rng, n, row_tiles, cols, arch):
    """Row-tile outputs (row_tiles, n, cols) over their whole range, some at its ends."""
    lo, hi = arch.crossbar.output_range
    parts = rng.integers(lo, hi + 1, size=(row_tiles, n, cols))
    ends = rng.random(parts.shape) < 0.15
    return np.where(ends, rng.choice([lo, hi], size=parts.shape), parts)


def check_accumulator(acc, parts, *, seed, image=4, idle=0.3, backpressure=0.3):
    """Send row-tile outputs ``parts`` through ``acc`` and compare every output beat with the
    golden requantization; returns it and the handshake edges."""
    in_layout, o_layout = acc.i[0].payload.shape(), acc.o.payload.shape()
    r = acc.requantizer
    want = requantize(parts.sum(axis=0) + acc.bias, acc.mult, r.shift, act_bits=r.bits,
                      signed=r.signed)
    sources = {f"i{t}": (acc.i[t], pack(in_layout, parts[t], image))
               for t in range(acc.row_tiles)}
    edges = run_streams(acc, sources, {"o": (acc.o, pack(o_layout, want, image))}, seed=seed,
                        idle=idle, backpressure=backpressure)
    return want, edges


@pytest.mark.parametrize("arch", [PWM, BIT_SERIAL], ids=["pwm", "bit_serial"])
@pytest.mark.parametrize("signed", [False, True], ids=["relu", "signed"])
@pytest.mark.parametrize("shared", [False, True], ids=["lane_each", "shared"])
def test_matches_requantize(arch, signed, shared, seeds):
    # Random row-tile counts, biases, multipliers and shifts, and (shared) 1 to `cols`
    # multipliers over the passes; every input stream idles on its own, the output stalls:
    # every beat must equal the golden requantization, in order.
    for seed in seeds(3):
        rng = np.random.default_rng(seed)
        row_tiles, cols = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        shift = int(rng.integers(0, 4) if rng.random() < 0.3 else rng.integers(4, 20))
        mult = rng.integers(0, 1 << min(MULT_BITS, shift + int(rng.integers(1, 12))), size=cols)
        bias = rng.integers(-3000, 3000, size=cols)
        lanes = int(rng.integers(1, cols + 1)) if shared else 0
        acc = AdcAccumulator(bias, Requantizer(mult, shift, arch.act_bits, signed),
                             row_tiles=row_tiles,
                             params=arch.replace(requant_lanes=lanes).crossbar)
        assert acc.passes == (-(-cols // lanes) if shared else 1)
        check_accumulator(acc, random_parts(rng, 30, row_tiles, cols, arch), seed=seed,
                          idle=rng.uniform(0, 0.6), backpressure=rng.uniform(0, 0.6))


@pytest.mark.parametrize("lanes", [0, 1], ids=["lane_each", "shared"])
def test_rounds_half_up_at_the_boundary(lanes):
    # sums whose product with the multiplier lies exactly on or next to a rounding boundary
    # (dropped bits 0b011111, 0b100000): the products hold the rounding constant, so a
    # constant off by one shows here
    mult, shift, cols = 37, 6, 4
    lo, hi = PWM.crossbar.output_range
    values = [v for v in range(lo, hi + 1) if (v * mult) % 64 in (31, 32)]
    rng = np.random.default_rng(lanes)
    parts = rng.permutation(np.resize(values, 8 * cols)).reshape(1, 8, cols)
    acc = AdcAccumulator([0] * cols, Requantizer([mult] * cols, shift, 8, True), row_tiles=1,
                         params=PWM.replace(requant_lanes=lanes).crossbar)
    check_accumulator(acc, parts, seed=lanes)
    assert {int(v) * mult % 64 for v in parts.reshape(-1)} == {31, 32}


@pytest.mark.parametrize("signed", [False, True], ids=["relu", "signed"])
def test_saturates_at_both_ends_without_wrapping(signed, seeds):
    # Extreme sums times the largest multiplier with no shift: far outside the activation range
    # on both sides; the widest intermediate (acc * mult) must not wrap.
    arch, row_tiles = BIT_SERIAL, 4
    lo, hi = arch.crossbar.output_range
    bias = np.array([-(1 << 20), 1 << 20, 0])
    acc = AdcAccumulator(bias, Requantizer([(1 << MULT_BITS) - 1] * 3, 0, arch.act_bits, signed),
                         row_tiles=row_tiles, params=arch.crossbar)
    parts = np.stack([np.full((2, 3), lo), np.full((2, 3), hi)], axis=1)
    parts = np.broadcast_to(parts.reshape(1, 4, 3), (row_tiles, 4, 3)).copy()
    want, _ = check_accumulator(acc, parts, seed=seeds(1)[0])
    a_lo, a_hi = act_range(arch.act_bits, signed)
    assert want[0:2, 0].tolist() == [a_lo] * 2 and want[2:4, 1].tolist() == [a_hi] * 2


def test_last_must_agree():
    acc = AdcAccumulator([0], Requantizer([1], 0, 8), row_tiles=2, params=PWM.crossbar)

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


@pytest.mark.parametrize("lanes, passes", [(0, 1), (3, 1), (2, 2), (1, 3)])
def test_latency_and_interval(lanes, passes):
    # Inputs every cycle, output always ready: one output per `passes` cycles (the multipliers
    # shared by the columns), `latency` = 3 + passes - 1 after its inputs.
    rng, n = np.random.default_rng(1), 16
    acc = AdcAccumulator([3, -2, 5], Requantizer([40000, 7, 123], 9, 8), row_tiles=3,
                         params=PWM.replace(requant_lanes=lanes).crossbar)
    assert (acc.passes, acc.interval, acc.latency) == (passes, passes, 2 + passes)
    assert acc.lanes == -(-3 // passes)
    parts = random_parts(rng, n, 3, 3, PWM)
    _, edges = check_accumulator(acc, parts, seed=0, idle=None, backpressure=None)
    assert edges["i0"] == edges["i1"] == edges["i2"] == list(range(0, n * passes, passes))
    assert edges["o"] == [e + acc.latency for e in edges["i0"]]


def test_passes_stay_within_the_mvm_interval():
    # One multiplier for 16 columns, but a tile that takes a window every 8 cycles: 8 passes of
    # 2 lanes, so the accumulator never slows the tile.
    params = PWM.replace(requant_lanes=1, col_parallelism=16, mvm_cycles=8).crossbar
    acc = AdcAccumulator(np.zeros(16, int), Requantizer([1] * 16, 0, 8), row_tiles=1,
                         params=params)
    assert (params.mvm_interval(16), acc.passes, acc.lanes) == (8, 8, 2)
