"""Grouped and depthwise convolution (`imcflow.sw.ops.grouped_conv`): the block-diagonal crossbar
layout, the float reference against a dense conv with zeros outside the groups, the golden model
against each group computed on its own, the mapping and its utilization, TOML and ONNX import
(torchvision's MobileNetV2 maps), and the depthwise-separable example (ReLU6 after every conv)
through the generator and Verilator, bit-exact and on the model's cycles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imcflow.cli import main
from imcflow.errors import UserError
from imcflow.gen.project import generate
from imcflow.hw.core import CrossbarLayer
from imcflow.sw.arch import load_arch
from imcflow.sw.arith import Requantizer
from imcflow.sw.golden import crossbar_layer, windows
from imcflow.sw.inference import float_trace, trace
from imcflow.sw.ir import Conv2d, Input, Network, ReLU, Shape
from imcflow.sw.mapper import map_network
from imcflow.sw.weights import he_init
from imcflow.sw.onnx_import import import_onnx
from imcflow.sw.ops.crossbar import gather_lanes
from imcflow.sw.ops.grouped_conv import GroupedConv2d, block_diagonal
from imcflow.sw.quant import quantize
from imcflow.sw.timing import ACCUMULATOR_LATENCY
from imcflow.sw.toml_net import load_toml, loads_network
from imcflow.verif.sim import simulate
import onnx_models
from test_core import check_layer
from test_sim import check_on_model

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "depthwise_separable.toml"


def grouped_net(c_in=8, c_out=8, groups=8, kernel=3, stride=1, seed=0, size=6):
    layers = [Input("in", Shape(size, size, c_in)),
              GroupedConv2d("g", "in", c_out, kernel=kernel, stride=stride, padding=kernel // 2,
                            groups=groups), ReLU("r", "g")]
    return he_init(Network("grouped", layers), seed)


# --- layout ---------------------------------------------------------------------------------------

def test_depthwise_packs_whole_groups_per_crossbar():
    # 32 channels of 3x3 depthwise on 256x256 crossbars: 28 groups of 9 rows fill rows 0..251 of
    # the first crossbar (rows 252..255 read 0), the other 4 the start of the second.
    row_of, lanes, per_pack = block_diagonal(32, 32, 3, 32, 256, 256)
    assert per_pack == 28 and row_of[:3].tolist() == [0, 9, 18] and row_of[28] == 256
    assert len(lanes) == 256 + 4 * 9 and (lanes[252:256] == -1).all() and (lanes[:252] >= 0).all()
    # group 1's rows read channel 1 of the nine taps, in im2col order (tap * C_in + c)
    assert lanes[9:18].tolist() == [t * 32 + 1 for t in range(9)]
    assert sorted(lanes[lanes >= 0].tolist()) == list(range(9 * 32))


def test_groups_taller_than_a_crossbar_start_on_a_row_tile():
    # 2 groups of 32 channels: 288 rows each, so a group spans two row tiles and the second starts
    # at row 512; columns per group limit the packing too.
    row_of, lanes, per_pack = block_diagonal(64, 64, 3, 2, 256, 256)
    assert (per_pack, row_of.tolist(), len(lanes)) == (1, [0, 512], 800)
    assert block_diagonal(16, 64, 1, 4, 256, 8)[2] == 1    # 16 columns a group, 8 a crossbar
    assert block_diagonal(16, 64, 1, 4, 256, 32)[2] == 2   # 4 rows and 16 columns a group


# --- float reference and golden model --------------------------------------------------------------

@pytest.mark.parametrize("c_in, c_out, groups", [(8, 8, 8), (8, 16, 4), (6, 4, 2)])
def test_float_reference_is_a_conv_with_zeros_outside_the_groups(c_in, c_out, groups):
    net = grouped_net(c_in, c_out, groups, stride=2, seed=1, size=7)
    g = net["g"]
    dense = np.zeros((3, 3, c_in, c_out))
    cin_g, cout_g = c_in // groups, c_out // groups
    for k in range(groups):
        dense[:, :, k * cin_g:(k + 1) * cin_g, k * cout_g:(k + 1) * cout_g] = \
            g.weight[:, :, :, k * cout_g:(k + 1) * cout_g]
    conv = Network("dense", [Input("in", Shape(7, 7, c_in)),
                             Conv2d("g", "in", c_out, kernel=3, stride=2, padding=1,
                                    weight=dense, bias=g.bias)])
    x = np.random.default_rng(2).uniform(0, 1, (3, 7, 7, c_in))
    assert np.allclose(float_trace(net, x)["g"], float_trace(conv, x)["g"], rtol=0, atol=1e-12)


def test_golden_converts_each_group_on_its_own(seeds):
    # On 32-row crossbars three 9-row groups share one; the golden model of the whole layer equals
    # each group's own crossbar_layer: one ADC conversion of its whole dot product (with the ADC
    # shift large enough that splitting a group over two tiles would round differently).
    for seed in seeds(3):
        rng = np.random.default_rng(seed)
        arch = load_arch("default", rows=32, cols=32, adc_bits=5,
                         input_encoding=str(rng.choice(["pwm", "bit_serial"])))
        net = grouped_net(8, 8, 8, seed=seed)
        images = rng.integers(0, 256, (6, 6, 6, 8))
        q = quantize(net, arch, images)["g"]
        assert q.adc_shift > 0 and q.rows == 2 * 32 + 2 * 9  # packs of 3, 3 and 2 groups
        got = trace(quantize(net, arch, images), images)["g"]
        win = windows(images, 3, 1, 1)
        row_of, lanes, _ = block_diagonal(8, 8, 3, 8, 32, 32)
        for k in range(8):
            rows = slice(row_of[k], row_of[k] + 9)
            y = crossbar_layer(win[..., lanes[rows]], q.weight[rows, k:k + 1], q.bias[k:k + 1],
                               q.mult[k:k + 1], q.shift, signed=False, xbar_rows=arch.rows,
                               encoding=arch.input_encoding, act_bits=8, adc_bits=5,
                               adc_shift=q.adc_shift)
            assert (got[..., k].reshape(6, -1) == y[..., 0]).all(), (seed, k)


def test_programming_noise_stays_inside_the_groups():
    net = grouped_net(8, 16, 4)
    images = np.random.default_rng(0).integers(0, 256, (4, 6, 6, 8))
    q = quantize(net, load_arch("default", weight_noise=0.5, noise_seed=3), images)["g"]
    row_of, lanes, _ = block_diagonal(8, 16, 3, 4, 256, 256)
    inside = np.zeros(q.weight.shape, dtype=bool)
    for k in range(4):
        inside[row_of[k]:row_of[k] + 18, 4 * k:4 * k + 4] = True
    assert (q.weight[~inside] == 0).all() and (q.weight[inside] != 0).any()


# --- mapping -------------------------------------------------------------------------------------

def test_mapping_counts_packs_and_reports_utilization():
    m = map_network(grouped_net(32, 32, 32, size=8), "default")
    g = m.layer("g")
    assert (g.rows, g.cols, g.weights, g.row_tiles, g.col_tiles) == (292, 32, 288, 2, 1)
    assert g.crossbars == 2 and g.utilization(m.arch) == 288 / (2 * 256 * 256)
    # wider than a crossbar: 11 packs of 28 columns over two column tiles; pack 9 (columns
    # 252..279) has weights in both, every other pack in one: 12 of the 22 tiles are built
    wide = map_network(grouped_net(300, 300, 300, size=4), "default").layer("g")
    assert (wide.row_tiles, wide.col_tiles, wide.empty_tiles, wide.crossbars) == (11, 2, 10, 12)
    assert wide.weights == 9 * 300


def test_empty_tiles_of_the_layout_are_not_built(seeds):
    # 8 depthwise channels on 32 x 4 crossbars: 3 packs of 3 groups, the second spanning both
    # column tiles: 4 of the 6 tiles hold weights; the layer without the others computes
    # crossbar_layer of the whole matrix bit for bit, at a tile's latency and interval.
    arch = load_arch("default", rows=32, cols=4, mvm_cycles=1)
    m = map_network(grouped_net(8, 8, 8), arch).layer("g")
    assert (m.row_tiles, m.col_tiles, m.empty_tiles, m.crossbars) == (3, 2, 2, 4)
    for seed in seeds(2):
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, (4, 6, 6, 8))
        q = quantize(grouped_net(8, 8, 8, seed=seed), arch, images)["g"]
        layer = CrossbarLayer(q.weight, q.bias, Requantizer(q.mult, q.shift, arch.act_bits),
                              adc_shift=q.adc_shift, params=arch.crossbar)
        assert [[t is not None for t in row] for row in layer.tiles] == \
            [[True, False], [True, True], [False, True]]
        win = gather_lanes(windows(images[:1], 3, 1, 1), q.lanes)[0]
        _, edges = check_layer(layer, win, seed=seed, idle=None, backpressure=None)
        assert layer.interval == arch.mvm_interval(4) and np.diff(edges["i"]).tolist() == \
            [layer.interval] * (len(win) - 1)
        assert layer.latency == layer.tiles[0][0].latency + layer.accumulators[0].latency == \
            layer.tiles[0][0].latency + ACCUMULATOR_LATENCY
        assert (np.array(edges["o"]) - edges["i"]).tolist() == [layer.latency] * len(win)
        check_layer(layer, win, seed=seed, idle=rng.uniform(0, 0.5), backpressure=rng.uniform(0, 0.5))


# --- TOML and ONNX ------------------------------------------------------------------------------

def test_toml_schema_and_errors():
    head = '[[layers]]\nname = "in"\nkind = "input"\nshape = [6, 6, 4]\n[[layers]]\nname = "g"\n' \
           'kind = "grouped_conv"\nout_channels = 4\nkernel = 3\npadding = 1\n'
    net = loads_network(head + "groups = 2\n")
    assert net["g"].groups == 2 and net.shapes["g"] == Shape(6, 6, 4)
    with pytest.raises(UserError, match=r"layers\[1\].groups: missing; a grouped_conv layer needs it"):
        loads_network(head)
    with pytest.raises(UserError, match="layer 'g' \\(grouped_conv\\): the 6x6x4 input's 4 channels "
                                        "are not a multiple of groups 3"):
        loads_network(head.replace("out_channels = 4", "out_channels = 6") + "groups = 3\n")


def test_the_convs_checks_hold_with_the_groups_weight_shape():
    # A grouped conv is a conv: the conv's checks run on it, with the grouped weight's shape
    # (k, k, C_in / groups, C_out) in place of the dense one; its kind stays its own.
    layers = lambda **kw: [Input("in", Shape(6, 6, 4)),
                           GroupedConv2d("g", "in", 4, kernel=3, groups=2, **kw)]
    with pytest.raises(UserError, match="padding 3 must be smaller than kernel 3"):
        Network("n", layers(padding=3))
    with pytest.raises(UserError, match=r"weight shape \(3, 3, 4, 4\) does not match "
                                        r"\(k, k, C_in / groups, C_out\) = \(3, 3, 2, 4\)"):
        Network("n", layers(padding=1, weight=np.zeros((3, 3, 4, 4))))
    net = Network("n", layers(padding=1, weight=np.zeros((3, 3, 2, 4))))
    assert isinstance(net["g"], Conv2d) and (net["g"].kind, net.shapes["g"]) == (
        "grouped_conv", Shape(6, 6, 4))


def test_onnx_group_conv_imports_as_grouped_conv():
    g = onnx_models.Graph(["N", 4, 6, 6])
    x = g.node("Relu", [g.conv("input", 8, 3, "dw", pad=1, group=4)], "relu")
    model = g.model(g.node("Flatten", [g.node("GlobalAveragePool", [x], "gap")], "f", axis=1))
    net = import_onnx(model).network
    dw = net["dw"]
    assert (dw.kind, dw.groups, dw.weight.shape) == ("grouped_conv", 4, (3, 3, 1, 8))
    # the ONNX weight (M, C/group, kH, kW) transposed to HWIO, bias kept
    w = {t.name: onnx_models.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert np.array_equal(dw.weight, w["dw.weight"].transpose(2, 3, 1, 0))
    assert np.array_equal(dw.bias, w["dw.bias"])


def test_mobilenet_v2_maps(tmp_path, capsys):
    path = onnx_models.write(onnx_models.mobilenet_v2(), tmp_path / "mobilenet_v2.onnx")
    assert main(["map", "--network", str(path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    layers = {l["name"]: l for l in s["layers"]}
    depthwise = [l for l in s["layers"] if l["kind"] == "grouped_conv"]
    assert len(depthwise) == 17 and len([l for l in s["layers"] if l["kind"] == "add"]) == 10
    # block 1: 32 channels, 3x3 depthwise at 112x112: 2 crossbars (28 + 4 groups)
    assert layers["features.1.dw"]["crossbars"] == 2 and layers["features.1.dw"]["weights"] == 288
    for key in ("crossbars", "utilization", "cycles_per_image", "activation_memory_bits"):
        assert s[key] > 0, key
    print({k: s[k] for k in ("crossbars", "utilization", "cycles_per_image", "latency_cycles",
                             "activation_memory_bits")})


# --- RTL ------------------------------------------------------------------------------------------

def check_weight_files(directory, gen):
    """Each crossbar layer's weights/<layer>.npz computes the layer on its input by itself: a
    grouped conv's file carries the lanes its rows read (a conv's has none: the window in order)."""
    qnet, arch = gen.qnet, gen.mapping.arch
    s = qnet.input.shape
    outs = trace(qnet, np.random.default_rng(0).integers(0, 256, (2, s.h, s.w, s.c)))
    for l in gen.mapping.crossbar_layers:
        f, q = np.load(directory / "weights" / f"{l.name}.npz"), qnet[l.name]
        assert ("lanes" in f) == (l.kind == "grouped_conv"), l.name
        x = outs[q.inputs[0]].reshape(-1, l.in_shape.h, l.in_shape.w, l.in_shape.c)
        lanes = f["lanes"] if "lanes" in f else None
        win = gather_lanes(windows(x, l.kernel, l.stride, l.padding), lanes)
        y = crossbar_layer(win, f["weight"], f["bias"], f["mult"], int(f["shift"]), signed=q.signed,
                           xbar_rows=arch.rows, encoding=arch.input_encoding,
                           act_bits=arch.act_bits, adc_bits=arch.adc_bits,
                           adc_shift=int(f["adc_shift"]))
        assert np.array_equal(y.reshape(outs[l.name].shape), outs[l.name]), l.name


@pytest.mark.parametrize("arch", [
    "default",
    # 32 x 8 crossbars: the 4-group conv's groups (36 rows) take two row tiles each, half of its
    # 16 tiles hold no weight and are not built
    load_arch("default", rows=32, cols=8),
], ids=["default", "32x8"])
def test_depthwise_separable_example_is_bit_exact_on_the_model_timing(arch, tmp_path):
    net = load_toml(EXAMPLE)
    assert {l.kind for l in net} >= {"grouped_conv", "conv", "clip"}
    assert any(l.kind == "grouped_conv" and l.groups == net.shapes[l.input].c for l in net)
    gen = generate(tmp_path / "out", net, arch, progress=False)
    if arch != "default":
        assert gen.mapping.layer("gc2").empty_tiles == 8 and gen.mapping.layer("gc2").tiles == 8
    check_weight_files(tmp_path / "out", gen)
    f = simulate(tmp_path / "out", 3, progress=False)
    check_on_model(f)
    assert (f.images, f.bit_exact) == (3, 3)
