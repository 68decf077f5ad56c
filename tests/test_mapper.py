"""The mapper: crossbar tiles, window buffers and skip FIFOs against hand-computed values for each
zoo network, the optimal replication against brute force, and the errors a user can meet."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from imcflow.errors import UserError
from imcflow.sw.arch import load_arch
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.ir import Add, Conv2d, Dense, Flatten, GlobalAvgPool, Input, MaxPool, Network, ReLU, Shape
from imcflow.sw.mapper import buffer_for, map_network, replication, resolve_budget
from imcflow.sw.networks import load_network


def _crossbar_table(mapping):
    return {l.name: (l.rows, l.cols, l.row_tiles, l.col_tiles, l.buffer_words)
            for l in mapping.layers if l.role == "crossbar"}


# Hand-computed for 256x256 crossbars and line buffers. A 3x3 window with padding 1 on a W-wide
# map spans 2W + 3 pixels (stride 1 or 2); a 1x1 window one. Rows k*k*C_in, cols C_out.
def _resnet_expected(blocks):
    table = {"conv1": (27, 16, 1, 1, 67)}
    for stage, (width, w_in) in enumerate(((16, 32), (32, 32), (64, 16)), start=1):
        c_in = 16 if stage == 1 else width // 2
        w_out = w_in if stage == 1 else w_in // 2
        for block in range(1, blocks + 1):
            p = f"s{stage}b{block}"
            if block == 1 and stage > 1:
                table[f"{p}_conv1"] = (9 * c_in, width, -(-9 * c_in // 256), 1, 2 * w_in + 3)
                table[f"{p}_proj"] = (c_in, width, 1, 1, 1)
            else:
                table[f"{p}_conv1"] = (9 * width, width, -(-9 * width // 256), 1, 2 * w_out + 3)
            table[f"{p}_conv2"] = (9 * width, width, -(-9 * width // 256), 1, 2 * w_out + 3)
    table["fc"] = (64, 10, 1, 1, 1)
    return table


@pytest.mark.parametrize("name,blocks,crossbars", [("resnet8", 1, 14), ("resnet20", 3, 38),
                                                   ("resnet32", 5, 62)])
def test_resnet_tiles_and_line_buffers(name, blocks, crossbars):
    mapping = map_network(load_network(name), "default")
    assert _crossbar_table(mapping) == _resnet_expected(blocks)
    # 27, 144: one row tile; 288 = 2 x 144: two; 576: three. Stage 1: 1 + 2n, stage 2: 4 + 4(n-1),
    # stage 3: 6 + 6(n-1), fc: 1.
    assert mapping.crossbars == mapping.min_crossbars == crossbars
    conv1 = mapping.layer("conv1")
    assert conv1.buffer_bits == 67 * 3 * 8  # the input image is 8-bit, 3 channels
    assert mapping.layer("s1b1_conv1").buffer_bits == 67 * 16 * 8


def test_digits_tiles_buffers_and_skip():
    mapping = map_network(load_network("digits"), "default")
    # 8x8 input: 3x3 windows with padding span 2*8 + 3 = 19 pixels.
    assert _crossbar_table(mapping) == {
        "conv1": (9, 16, 1, 1, 19), "block_conv1": (144, 16, 1, 1, 19),
        "block_conv2": (144, 16, 1, 1, 19), "conv3": (144, 16, 1, 1, 19), "fc": (16, 10, 1, 1, 1)}
    assert mapping.crossbars == 5
    add = mapping.layer("block_add")
    assert add.skip_input == "conv1" and add.skip_min_words == 2 * 8 + 2
    assert mapping.layer("gap").buffer == "none"
    assert [l.name for l in mapping.layers if l.role == "fused"] == [
        "relu1", "block_relu1", "block_relu2", "relu3"]


@pytest.mark.parametrize("name", ["resnet8", "resnet20", "resnet32"])
def test_resnet_skip_fifo_minimum_depths(name):
    mapping = map_network(load_network(name), "default")
    for join in (l for l in mapping.layers if l.role == "join"):
        stage, block = int(join.name[1]), int(join.name[3])
        w = 32 >> (stage - 1)
        if block == 1 and stage > 1:
            # Projection skip: join pixel (y, x) waits for input (2y+3, 2x+3), before which the
            # 1x1 stride-2 projection has produced rows 0..y+1: (y+2)*W - (yW + x) <= 2W.
            assert (join.skip_input, join.skip_min_words) == (f"{join.name[:4]}_proj", 2 * w)
        else:
            # Identity skip after two 3x3 convs: pixel j waits for input j + 2W + 2, and the
            # skip FIFO holds pixels j .. j + 2W + 1 while the main path takes that one.
            assert join.skip_min_words == 2 * w + 2
        assert join.skip_min_words < join.buffer_words <= join.skip_min_words + 16
        assert join.buffer_bits == join.buffer_words * join.out_shape.c * 8


@pytest.mark.parametrize("name", ["digits", "resnet8", "resnet20", "resnet32"])
def test_frame_buffers_and_skip_fifos_hold_whole_images(name):
    net = load_network(name)
    mapping = map_network(net, load_arch("default", buffer="frame"))
    for layer in mapping.layers:
        if layer.role in ("crossbar", "pool"):
            assert (layer.buffer, layer.buffer_words) == ("frame", 2 * layer.in_shape.pixels)
        if layer.role == "join":
            # Main path: two frame-buffered convs, each a whole image behind; a projection skip
            # path is one image behind, an identity one not at all; plus the few beats the main
            # path's registers hold.
            lag = 1 if layer.skip_input.endswith("proj") else 2
            assert lag * layer.output_pixels <= layer.buffer_words <= lag * layer.output_pixels + 5
    line = map_network(net, load_arch("default", buffer="line"))
    assert mapping.crossbars == line.crossbars
    assert mapping.cycles_per_image == line.cycles_per_image
    assert mapping.activation_memory_bits > 5 * line.activation_memory_bits


def _flatten_net():
    return Network("flat", [Input("x", Shape(4, 4, 2)), Conv2d("c", "x", 8, kernel=3, padding=1),
                            ReLU("r", "c"), Flatten("f", "r"), Dense("d", "f", 10)])


def test_dense_after_flatten_is_an_h_by_h_window():
    mapping = map_network(_flatten_net(), load_arch("small", buffer="line"))
    d = mapping.layer("d")
    assert (d.kernel, d.rows, d.cols, d.row_tiles, d.col_tiles) == (4, 4 * 4 * 8, 10, 2, 1)
    assert d.in_shape == Shape(4, 4, 8) and d.inputs == ("c",)
    assert (d.buffer, d.buffer_words, d.buffer_bits) == ("line", 16, 16 * 8 * 8)
    assert d.stage_cycles == 16  # one input pixel per cycle dominates one 8-cycle MVM
    assert mapping.layer("f").role == "fused" and mapping.output == "d"


def test_auto_uses_frame_buffers_only_for_windows_spanning_the_image():
    mapping = map_network(_flatten_net(), load_arch("default", buffer="auto"))
    assert (mapping.layer("c").buffer, mapping.layer("c").buffer_words) == ("line", 2 * 4 + 3)
    assert (mapping.layer("d").buffer, mapping.layer("d").buffer_words) == ("frame", 32)
    assert buffer_for("auto", WindowGeometry(1, 1, 4, 1)) == ("line", 1)  # 1x1: nothing to decouple
    assert buffer_for("auto", WindowGeometry(5, 5, 4, 5)) == ("frame", 50)
    assert buffer_for("auto", WindowGeometry(5, 5, 4, 3)) == ("line", 13)


def test_utilization_and_column_tiles():
    net = Network("wide", [Input("x", Shape(2, 2, 300)), Conv2d("c", "x", 70, kernel=1)])
    mapping = map_network(net, "small")  # 64x64: 300 rows in 5 tiles, 70 cols in 2
    c = mapping.layer("c")
    assert (c.row_tiles, c.col_tiles, c.tile_cols, c.crossbars) == (5, 2, 64, 10)
    assert c.utilization(mapping.arch) == pytest.approx(300 * 70 / (10 * 64 * 64))
    assert mapping.utilization == pytest.approx(300 * 70 / (10 * 64 * 64))


def _stage_times(p, t, floors, r):
    return [max(-(-pi // ri) * ti, fi) for pi, ti, fi, ri in zip(p, t, floors, r)]


def test_replication_is_optimal_against_brute_force(seeds):
    for seed in seeds(60):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 4))
        p = rng.integers(1, 25, n).tolist()
        t = rng.integers(1, 9, n).tolist()
        tiles = rng.integers(1, 4, n).tolist()
        floors = [int(rng.integers(0, pi + 1)) for pi in p]
        bound = int(rng.integers(0, 40))
        budget = int(sum(tiles) + rng.integers(0, 3 * sum(tiles) + 1))
        best, fewest = None, None
        for r in itertools.product(*(range(1, pi + 1) for pi in p)):
            cost = sum(ri * ni for ri, ni in zip(r, tiles))
            if cost <= budget:
                time = max(_stage_times(p, t, floors, r) + [bound])
                if best is None or (time, cost) < (best, fewest):
                    best, fewest = time, cost
        r = replication(p, t, tiles, budget, floors=floors, bound=bound)
        assert max(_stage_times(p, t, floors, r) + [bound]) == best, seed
        assert sum(ri * ni for ri, ni in zip(r, tiles)) == fewest <= budget, seed


@pytest.mark.parametrize("name", ["digits", "resnet8", "resnet20", "resnet32"])
@pytest.mark.parametrize("factor", ["1x", "1.5x", "2x", "3x", "8x"])
def test_replication_never_exceeds_the_budget(name, factor):
    mapping = map_network(load_network(name), "default", core_budget=factor)
    minimum = mapping.min_crossbars
    assert mapping.core_budget == int(float(factor[:-1]) * minimum)
    assert minimum <= mapping.crossbars <= mapping.core_budget
    unreplicated = map_network(load_network(name), "default")
    assert mapping.cycles_per_image <= unreplicated.cycles_per_image
    # Any layer one copy short would exceed the achieved bound: no copy is wasted.
    for layer in mapping.crossbar_layers:
        if layer.replication > 1:
            fewer = -(-layer.output_pixels // (layer.replication - 1)) * layer.interval
            assert fewer > mapping.cycles_per_image


def test_double_budget_halves_the_resnet32_bound():
    base = map_network(load_network("resnet32"), "default")
    double = map_network(load_network("resnet32"), "default", core_budget="2x")
    assert base.cycles_per_image == 8192 and base.bottleneck[0] == "conv1"
    # 62 crossbars more: the eleven 32x32 layers (1 crossbar each) get 4 copies (2048 cycles),
    # stage 2 stays at 2048; 2x the throughput would need only 2 copies, 4x needs these 33.
    assert double.cycles_per_image == 2048
    assert {l.name: l.replication for l in double.crossbar_layers if l.replication > 1} == {
        "conv1": 4, **{f"s1b{b}_conv{c}": 4 for b in range(1, 6) for c in (1, 2)}}


def test_budget_errors():
    net = load_network("resnet8")
    with pytest.raises(UserError, match=r"^core_budget: core budget 13 is below the minimum 14 crossbars"):
        map_network(net, "default", core_budget=13)
    with pytest.raises(UserError, match=r"^core_budget: core budget 10 is below the minimum 14"):
        map_network(net, load_arch("default", core_budget=10))
    for bad in ("two", "0x", "-1x", "x", True):
        with pytest.raises(UserError, match=r"^core_budget: must be a number of crossbars"):
            resolve_budget(bad, 14)
    assert resolve_budget("2x", 14) == 28 and resolve_budget("30", 14) == 30
    assert resolve_budget(None, 14) is None


def test_unmappable_networks_name_the_layer():
    pooled = Network("p", [Input("x", Shape(4, 4, 2)), Flatten("f", "x"), MaxPool("m", "f", kernel=1),
                           Dense("d", "m", 3)])
    with pytest.raises(UserError, match=r"layer 'm' \(maxpool\): cannot follow a flatten"):
        map_network(pooled, "default")
    with pytest.raises(UserError, match=r"network 'g': has no conv or dense layer"):
        map_network(Network("g", [Input("x", Shape(4, 4, 2)), GlobalAvgPool("g", "x")]), "default")


def test_join_on_the_network_input_buffers_8_bit_pixels():
    net = Network("res", [Input("x", Shape(4, 4, 3)), Conv2d("c", "x", 3, kernel=3, padding=1),
                          Add("a", "c", "x")])
    mapping = map_network(net, load_arch("default", act_bits=4))
    a = mapping.layer("a")
    assert a.skip_input == "x" and a.skip_min_words == 4 + 1  # 3x3 window: j + W + 1
    assert a.buffer_bits == a.buffer_words * 3 * 8
    assert mapping.layer("c").buffer_bits == mapping.layer("c").buffer_words * 3 * 8


def test_shared_requantization_passes_fit_the_slack():
    # digits on the fpga preset (one multiplier per requantizing block): every accumulator
    # takes a pass per column (its MVM interval is far longer), the join and the global pool one
    # per channel (16 x 64 pixels and 16 cycles stay within the slowest stage's 16,384)
    mapping = map_network(load_network("digits"), load_arch("fpga"))
    passes = {l.name: l.requant_passes for l in mapping.stages if l.requant_passes > 1}
    assert passes == {"conv1": 16, "block_conv1": 16, "block_conv2": 16, "block_add": 16,
                      "conv3": 16, "gap": 16, "fc": 10}
    assert mapping.layer("block_add").stage_cycles == 16 * 64 <= mapping.cycles_per_image
    # a join with little slack gets fewer passes: 8 channels of a 4x4 map behind a conv whose
    # stage takes 64 cycles (16 pixels x a 4-cycle MVM) may take 64 // 16 = 4 cycles a pixel
    net = Network("j", [Input("x", Shape(4, 4, 8)), Conv2d("a", "x", 8, kernel=1),
                        Add("s", "a", "x")])
    mapping = map_network(net, load_arch("default", mvm_cycles=4, requant_lanes=1))
    assert (mapping.layer("s").requant_passes, mapping.layer("s").stage_cycles) == (4, 64)
    assert map_network(net, load_arch("default", mvm_cycles=4)).layer("s").requant_passes == 1
