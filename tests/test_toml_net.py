"""TOML networks: the documented examples load, weights round-trip, every malformed file is a
one-line `UserError` naming the field."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from imcflow.errors import UserError
from imcflow.sw import zoo
from imcflow.sw.inference import float_run, run
from imcflow.sw.ir import LAYER_KINDS, Dense
from imcflow.sw.networks import load_network, load_qnetwork
from imcflow.sw.toml_net import LAYER_KEYS, load_toml, loads_network

#: the network examples (docs/examples also holds arch and sweep files)
EXAMPLES = sorted(p for p in (Path(__file__).parents[1] / "docs" / "examples").glob("*.toml")
                  if "[[layers]]" in p.read_text())

INPUT = '[[layers]]\nname = "in"\nkind = "input"\nshape = [8, 8, 1]\n'
CONV = '[[layers]]\nname = "c"\nkind = "conv"\nout_channels = 4\nkernel = 3\npadding = 1\n'
#: every kind, the core ones first as the schema lists them (then the other kind modules)
KINDS = ", ".join(LAYER_KEYS)
assert KINDS.startswith("input, conv, dense, relu, maxpool, avgpool, global_avg_pool, add, flatten")


def test_schema_covers_every_layer_kind():
    assert set(LAYER_KEYS) == set(LAYER_KINDS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_load_quantize_and_run(path, rng):
    net = load_network(path)
    assert net.name == path.stem
    s = net.shapes[net.input.name]
    images = rng.integers(0, 256, (2, s.h, s.w, s.c))
    qnet = load_qnetwork(str(path))
    assert run(qnet, images).shape == (2, 10)
    assert float_run(net, images / 255).shape == (2, 10)


def test_examples_cover_the_documented_cases():
    kinds = {p.stem: {l.kind for l in load_toml(p)} for p in EXAMPLES}
    assert {"tiny_cnn", "residual_projection", "pooling"} <= set(kinds)
    assert {"maxpool", "avgpool", "global_avg_pool"} <= kinds["pooling"]
    proj = load_toml(EXAMPLES[[p.stem for p in EXAMPLES].index("residual_projection")])["block_proj"]
    assert (proj.kernel, proj.stride, proj.input) == (1, 2, "stem_relu")


def test_default_input_is_the_previous_layer_and_names_default_to_the_file(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text(INPUT + CONV + '[[layers]]\nname = "r"\nkind = "relu"\n')
    net = load_toml(path)
    assert net.name == "net" and net["c"].input == "in" and net["r"].input == "c"


def test_random_initialisation_is_seeded():
    text = 'seed = 5\n' + INPUT + CONV
    a, b = loads_network(text)["c"].weight, loads_network(text)["c"].weight
    c = loads_network(text.replace("seed = 5", "seed = 6"))["c"].weight
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.allclose(loads_network(text)["c"].bias, 0)
    assert 0.2 < a.std() / np.sqrt(2 / 9) < 5  # He: std sqrt(2 / fan_in)


def test_weights_from_npz(tmp_path, rng):
    w, b = rng.normal(size=(3, 3, 1, 4)), rng.normal(size=4)
    np.savez(tmp_path / "w.npz", **{"c.weight": w, "c.bias": b})
    net = loads_network('weights = "w.npz"\n' + INPUT + CONV, base_dir=tmp_path)
    assert np.array_equal(net["c"].weight, w) and np.array_equal(net["c"].bias, b)
    np.savez(tmp_path / "nobias.npz", **{"c.weight": w})
    assert loads_network('weights = "nobias.npz"\n' + INPUT + CONV, base_dir=tmp_path)["c"].bias is None


@pytest.mark.parametrize("arrays,message", [
    ({}, "weights: no array 'c.weight' for the conv layer"),
    ({"c.weight": np.zeros((3, 3, 1, 4)), "d.weight": np.zeros(2)},
     "weights: array 'd.weight' belongs to no conv or dense layer"),
    ({"c.weight": np.zeros((3, 3, 2, 4))}, "layer 'c' (conv): weight shape (3, 3, 2, 4) does not match"),
    ({"c.weight": np.zeros((3, 3, 1, 4)), "c.bias": np.zeros(5)}, "layer 'c' (conv): bias shape (5,)"),
])
def test_bad_weights(tmp_path, arrays, message):
    np.savez(tmp_path / "w.npz", **arrays)
    with pytest.raises(UserError) as e:
        loads_network('weights = "w.npz"\n' + INPUT + CONV, source="net.toml", base_dir=tmp_path)
    assert str(e.value).startswith("net.toml: ") and message in str(e.value)


def test_unreadable_weights(tmp_path):
    (tmp_path / "w.npz").write_text("not a zip")
    for name, message in (("missing.npz", "weights: cannot read"), ("w.npz", "is not a NumPy .npz file")):
        with pytest.raises(UserError, match=message):
            loads_network(f'weights = "{name}"\n' + INPUT + CONV, base_dir=tmp_path)


MALFORMED = [
    ("syntax", 'name = \n' + INPUT, "not valid TOML"),
    ("no_layers", 'name = "x"\n', "layers: missing"),
    ("unknown_top_key", 'colour = 1\n' + INPUT, "colour: unknown top-level key; allowed: name, weights, seed, layers"),
    ("layers_type", 'layers = 3\n', "layers: must be an array, not 3"),
    ("layers_empty", 'layers = []\n', "layers: must list at least the input layer"),
    ("layer_not_table", 'layers = [1]\n', "layers[0]: must be a table, not 1"),
    ("name_type", 'name = 3\n' + INPUT, "name: must be a string, not 3"),
    ("missing_kind", INPUT + '[[layers]]\nname = "c"\nkernel = 3\n',
     f"layers[1].kind: missing; one of {KINDS}"),
    ("unknown_kind", INPUT + '[[layers]]\nname = "c"\nkind = "convolution"\n',
     f"layers[1].kind: must be one of {KINDS}, not 'convolution'"),
    ("first_not_input", CONV, "layers[0].kind: the first layer must be the input, not 'conv'"),
    ("second_input", INPUT + CONV + INPUT.replace('"in"', '"in2"'), "layers[2].kind: only the first layer can be an input"),
    ("unknown_key", INPUT + CONV.replace("kernel", "kernal"),
     "layers[1].kernal: unknown key for a conv layer; allowed: name, kind, input, out_channels, kernel, stride, padding"),
    ("missing_name", INPUT + '[[layers]]\nkind = "relu"\n', "layers[1].name: missing"),
    ("name_not_string", INPUT + '[[layers]]\nname = 7\nkind = "relu"\n', "layers[1].name: must be a string, not 7"),
    ("empty_name", INPUT + '[[layers]]\nname = ""\nkind = "relu"\n', "layers[1].name: must not be empty"),
    ("duplicate_name", INPUT + CONV + CONV, "layers[2].name: duplicate layer name 'c'"),
    ("kernel_string", INPUT + CONV.replace("kernel = 3", 'kernel = "3"'), "layers[1].kernel: must be an integer, not '3'"),
    ("kernel_bool", INPUT + CONV.replace("kernel = 3", "kernel = true"), "layers[1].kernel: must be an integer, not True"),
    ("stride_float", INPUT + CONV + "stride = 1.5\n", "layers[1].stride: must be an integer, not 1.5"),
    ("negative_stride", INPUT + CONV + "stride = -1\n", "layers[1].stride: must be an integer in 1..32, not -1"),
    ("negative_padding", INPUT + CONV.replace("padding = 1", "padding = -1"), "layers[1].padding: must be an integer in 0..31, not -1"),
    ("zero_channels", INPUT + CONV.replace("out_channels = 4", "out_channels = 0"), "layers[1].out_channels: must be an integer in 1..4096, not 0"),
    ("padding_ge_kernel", INPUT + CONV.replace("padding = 1", "padding = 3"), "layers[1].padding: must be smaller than kernel 3, not 3"),
    ("pool_padding_ge_kernel", INPUT + '[[layers]]\nname = "p"\nkind = "maxpool"\nkernel = 2\npadding = 2\n',
     "layers[1].padding: must be smaller than kernel 2, not 2"),
    ("missing_out_channels", INPUT + CONV.replace("out_channels = 4\n", ""), "layers[1].out_channels: missing; a conv layer needs it"),
    ("unknown_input", INPUT + CONV + '[[layers]]\nname = "r"\nkind = "relu"\ninput = "nope"\n',
     "layers[2].input: 'nope' is not an earlier layer (earlier: in, c)"),
    ("input_later", INPUT + CONV.replace('padding = 1', 'padding = 1\ninput = "r"') + '[[layers]]\nname = "r"\nkind = "relu"\n',
     "layers[1].input: 'r' is not an earlier layer (earlier: in)"),
    ("input_type", INPUT + '[[layers]]\nname = "r"\nkind = "relu"\ninput = ["in"]\n', "layers[1].input: must be a string, not ['in']"),
    ("add_one_input", INPUT + CONV + '[[layers]]\nname = "a"\nkind = "add"\ninputs = ["c"]\n',
     "layers[2].inputs: an add needs exactly two inputs, not ['c']"),
    ("add_input_type", INPUT + CONV + '[[layers]]\nname = "a"\nkind = "add"\ninputs = ["c", 1]\n',
     "layers[2].inputs: must be a string, not 1"),
    ("add_missing_inputs", INPUT + CONV + '[[layers]]\nname = "a"\nkind = "add"\ninput = "c"\n',
     "layers[2].input: unknown key for a add layer; allowed: name, kind, inputs"),
    ("bad_shape", '[[layers]]\nname = "in"\nkind = "input"\nshape = [8, 8]\n',
     "layers[0].shape: must be [height, width, channels], not [8, 8]"),
    ("shape_mismatch_add", INPUT + CONV + CONV.replace('"c"', '"c2"').replace("padding = 1", "padding = 0\ninput = \"in\"")
     + '[[layers]]\nname = "a"\nkind = "add"\ninputs = ["c", "c2"]\n',
     "layer 'a' (add): inputs 'c' (8x8x4) and 'c2' (6x6x4) differ in shape"),
    ("dense_on_map", INPUT + CONV + '[[layers]]\nname = "d"\nkind = "dense"\nout_features = 10\n',
     "layer 'd' (dense): input is a 8x8x4 map"),
    ("kernel_too_big", INPUT + CONV.replace("kernel = 3", "kernel = 11").replace("padding = 1", "padding = 0"),
     "layer 'c' (conv): kernel 11 with padding 0 does not fit the 8x8x1 input"),
    ("flatten_not_square", INPUT.replace("[8, 8, 1]", "[8, 4, 1]") + '[[layers]]\nname = "f"\nkind = "flatten"\n',
     "layer 'f' (flatten): only square maps can be flattened"),
    ("dangling", INPUT + CONV + '[[layers]]\nname = "r"\nkind = "relu"\ninput = "in"\n', "layer 'c' feeds nothing"),
    ("negative_seed", 'seed = -2\n' + INPUT, "seed: must be an integer >= 0, not -2"),
    ("seed_and_weights", 'seed = 1\nweights = "w.npz"\n' + INPUT, "seed: only used without weights"),
    ("weights_type", 'weights = 1\n' + INPUT, "weights: must be a string, not 1"),
]


@pytest.mark.parametrize("text,message", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_toml_names_the_field(text, message):
    with pytest.raises(UserError) as e:
        loads_network(text, source="bad.toml")
    text = str(e.value)
    assert "\n" not in text
    assert text.startswith("bad.toml: ") and message in text, text


def test_load_network_specs(tmp_path):
    assert zoo.names()[0] == "digits"
    zoo_names = re.escape(", ".join(zoo.names()))
    with pytest.raises(UserError, match=f"--network: 'model.pb' is neither a zoo network \\("
                                        f"{zoo_names}\\) nor a .toml or .onnx file"):
        load_network("model.pb")
    with pytest.raises(UserError, match="--network: cannot read"):
        load_network(tmp_path / "missing.toml")
    assert load_network("digits").name == "digits"


def test_conv_and_dense_weights_follow_the_ir_layout():
    net = load_toml(EXAMPLES[[p.stem for p in EXAMPLES].index("tiny_cnn")])
    for layer in net:
        if layer.kind == "conv":
            assert layer.weight.shape == (layer.kernel, layer.kernel,
                                          net.shapes[layer.input].c, layer.out_channels)
        if isinstance(layer, Dense):
            assert layer.weight.shape == (net.shapes[layer.input].c, layer.out_features)
