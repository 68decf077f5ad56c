"""The event model against the RTL: the cycle-accurate timing model of the window source
(`imcflow.sw.timing.window_schedule`), the same pixel and window handshakes for line and frame
buffers, several geometries and images back to back; and a whole two-conv pipeline in the
Amaranth simulator under seeded idle and backpressure masks (`verif.patterns.port_stalls`), the
same input and output handshakes as `simulate` given those masks."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from imcflow.gen.accelerator import Accelerator
from imcflow.sw.arch import load_arch
from imcflow.sw.datasets import calibrated
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.ir import Add, AvgPool, Conv2d, GlobalAvgPool, Input, Network, ReLU, Shape
from imcflow.sw.mapper import map_network
from imcflow.sw.perf import simulate
from imcflow.sw.timing import engine_latency, window_schedule
from imcflow.sw.weights import he_init
from imcflow.verif.patterns import port_stalls
from small_networks import small_net

GEOMETRIES = [(5, 5, 3, 1, 1), (6, 7, 3, 2, 1), (8, 8, 2, 2, 0), (4, 9, 3, 1, 0), (6, 6, 1, 2, 0),
              (5, 5, 5, 1, 2), (7, 5, 3, 3, 1), (32, 32, 3, 2, 1)]


@pytest.mark.parametrize("h,w,k,s,p", GEOMETRIES)
@pytest.mark.parametrize("strategy", ["line", "frame"])
def test_window_stage_matches_the_rtl_window_source(h, w, k, s, p, strategy):
    # A conv with a one-cycle MVM interval takes a window every cycle and its output is always
    # taken, so its windows leave the window source as soon as the RTL rules allow: the event
    # model's window stage runs the timing contract's window rules (as window_schedule does,
    # measured on the RTL in test_im2col.py) after the link, and its engine after them.
    net = Network("w", [Input("x", Shape(h, w, 2)), Conv2d("c", "x", 4, kernel=k, stride=s, padding=p)])
    mapping = map_network(net, load_arch("default", buffer=strategy, mvm_cycles=1))
    schedule = simulate(mapping, 3)
    accepted, valid = window_schedule(WindowGeometry(h, w, 2, k, s, p), strategy=strategy,
                                      images=3)
    link = mapping.timing.fifo_latency  # the window source's input is the FIFO after the source
    taken = schedule.take["c"] - link
    # window_schedule stops at the last window; pixels after it (not needed by any) are not listed
    assert np.array_equal(taken[:len(accepted)], accepted)
    engine = engine_latency(mapping.layer("c"), mapping.arch, mapping.timing)
    assert np.array_equal(schedule.emit["c"] - engine - link, valid)


# --- whole pipelines under stalls, in the Amaranth simulator ---------------------------------------

def _handshakes(core, pixels, input_stall, output_stall, limit=20_000):
    """Drive ``core`` (`imcflow.gen.accelerator.Accelerator`) with the images ``pixels`` under the
    stall masks, with `imcflow.verif.patterns.stall_mask`'s semantics, cycle 0 the first; returns
    the cycles of every input and output handshake."""
    i, o = core.i, core.o
    layout = i.payload.shape()
    words = [layout.pack(p.tolist(), n == len(image) - 1)
             for image in pixels for n, p in enumerate(image)]
    beats = len(pixels) * core.qnet.output.shape.pixels
    cycles = {"in": [], "out": []}

    def stalled(mask, c):
        return mask is not None and c < len(mask) and bool(mask[c])

    async def bench(ctx):
        payload = Value.cast(i.payload)
        n, offering = 0, False
        for c in range(limit):
            if not offering and n < len(words) and not stalled(input_stall, c):
                ctx.set(i.valid, 1)
                ctx.set(payload, words[n])
                offering = True
            ctx.set(o.ready, not stalled(output_stall, c))
            _, _, iv, ir, ov, orr = await ctx.tick().sample(i.valid, i.ready, o.valid, o.ready)
            if iv and ir:
                cycles["in"].append(c)
                n, offering = n + 1, False
                ctx.set(i.valid, 0)
            if ov and orr:
                cycles["out"].append(c)
                if len(cycles["out"]) == beats:
                    return

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return cycles


@pytest.mark.parametrize("mvm_cycles, budget, idle, backpressure, fields", [
    (3, None, 0.0, 0.6, {}), (2, "2x", 0.3, 0.5, {}), (1, None, 0.3, 0.8, {}),
    # crossbars summing their 18 rows in 4 folds of 5, 2 columns per cycle (8 or 4 steps)
    (1, "2x", 0.3, 0.5, {"row_folds": 4, "col_parallelism": 2, "mac_stages": 1}),
    # one requantization multiplier per accumulator: 3 passes (c1: 2 lanes, c2: 1)
    (3, None, 0.0, 0.6, {"requant_lanes": 1}),
    (1, "2x", 0.3, 0.5, {"row_folds": 4, "col_parallelism": 2, "requant_lanes": 1}),
    # c1's window read over 3 cycles (3 ports), or as many as its stage allows (2 copies)
    (3, None, 0.3, 0.6, {"window_ports": 3}),
    (1, "2x", 0.3, 0.5, {"row_folds": 4, "col_parallelism": 2, "window_ports": 1})])
def test_pipeline_under_stalls_matches_the_rtl(mvm_cycles, budget, idle, backpressure, fields):
    # Two convs (the second the output) on a 5x5 map: every input and output handshake of the
    # RTL under the seeded stall masks is the event model's, given the same masks. Crossbars
    # with an MVM interval above one cycle stop (interval counter included) while their output
    # register is blocked, which the model's copy clocks follow.
    net = he_init(Network("head", [Input("x", Shape(5, 5, 2)),
                                   Conv2d("c1", "x", 4, kernel=3, padding=1), ReLU("r1", "c1"),
                                   Conv2d("c2", "r1", 3, kernel=1)]), seed=5)
    arch = load_arch("default", mvm_cycles=mvm_cycles, **fields)
    qnet = calibrated(net, arch)[0]
    mapping = map_network(qnet.network, arch, core_budget=budget)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 25, 2))
    input_stall, output_stall = port_stalls(5, idle, backpressure, 4000)
    measured = _handshakes(Accelerator(qnet, mapping, target="fpga"), pixels, input_stall,
                           output_stall)
    schedule = simulate(mapping, 3, input_stall=input_stall, output_stall=output_stall)
    assert measured["in"] == schedule.emit["x"].tolist()
    assert measured["out"] == schedule.emit["c2"].tolist()


@pytest.mark.parametrize("fields", [{}, {"col_parallelism": 1, "slack_folds": True},
                                    {"col_parallelism": 1, "slack_folds": True,
                                     "requant_lanes": 1, "window_ports": 1}],
                         ids=["default", "slack-folds", "shared-multipliers-one-port"])
def test_every_layer_kind_under_stalls_matches_the_rtl(fields):
    # small_net (strided and padded convs, a projection skip and its join, max and average
    # pooling, dense layers, global pooling) with 2-cycle MVMs, under idle and backpressure;
    # with slack_folds, the layers faster than the slowest fold their rows (as many steps more).
    arch = load_arch("default", mvm_cycles=2, **fields)
    qnet = calibrated(small_net(), arch)[0]
    mapping = map_network(qnet.network, arch)
    if fields:
        assert {l.row_folds for l in mapping.stages if l.role == "crossbar"} != {1}
    pixels = np.random.default_rng(0).integers(0, 256, (3, 64, 2))
    # (seed 11 stalls the output in the cycles two of the three logits are first offered)
    input_stall, output_stall = port_stalls(11, 0.3, 0.5, 4000)
    measured = _handshakes(Accelerator(qnet, mapping, target="fpga"), pixels, input_stall,
                           output_stall)
    schedule = simulate(mapping, 3, input_stall=input_stall, output_stall=output_stall)
    assert measured["in"] == schedule.emit[schedule.source].tolist()
    assert measured["out"] == schedule.emit[schedule.output].tolist()


@pytest.mark.parametrize("head", ["gap", "join", "avgpool"])
def test_requantizing_outputs_fill_their_registers_under_backpressure(head):
    # A global pool, a join or an average pool as the output stage, the output stalled most of
    # the time: each holds as many results as it has registers (sw/timing.py: 3, 2 and 3), so
    # its input is taken until they are full, as the model says; a model that let it hold one
    # fewer (or one more) takes inputs in other cycles.
    layers = [Input("x", Shape(2, 2, 2)), Conv2d("a", "x", 2, kernel=1), ReLU("r", "a")]
    layers += {"gap": [GlobalAvgPool("out", "r")],
               "join": [Conv2d("b", "x", 2, kernel=1), Add("out", "r", "b")],
               "avgpool": [AvgPool("out", "r", kernel=1)]}[head]
    net = he_init(Network(head, layers), seed=3)
    arch = load_arch("default", mvm_cycles=1)
    qnet = calibrated(net, arch)[0]
    mapping = map_network(qnet.network, arch)
    pixels = np.random.default_rng(1).integers(0, 256, (12, 4, 2))
    input_stall, output_stall = port_stalls(2, 0.0, 0.85, 4000)
    measured = _handshakes(Accelerator(qnet, mapping, target="fpga"), pixels, input_stall,
                           output_stall)
    schedule = simulate(mapping, 12, input_stall=input_stall, output_stall=output_stall)
    assert measured["in"] == schedule.emit["x"].tolist()
    assert measured["out"] == schedule.emit["out"].tolist()
