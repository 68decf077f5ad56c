# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the accelerator's own blocks (`imcflow.gen.replication`,
`imcflow.gen.accelerator`): the distributor and merger of replicated layers under random idle
cycles and backpressure, a replicated layer bit-exact with `imcflow.sw.golden.crossbar_layer` and
at its documented latency and rate, the input conversion for ``act_bits < 8``, the composition
checks, and the agreement of `imcflow.sw.timing.BlockTiming` with the blocks' ``latency``."""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from imcflow.gen.accelerator import Accelerator, CrossbarStage, InputCodes
from imcflow.gen.replication import Distributor, Merger, ReplicatedLayer
from imcflow.hw.accumulator import AdcAccumulator
from imcflow.hw.crossbar import CrossbarTile
from imcflow.hw.fifo import PipelineFifo
from imcflow.hw.im2col import WindowSource
from imcflow.hw.pool import AvgPool, GlobalAvgPool, MaxPool, WindowAverage, WindowMax
from imcflow.hw.residual import Fork, Join
from imcflow.hw.streams import VectorLayout
from imcflow.sw.arch import Arch
from imcflow.sw.arith import Requantizer, act_range, round_shift, saturate
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.golden import crossbar_layer
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_qnetwork
from imcflow.sw.timing import BlockTiming
from imcflow.verif.amaranth_sim import run_streams
from test_residual import run_maps

LAYOUT = VectorLayout(3, 6)


def _tagged(images):
    """Payload words of ``images`` (beats per image): lane 0 = image, lane 1 = beat index."""
    return [LAYOUT.pack([n, j, 0], last=j == count - 1)
            for n, count in enumerate(images) for j in range(count)]


@pytest.mark.parametrize("copies", [2, 3])
def test_distributor_hands_beat_j_of_each_image_to_output_j_mod_copies(copies, seeds):
    # Images of 5, 1, 7 and 3 beats: counts that are not multiples of the copies, so each image
    # must start again at output 0.
    images = [5, 1, 7, 3]
    words = _tagged(images)
    outputs = [[w for w in words if LAYOUT.unpack(w)[0][1] % copies == k] for k in range(copies)]
    for seed in seeds(3):
        dut = Distributor(LAYOUT, copies)
        run_streams(dut, {"i": (dut.i, words)},
                    {f"o{k}": (dut.o[k], outputs[k]) for k in range(copies)}, seed=seed)


@pytest.mark.parametrize("copies", [2, 3])
def test_merger_restores_the_order_of_the_distributed_beats(copies, seeds):
    images = [5, 1, 7, 3]
    words = _tagged(images)
    for seed in seeds(3):
        dut = Merger(LAYOUT, copies)
        inputs = {f"i{k}": (dut.i[k], [w for w in words if LAYOUT.unpack(w)[0][1] % copies == k])
                  for k in range(copies)}
        edges = run_streams(dut, inputs, {"o": (dut.o, words)}, seed=seed)
        assert len(edges["o"]) == len(words)


def _layer(rng, rows, cols, arch):
    weight = rng.integers(-7, 8, (rows, cols))
    bias = rng.integers(-20, 21, cols)
    mult = rng.integers(1, 1 << 12, cols)
    return weight, bias, mult, int(rng.integers(8, 14)), int(rng.integers(0, 4))


@pytest.mark.parametrize("copies, cols", [(2, 5), (3, 12)])
def test_replicated_layer_is_bit_exact_in_order(copies, cols, seeds):
    arch = Arch(rows=8, cols=8, mvm_cycles=4)
    for seed in seeds(2):
        rng = np.random.default_rng(seed)
        weight, bias, mult, shift, adc_shift = _layer(rng, 11, cols, arch)
        dut = ReplicatedLayer(weight, bias, Requantizer(mult, shift, 8, True), adc_shift=adc_shift,
                              params=arch.crossbar, copies=copies)
        windows = rng.integers(0, 256, (3, 7, 11))   # 3 images of 7 windows
        expected = crossbar_layer(windows, weight, bias, mult, shift, signed=True, xbar_rows=8,
                                  encoding="pwm", act_bits=8, adc_bits=8, adc_shift=adc_shift)
        run_maps(dut, {"i": windows}, {"o": expected}, seed=seed)


def test_replicated_layer_latency_and_rate():
    # Windows offered every cycle, output always ready: copy k takes windows k, k + r, ... one
    # MVM interval apart, so r windows go in back to back each interval; every output pixel is
    # valid `latency` cycles after its window and the pixels leave in order.
    arch = Arch(rows=8, cols=8, mvm_cycles=5)
    rng = np.random.default_rng(1)
    weight, bias, mult, shift, adc_shift = _layer(rng, 9, 6, arch)
    dut = ReplicatedLayer(weight, bias, Requantizer(mult, shift, 8), adc_shift=adc_shift,
                          params=arch.crossbar, copies=3)
    copy = dut.layers[0]
    assert (dut.latency, dut.interval) == (copy.latency + Merger.latency, copy.interval)
    windows = rng.integers(0, 256, (1, 9, 9))
    expected = crossbar_layer(windows, weight, bias, mult, shift, signed=False, xbar_rows=8,
                              encoding="pwm", act_bits=8, adc_bits=8, adc_shift=adc_shift)
    edges = run_maps(dut, {"i": windows}, {"o": expected}, seed=0, idle=None, backpressure=None)
    assert edges["i"] == [0, 1, 2, 5, 6, 7, 10, 11, 12]
    # An output handshakes in the cycle after its valid (the edge that ends it).
    assert [o - i for i, o in zip(edges["i"], edges["o"])] == [dut.latency] * 9


