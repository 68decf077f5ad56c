# amaranth: UnusedElaboratable=no
"""Reset in the middle of traffic: every stream block, and a whole generated accelerator, is
reset at a random point while beats flow in and out, then must deliver its whole output stream
again, bit-exact from the first beat: nothing from before the reset may come out after it.

Blocks run in the Amaranth simulator through `imcflow.verif.amaranth_sim.run_streams` with
``reset=True`` (random idle cycles and backpressure, a reset after a random number of input
beats and a random delay, 1 to 3 cycles long). The accelerator (``small_net``, every layer kind)
runs under Verilator (tests/cocotb/axis_top_tb.py, ``reset_in_traffic``) with `Bench.reset
<imcflow.verif.bench.Bench.reset>` and the AXI4-Stream checker on both ports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.accumulator import AdcAccumulator
from imcflow.hw.crossbar import CrossbarTile
from imcflow.hw.fifo import PipelineFifo, SkidBuffer
from imcflow.hw.im2col import WindowSource
from imcflow.hw.pool import AvgPool, GlobalAvgPool, MaxPool
from imcflow.hw.residual import Fork, Join, SkipFifo
from imcflow.hw.streams import VectorLayout
from imcflow.sw import golden
from imcflow.sw.arch import Arch
from imcflow.sw.arith import Requantizer
from imcflow.sw.geometry import WindowGeometry
from imcflow.verif import runner
from imcflow.verif.amaranth_sim import run_streams
from test_accumulator import random_parts, requantized
from test_axis_protocol import small_top  # noqa: F401  (the module-scoped top fixture)
from test_crossbar import mvm, pack, random_weight, random_windows
from test_residual import beats, random_join, random_map

TB = Path(__file__).parent / "cocotb" / "axis_top_tb.py"
IMAGES = 3


# --- each block: (dut, sources, sinks) with golden words ----------------------------------------

def maps(dut, arrays):
    """``{port: (port, words)}`` of batches of maps on the dut's `VectorLayout` ports."""
    return {name: (getattr(dut, name), beats(getattr(dut, name), a)) for name, a in arrays.items()}


def queue(dut, rng):
    words = [int(w) for w in rng.integers(0, 1 << dut.i.payload.shape().size, size=120)]
    return dut, {"i": (dut.i, words)}, {"o": (dut.o, words)}


def window_source(strategy, rng):
    h, w, c, k, stride, padding = 6, 5, 2, 3, 1, 1
    dut = WindowSource(WindowGeometry(h, w, c, k, stride, padding), 6, strategy=strategy)
    fmap = random_map(rng, (IMAGES, h, w, c), 6, False)
    return dut, maps(dut, {"i": fmap}), maps(dut, {"o": golden.windows(fmap, k, stride, padding)})


def crossbar_tile(rng):
    arch = Arch(rows=12, cols=4, mvm_cycles=2, col_parallelism=2)
    tile = CrossbarTile(random_weight(rng, (10, 3), arch.weight_bits), adc_shift=3,
                        params=arch.crossbar)
    x = random_windows(rng, 30, 10, arch.act_bits)
    want = mvm(x, tile.weight, tile.adc_shift, arch)
    return tile, {"i": (tile.i, pack(tile.i.payload.shape(), x, 5))}, \
        {"o": (tile.o, pack(tile.o.payload.shape(), want, 5))}


def adc_accumulator(rng):
    arch = Arch()
    acc = AdcAccumulator(rng.integers(-500, 500, size=3),
                         Requantizer(rng.integers(1, 4000, size=3), 14, arch.act_bits),
                         row_tiles=2, params=arch.crossbar)
    parts = random_parts(rng, 30, 2, 3, arch)
    want = requantized(parts, acc.bias, acc.mult, acc.shift, arch, False)
    layout = acc.i[0].payload.shape()
    return acc, {f"i{t}": (acc.i[t], pack(layout, parts[t], 4)) for t in range(2)}, \
        {"o": (acc.o, pack(acc.o.payload.shape(), want, 4))}


def max_pool(rng):
    dut = MaxPool(WindowGeometry(6, 6, 2, 3, 2, 1), 8)
    fmap = random_map(rng, (IMAGES, 6, 6, 2), 8, False)
    return dut, maps(dut, {"i": fmap}), maps(dut, {"o": golden.max_pool(fmap, 3, 2, 1)})


def avg_pool(rng):
    dut = AvgPool(WindowGeometry(6, 4, 2, 2, 2), 8, Requantizer(1024, 12, 8))
    fmap = random_map(rng, (IMAGES, 6, 4, 2), 8, False)
    want = golden.avg_pool(fmap, 2, 2, 1024, 12, act_bits=8, signed=False)
    return dut, maps(dut, {"i": fmap}), maps(dut, {"o": want})


