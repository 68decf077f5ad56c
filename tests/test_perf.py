"""The performance model: hand-computed pipelines, the closed form against the event model, the
steady state against the throughput bound, and skip FIFO depths against deadlock."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from imcflow.errors import UserError
from imcflow.sw.arch import load_arch
from imcflow.sw.ir import Add, Conv2d, Input, Network, ReLU, Shape
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_network
from imcflow.sw.perf import analyze, closed_form_holds, frame_latency, simulate
from imcflow.sw.timing import BlockTiming, fill_latency
from imcflow.verif.patterns import stall_mask


def _row_net(pixels=4):
    return Network("row", [Input("x", Shape(1, pixels, 1)), Conv2d("c", "x", 1, kernel=1)])


@pytest.mark.parametrize("buffer", ["line", "frame"])
def test_one_conv_latency_by_hand(buffer):
    timing = BlockTiming()
    mapping = map_network(_row_net(), load_arch("default", mvm_cycles=3, buffer=buffer), timing=timing)
    schedule = simulate(mapping)
    # Pixel 0 arrives through the FIFO at cycle 1 (line) or the last pixel at cycle 4 (frame);
    # its window is valid one cycle later and the copy takes one every 3 cycles; the last of 4
    # is done steps (1) + crossbar (3: dot product, rounding, output) + accumulator (3: sum,
    # product, output) cycles after it is taken.
    start = timing.fifo_latency + (0 if buffer == "line" else 3)
    assert schedule.emit["c"].tolist() == [start + 1 + 3 * j + 7 for j in range(4)]
    assert schedule.latency == start + 1 + 3 * 3 + 7
    assert schedule.emit["x"].tolist() == [0, 1, 2, 3]
    if buffer == "frame":
        assert frame_latency(mapping) == schedule.latency


def test_a_one_word_line_buffer_stalls_the_input():
    mapping = map_network(_row_net(6), load_arch("default", mvm_cycles=3))
    schedule = simulate(mapping)
    take, emit = schedule.take["c"], schedule.emit["x"]
    # Pixel i (i >= 2) may only be written after window i-1 is read, one MVM interval apart,
    # and the FIFO in front holds two more: the source stalls from pixel 4 on.
    assert np.all(np.diff(take[2:]) == 3)
    assert np.all(emit[4:] == take[2:-2] + 1)


def test_block_timing_rejects_bad_values():
    with pytest.raises(UserError, match=r"^timing.window_latency: must be a positive integer, not 0$"):
        BlockTiming(window_latency=0)
    with pytest.raises(UserError, match=r"^timing.merge_latency: must be a non-negative integer, not -1$"):
        BlockTiming(merge_latency=-1)
    with pytest.raises(UserError, match=r"^timing.fifo_depth: must be at least .* = 3 .*, not 2$"):
        BlockTiming(fifo_latency=2)


def _random_timing(rng):
    latency = int(rng.integers(1, 4))
    fork = int(rng.integers(0, 2))
    return BlockTiming(window_latency=int(rng.integers(1, 4)), crossbar_latency=int(rng.integers(0, 4)),
                       accumulator_latency=int(rng.integers(0, 4)), merge_latency=int(rng.integers(0, 3)),
                       max_pool_latency=int(rng.integers(1, 3)), avg_pool_latency=int(rng.integers(1, 4)),
                       global_pool_latency=int(rng.integers(1, 4)), join_latency=int(rng.integers(1, 4)),
                       fork_latency=fork, fifo_latency=latency,
                       fifo_depth=latency + fork + 1 + int(rng.integers(0, 3)))


@pytest.mark.parametrize("name", ["digits", "resnet8"])
@pytest.mark.parametrize("preset", ["default", "bit_serial", "small", "fpga"])
def test_frame_closed_form_equals_event_model(name, preset, seeds):
    net = load_network(name)
    for seed, budget in zip(seeds(3), (None, "2x", "3x")):
        timing = _random_timing(np.random.default_rng(seed))
        mapping = map_network(net, load_arch(preset, buffer="frame"), core_budget=budget, timing=timing)
        if not closed_form_holds(mapping):   # fpga: its joins share multipliers over passes
            assert preset == "fpga" and budget is not None
            with pytest.raises(UserError, match="^frame_latency: a join shares"):
                frame_latency(mapping)
            continue
        assert frame_latency(mapping) == simulate(mapping).latency, (seed, budget)


def test_closed_form_needs_frame_buffers():
    with pytest.raises(UserError, match=r"layer 'conv1' has a line buffer"):
        frame_latency(map_network(load_network("digits"), "default"))


@pytest.mark.parametrize("name", ["digits", "resnet8", "resnet20", "resnet32"])
@pytest.mark.parametrize("buffer", ["line", "frame"])
def test_unreplicated_steady_state_reaches_the_bound(name, buffer):
    mapping = map_network(load_network(name), load_arch("default", buffer=buffer))
    schedule = simulate(mapping, 3)
    assert np.all(np.diff(schedule.done) == mapping.cycles_per_image)


def _unbounded_skips(mapping):
    return dataclasses.replace(mapping, layers=tuple(
        dataclasses.replace(l, buffer_words=10 ** 6) if l.role == "join" else l for l in mapping.layers))


@pytest.mark.parametrize("name", ["digits", "resnet8", "resnet20"])  # resnet20: 16x16, 8x8 identities
@pytest.mark.parametrize("buffer", ["line", "frame"])
def test_mapped_skip_fifos_never_stall_an_unreplicated_pipeline(name, buffer):
    mapping = map_network(load_network(name), load_arch("default", buffer=buffer))
    bounded, unbounded = simulate(mapping, 3), simulate(_unbounded_skips(mapping), 3)
    for stage in bounded.emit:
        assert np.array_equal(bounded.emit[stage], unbounded.emit[stage]), stage


def _with_depth(mapping, join, words):
    return dataclasses.replace(mapping, layers=tuple(
        dataclasses.replace(l, buffer_words=words) if l.name == join else l for l in mapping.layers))


@pytest.mark.parametrize("name,join", [("digits", "block_add"), ("resnet8", "s1b1_add")])
def test_identity_skip_minimum_is_exactly_deadlock_free(name, join):
    mapping = map_network(load_network(name), "default")
    minimum = mapping.layer(join).skip_min_words
    simulate(_with_depth(mapping, join, minimum), 2)
    with pytest.raises(UserError, match=rf"the pipeline of '{name}' deadlocks: .*'{join}' \(0 of"):
        simulate(_with_depth(mapping, join, minimum - 1), 2)


def test_identity_skip_threshold_on_random_blocks(seeds):
    for seed in seeds(12):
        rng = np.random.default_rng(seed)
        h, w = (int(v) for v in rng.integers(3, 9, 2))
        k1, k2 = (int(rng.choice([1, 3])) for _ in range(2))
        net = Network("block", [
            Input("x", Shape(h, w, 2)), Conv2d("stem", "x", 4, kernel=1), ReLU("r0", "stem"),
            Conv2d("a", "r0", 4, kernel=k1, padding=k1 // 2), ReLU("r1", "a"),
            Conv2d("b", "r1", 4, kernel=k2, padding=k2 // 2), Add("add", "b", "r0")])
        arch = load_arch("default", mvm_cycles=int(rng.integers(1, 5)))
        budget = [None, "2x", "4x"][int(rng.integers(0, 3))]
        mapping = map_network(net, arch, core_budget=budget, timing=_random_timing(rng))
        minimum = mapping.layer("add").skip_min_words
        simulate(_with_depth(mapping, "add", minimum), 2)
        if minimum > 1:
            with pytest.raises(UserError, match="deadlocks"):
                simulate(_with_depth(mapping, "add", minimum - 1), 2)


def test_projection_skip_minimum_is_deadlock_free():
    mapping = map_network(load_network("resnet8"), "default")
    for join in ("s2b1_add", "s3b1_add"):
        mapping = _with_depth(mapping, join, mapping.layer(join).skip_min_words)
    simulate(mapping, 2)


def test_first_image_does_not_depend_on_later_images():
    mapping = map_network(load_network("resnet8"), "default", core_budget="2x")
    one, three = simulate(mapping, 1), simulate(mapping, 3)
    for stage, emit in one.emit.items():
        assert np.array_equal(three.emit[stage][:len(emit)], emit)


def test_handshakes_respect_every_link():
    mapping = map_network(load_network("resnet8"), "default", core_budget="3x")
    schedule, timing = simulate(mapping, 2), mapping.timing
    for layer in mapping.stages:
        emit = schedule.emit[layer.name]
        assert np.all(np.diff(emit) >= 1)
        for p in layer.inputs:
            fanout = sum(l.inputs.count(p) for l in mapping.stages)
            take, sent = schedule.take[layer.name], schedule.emit[p]
            if fanout > 1:  # a fork offers a beat once the previous one has left
                sent = np.concatenate([[0], sent[:-1] + 1])
            assert np.all(take >= sent + timing.fifo_latency + (timing.fork_latency if fanout > 1 else 0))
            depth = layer.buffer_words if layer.skip_input == p else timing.fifo_depth
            assert np.all(schedule.emit[p][depth:] > take[:-depth])  # never more than depth queued
        if layer.role == "crossbar":
            need = np.tile(layer.last_needed(), 2) + np.repeat([0, layer.input_pixels], layer.output_pixels)
            take = schedule.take[layer.name]
            assert np.all(emit >= take[need] + fill_latency(layer, mapping.arch, timing))
            copy = np.arange(layer.output_pixels) % layer.replication
            for c in range(layer.replication):
                assert np.all(np.diff(emit[:layer.output_pixels][copy == c]) >= layer.interval)


def test_image_gap_slows_a_source_bound_pipeline():
    net = Network("fast", [Input("x", Shape(4, 4, 1)), Conv2d("c", "x", 1, kernel=1)])
    for gap in (0, 3):
        mapping = map_network(net, load_arch("default", mvm_cycles=1), timing=BlockTiming(image_gap=gap))
        assert simulate(mapping, 3).cycles_per_image == 16 + gap


def test_replication_speeds_up_the_event_model():
    net = load_network("resnet32")
    base = analyze(map_network(net, "default"))
    double = analyze(map_network(net, "default", core_budget="2x"))
    assert base.cycles_per_image == base.cycles_per_image_bound == 8192
    assert double.cycles_per_image_bound == 2048
    assert base.cycles_per_image / double.cycles_per_image >= 1.8
    assert double.cycles_per_image >= double.cycles_per_image_bound


def test_analyze_summarizes_line_and_frame():
    net = load_network("resnet8")
    line = analyze(map_network(net, "default"))
    frame = analyze(map_network(net, load_arch("default", buffer="frame")))
    assert line.latency_closed_form is None and frame.latency_closed_form == frame.latency_cycles
    assert 3 * line.latency_cycles < frame.latency_cycles
    assert line.throughput_ips == pytest.approx(1e9 / line.cycles_per_image)
    assert line.latency_us == pytest.approx(line.latency_cycles / 1000)
    assert [s.name for s in line.stages][0] == "input" and line.stages[-1].last_output == line.latency_cycles
    with pytest.raises(UserError, match=r"^images: must be an integer >= 2, not 1$"):
        analyze(map_network(net, "default"), 1)


# --- idle input and output backpressure (the stall masks of a simulation) -------------------------

def _stalls(seed, p, cycles, stream):
    return stall_mask(seed, stream, p, cycles)


def test_no_stall_masks_are_full_rate():
    mapping = map_network(load_network("resnet8"), "default", core_budget="2x")
    none = simulate(mapping, 2)
    clear = simulate(mapping, 2, input_stall=np.zeros(100, bool), output_stall=np.zeros(5, bool))
    for stage in none.emit:
        assert np.array_equal(none.emit[stage], clear.emit[stage])
        assert np.array_equal(none.take[stage], clear.take[stage])


def test_an_idle_input_offers_each_pixel_in_its_first_free_cycle():
    # A source that never waits for room (one conv taking a pixel per cycle): each pixel is
    # offered, and taken, in the first cycle not idle after its predecessor's handshake.
    mapping = map_network(_row_net(40), load_arch("default", mvm_cycles=1))
    idle = _stalls(5, 0.4, 30, 1)            # past its end the input is never idle
    taken, cycle = [], 0
    for _ in range(40):
        while cycle < len(idle) and idle[cycle]:
            cycle += 1
        taken.append(cycle)
        cycle += 1
    schedule = simulate(mapping, input_stall=idle)
    assert schedule.emit["x"].tolist() == taken
    full = simulate(mapping)
    # ... and the rest of this pipeline follows the last pixel's delay
    assert schedule.latency == full.latency + taken[-1] - 39 - taken[0]


def test_a_stalled_prefix_delays_everything_by_its_length():
    mapping = map_network(load_network("digits"), "default")
    full = simulate(mapping, 2)
    late = simulate(mapping, 2, input_stall=np.ones(17, bool))
    for stage in full.emit:
        assert np.array_equal(late.emit[stage], full.emit[stage] + 17)
    assert late.latency == full.latency   # latency counts from the first input handshake


def test_backpressure_holds_output_beats_until_ready():
    mapping = map_network(_row_net(40), load_arch("default", mvm_cycles=1))
    full = simulate(mapping)
    stall = _stalls(4, 0.5, 200, 2)
    stall[full.emit["c"][0]] = True   # the first beat meets backpressure
    schedule = simulate(mapping, output_stall=stall)
    out = schedule.emit["c"]
    assert not stall[out].any() and np.all(out >= full.emit["c"])
    # the first beat is valid when it is at full rate and leaves in the first free cycle
    first = full.emit["c"][0]
    assert out[0] == first + np.argmin(stall[first:]) and stall[first]
    # ... and the backpressure reaches the input: it stalls once the engine and FIFOs are full
    assert schedule.emit["x"][-1] > full.emit["x"][-1]


def test_stall_masks_must_be_bool_vectors():
    mapping = map_network(_row_net(), load_arch("default"))
    with pytest.raises(UserError, match=r"^stall masks: must be 1-D bool arrays"):
        simulate(mapping, input_stall=np.zeros(4, int))


def test_an_offered_pixel_waits_for_room_whatever_the_idle_pattern():
    # Once offered, a pixel stays valid until the FIFO has room: its handshake is the later of
    # its offer (first free cycle after the previous handshake) and the room, never pushed on
    # to the next free cycle.
    mapping = map_network(_row_net(30), load_arch("default", mvm_cycles=3))
    idle = _stalls(9, 0.5, 200, 1)
    schedule = simulate(mapping, input_stall=idle)
    sent, take, depth = schedule.emit["x"], schedule.take["c"], mapping.timing.fifo_depth
    waited = 0
    for n in range(1, len(sent)):
        offer = sent[n - 1] + 1 + np.argmin(idle[sent[n - 1] + 1:])
        room = take[n - depth] + 1 if n >= depth else 0
        assert sent[n] == max(offer, room)
        waited += bool(room > offer and idle[room])
    assert waited > 0     # the case that tells the two orders apart happens