class _Clocked(wiring.Component):
    """A combinational block with a ``sync`` domain, as the stream helpers' clock needs one."""

    def __init__(self, inner):
        self.inner = inner
        super().__init__({"i": In(inner.i.signature.flip()), "o": Out(inner.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        m.submodules.inner = self.inner
        wiring.connect(m, wiring.flipped(self.i), self.inner.i)
        wiring.connect(m, self.inner.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("act_bits", [4, 7])
def test_input_codes_round_and_saturate_like_the_golden_input_layer(act_bits, seeds):
    seed, = seeds(1)
    pixels = np.concatenate([np.arange(256), np.random.default_rng(seed).integers(0, 256, 64)])
    pixels = pixels.reshape(4, 40, 2)
    shift = 8 - act_bits
    expected = saturate(round_shift(pixels, shift), *act_range(act_bits, False))
    run_maps(_Clocked(InputCodes(2, act_bits)), {"i": pixels}, {"o": expected}, seed=seed)


# blocks built only for their attributes are never elaborated
QUIET = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@QUIET
def test_block_timing_defaults_are_the_rtl_blocks_latencies():
    # The performance model's block latencies (sw/timing.py) are the `latency` attributes of the
    # blocks the generator instantiates; a change on either side must show up here.
    timing = BlockTiming()
    arch = Arch(rows=16, cols=16, mvm_cycles=8)
    tile = CrossbarTile(np.zeros((16, 12), int), adc_shift=0, params=arch.crossbar)
    g = WindowGeometry(4, 4, 2, 3, 1, 1)
    assert timing.window_latency == WindowSource(g, 8).latency
    assert timing.window_latency == WindowSource(g, 8, strategy="frame").latency
    assert timing.crossbar_latency == tile.latency - tile.steps
    accumulator = AdcAccumulator([0, 0], Requantizer([1, 1], 0, 8), row_tiles=1,
                                 params=arch.crossbar)
    assert timing.accumulator_latency == accumulator.latency
    assert timing.merge_latency == Merger.latency
    pool = MaxPool(WindowGeometry(4, 4, 2, 2, 2), 8)
    assert timing.max_pool_latency == pool.latency - pool.source.latency == WindowMax.latency
    average = AvgPool(WindowGeometry(4, 4, 2, 2, 2), 8, Requantizer(1, 0, 8))
    assert timing.avg_pool_latency == average.latency - average.source.latency
    assert timing.avg_pool_latency == WindowAverage.latency
    assert timing.global_pool_latency == GlobalAvgPool(2, 2, 2, 8, Requantizer(1, 0, 8)).latency
    join = Join(2, unsigned(8), unsigned(8), Requantizer((1, 1), 0, 8))
    assert timing.join_latency == join.latency
    assert timing.fork_latency == Fork.latency
    assert timing.fifo_latency == PipelineFifo.latency
    # ... and the model's engine latency of a crossbar stage is the composed block's.
    q = load_qnetwork("digits")
    conv = q["conv1"]
    s = conv.in_shape
    geometry = WindowGeometry(s.h, s.w, s.c, conv.kernel, conv.stride, conv.padding)
    stage = CrossbarStage(conv, geometry, q.arch, strategy="line", replication=1)
    steps = q.arch.planes * -(-16 // q.arch.columns_per_cycle(16))
    assert stage.latency == (timing.window_latency + steps + timing.crossbar_latency
                             + timing.accumulator_latency)
    del tile, accumulator, pool, average, stage
    gc.collect()  # their blocks are collected under this test's warning filter


@QUIET
def test_accelerator_refuses_a_mapping_of_something_else():
    q = load_qnetwork("digits")
    mapping = map_network(q.network, q.arch)
    with pytest.raises(ValueError, match=r"^The mapping is for Arch\(.*mvm_cycles=4"):
        Accelerator(q, map_network(q.network, q.arch.replace(mvm_cycles=4)))
    slow = dataclasses.replace(mapping, timing=BlockTiming(fifo_latency=2, fifo_depth=3))
    with pytest.raises(ValueError, match=r"^Timing must be the RTL blocks' BlockTiming\("):
        Accelerator(q, slow)
    core = Accelerator(q, mapping)
    # One link per stage input; the skip input of the join gets the mapper's skip FIFO.
    assert [(l.producer, l.consumer, l.kind) for l in core.links if l.consumer == "block_add"] == \
        [("block_conv2", "block_add", "fifo"), ("conv1", "block_add", "skip")]
    assert core.links[4].depth == mapping.layer("block_add").buffer_words
    assert len(core.status) == 4 * len(core.links)
    del core
    gc.collect()  # its blocks are collected under this test's warning filter