def global_avg_pool(rng):
    dut = GlobalAvgPool(3, 4, 3, 8, Requantizer(683, 13, 8))
    fmap = random_map(rng, (IMAGES * 2, 3, 4, 3), 8, False)
    want = golden.global_avg_pool(fmap, 683, 13, act_bits=8, signed=False)
    return dut, maps(dut, {"i": fmap}), maps(dut, {"o": want})


def fork(rng):
    layout = VectorLayout(3, 5)
    words = [int(w) for w in rng.integers(0, 1 << layout.size, size=100)]
    dut = Fork(layout)
    return dut, {"i": (dut.i, words)}, {"o_main": (dut.o_main, words),
                                        "o_skip": (dut.o_skip, words)}


def join(rng):
    dut = Join(**random_join(rng))
    shape = (IMAGES, 3, 4, dut.c)
    a = random_map(rng, shape, dut.a_shape.width, dut.a_shape.signed)
    b = random_map(rng, shape, dut.b_shape.width, dut.b_shape.signed)
    want = golden.join(a, b, dut.mult_a, dut.mult_b, dut.shift, act_bits=dut.act_bits,
                       signed=dut.act_signed)
    return dut, maps(dut, {"i_a": a, "i_b": b}), maps(dut, {"o": want})


BLOCKS = {
    "fifo": lambda rng: queue(PipelineFifo(VectorLayout(3, 6), 5), rng),
    "skid_buffer": lambda rng: queue(SkidBuffer(VectorLayout(2, 5)), rng),
    "skip_fifo": lambda rng: queue(SkipFifo(VectorLayout(2, 5), 14), rng),
    "line_buffer": lambda rng: window_source("line", rng),
    "frame_buffer": lambda rng: window_source("frame", rng),
    "crossbar_tile": crossbar_tile,
    "adc_accumulator": adc_accumulator,
    "max_pool": max_pool,
    "avg_pool": avg_pool,
    "global_avg_pool": global_avg_pool,
    "fork": fork,
    "join": join,
}


@pytest.mark.parametrize("block", BLOCKS)
def test_block_reset_in_traffic_then_bit_exact(block, seeds):
    for seed in seeds(3):
        dut, sources, sinks = BLOCKS[block](np.random.default_rng(seed))
        run_streams(dut, sources, sinks, seed=seed, idle=0.3, backpressure=0.4, reset=True)


# --- the harness can fail: a block that keeps state across reset ---------------------------------

class StickyFifo(wiring.Component):
    """A one-beat buffer whose ``full`` flag ignores reset: a beat held at the reset comes out
    after it (the bug a missing reset causes)."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        full = Signal(reset_less=True)
        data = Signal(8, reset_less=True)
        m.d.comb += [self.i.ready.eq(~full | self.o.ready), self.o.valid.eq(full),
                     self.o.payload.eq(data)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [full.eq(1), data.eq(self.i.payload)]
        with m.Elif(self.o.ready):
            m.d.sync += full.eq(0)
        return m


def test_a_beat_surviving_the_reset_fails_the_run():
    words = list(range(1, 60))
    for seed in range(20):     # backpressure keeps a beat held when the reset comes, in most runs
        dut = StickyFifo()
        try:
            run_streams(dut, {"i": (dut.i, words)}, {"o": (dut.o, words)}, seed=seed,
                        idle=0.2, backpressure=0.6, reset=True)
        except AssertionError as error:
            assert "StickyFifo.o: beat 0: expected 1, got " in str(error)
            return
    pytest.fail("no run caught the beat that survived the reset")


def test_without_reset_the_same_sticky_block_passes():
    words = list(range(1, 60))
    dut = StickyFifo()
    run_streams(dut, {"i": (dut.i, words)}, {"o": (dut.o, words)}, seed=1, idle=0.2,
                backpressure=0.6)


# --- the whole accelerator under Verilator ------------------------------------------------------

def test_accelerator_reset_in_traffic_then_bit_exact(small_top, seeds):  # noqa: F811
    build, parameters = small_top
    seed, = seeds(1)
    result = runner.run(build, TB, testcase="reset_in_traffic",
                        parameters={**parameters, "seed": seed})
    outputs = np.load(parameters["data"])["outputs"]
    print(f"reset in cycle {result['reset_cycle']} after {result['before'][0]} input and "
          f"{result['before'][1]} output beats; checkers saw {result['beats']} beats")
    assert result["beats"][1] >= outputs.shape[0] * outputs.shape[1]
