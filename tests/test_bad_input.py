"""Malformed input, as a user would give it, through the real command line.

Every case runs ``imcflow`` in-process in an empty directory holding only the case's files and
asserts what the project promises for bad input (docs/design.md, ``errors.py``): exit status 2,
exactly one line on stderr naming the field, no traceback, nothing on stdout, and no output
directory (not even a hidden temporary) left behind. The cases cover network TOML files,
architecture TOML files, ONNX models, the manifests of generated directories and the command
line's own arguments (``-o`` included).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from imcflow import cli
from imcflow.errors import UserError
from imcflow.sw.inference import float_run
from imcflow.sw.ir import Dense, Flatten, Input, Network, Shape
from imcflow.sw.toml_net import loads_network
from onnx_models import Graph, small_cnn

# --- network TOML ---------------------------------------------------------------------------------

#: in 8x8x1 -> conv 4 (3x3, pad 1) -> relu -> flatten -> dense 10
LAYERS = [
    {"name": "in", "kind": "input", "shape": [8, 8, 1]},
    {"name": "c1", "kind": "conv", "out_channels": 4, "kernel": 3, "padding": 1},
    {"name": "r1", "kind": "relu"},
    {"name": "f", "kind": "flatten"},
    {"name": "d", "kind": "dense", "out_features": 10},
]


def _value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, list):
        return "[" + ", ".join(map(_value, v)) + "]"
    return repr(v)


def toml(layers=LAYERS, **top) -> str:
    """A network TOML file: ``top`` keys, then ``layers`` (a ``None`` value drops a key)."""
    lines = [f"{k} = {_value(v)}" for k, v in top.items()]
    for layer in layers:
        lines += ["", "[[layers]]"] + [f"{k} = {_value(v)}" for k, v in layer.items() if v is not None]
    return "\n".join(lines) + "\n"


def layers(**changes) -> list[dict]:
    """`LAYERS` with ``<layer name>={key: value}`` changes."""
    return [{**layer, **changes.get(layer["name"], {})} for layer in LAYERS]


def npz(**arrays):
    def write(path: Path):
        np.savez(path, **arrays)
    return write


GOOD = {"c1.weight": np.ones((3, 3, 1, 4)), "c1.bias": np.zeros(4), "d.weight": np.ones((256, 10))}
NET = ["map", "--network", "net.toml", "-o", "out"]


def net_case(text, fragment, *, extra=None, argv=NET):
    files = {"net.toml": text, **(extra or {})}
    return files, argv, fragment


NETWORK_CASES = {
    "not_utf8": net_case(b'name = "caf\xe9"\n' + toml().encode(),
                         "--network: net.toml is not UTF-8 text"),
    "not_toml": net_case("layers = [", "net.toml: not valid TOML"),
    "no_layers": net_case('name = "x"\n', "net.toml: layers: missing"),
    "unknown_top_key": net_case(toml(foo=1), "net.toml: foo: unknown top-level key"),
    "empty_layers": net_case("layers = []\n", "net.toml: layers: must list at least the input"),
    "first_not_input": net_case(toml(LAYERS[1:]), "net.toml: layers[0].kind: the first layer must be the input"),
    "unknown_kind": net_case(toml(layers(r1={"kind": "softmax"})), "net.toml: layers[2].kind: must be one of"),
    "missing_kind": net_case(toml(layers(r1={"kind": None})), "net.toml: layers[2].kind: missing"),
    "missing_name": net_case(toml([LAYERS[0], {k: v for k, v in LAYERS[1].items() if k != "name"}]),
                             "net.toml: layers[1].name: missing"),
    "duplicate_name": net_case(toml(layers(r1={"name": "c1"})), "net.toml: layers[2].name: duplicate"),
    "unknown_layer_key": net_case(toml(layers(c1={"dilation": 2})), "net.toml: layers[1].dilation: unknown key"),
    "channels_zero": net_case(toml(layers(c1={"out_channels": 0})),
                              "net.toml: layers[1].out_channels: must be an integer in 1..4096, not 0"),
    "channels_2_62": net_case(toml(layers(c1={"out_channels": 2**62})),
                              "net.toml: layers[1].out_channels: must be an integer in 1..4096, not 4611686018427387904"),
    "channels_string": net_case(toml(layers(c1={"out_channels": "8"})),
                                "net.toml: layers[1].out_channels: must be an integer, not '8'"),
    "channels_float": net_case(toml(layers(c1={"out_channels": 4.0})),
                               "net.toml: layers[1].out_channels: must be an integer, not 4.0"),
    "kernel_zero": net_case(toml(layers(c1={"kernel": 0, "padding": 0})),
                            "net.toml: layers[1].kernel: must be an integer in 1..32, not 0"),
    "kernel_huge": net_case(toml(layers(**{"in": {"shape": [128, 128, 1]}}, c1={"kernel": 99})),
                            "net.toml: layers[1].kernel: must be an integer in 1..32, not 99"),
    "stride_zero": net_case(toml(layers(c1={"stride": 0})),
                            "net.toml: layers[1].stride: must be an integer in 1..32, not 0"),
    "padding_ge_kernel": net_case(toml(layers(c1={"padding": 3})),
                                  "net.toml: layers[1].padding: must be smaller than kernel 3"),
    "input_75_gib": net_case(toml(layers(**{"in": {"shape": [100000, 100000, 3]}})),
                             "net.toml: layers[0].shape: height must be an integer in 1..1024, not 100000"),
    "input_two_axes": net_case(toml(layers(**{"in": {"shape": [8, 8]}})),
                               "net.toml: layers[0].shape: must be [height, width, channels]"),
    "input_zero_width": net_case(toml(layers(**{"in": {"shape": [8, 0, 1]}})),
                                 "net.toml: layers[0].shape: width must be an integer in 1..1024, not 0"),
    "input_channels": net_case(toml(layers(**{"in": {"shape": [8, 8, 100000]}})),
                               "net.toml: layers[0].shape: channels must be an integer in 1..4096"),
    "input_not_a_list": net_case(toml(layers(**{"in": {"shape": "8x8x1"}})),
                                 "net.toml: layers[0].shape: must be an array"),
    "unknown_input": net_case(toml(layers(r1={"input": "nope"})),
                              "net.toml: layers[2].input: 'nope' is not an earlier layer"),
    "later_input": net_case(toml(layers(r1={"input": "f"})),
                            "net.toml: layers[2].input: 'f' is not an earlier layer"),
    "add_one_input": net_case(toml(LAYERS[:3] + [{"name": "a", "kind": "add", "inputs": ["r1"]}]),
                              "net.toml: layers[3].inputs: an add needs exactly two inputs"),
    "add_shapes_differ": net_case(toml(LAYERS[:2] + [
        {"name": "c2", "kind": "conv", "input": "in", "out_channels": 2, "kernel": 1},
        {"name": "a", "kind": "add", "inputs": ["c1", "c2"]}]),
        "net.toml: layer 'a' (add): inputs 'c1' (8x8x4) and 'c2' (8x8x2) differ in shape"),
    "dense_on_a_map": net_case(toml(layers(d={"input": "r1"}, f={"input": "d"})[:3]
                                    + [{"name": "d", "kind": "dense", "out_features": 10}]),
                               "net.toml: layer 'd' (dense): input is a 8x8x4 map"),
    "kernel_larger_than_input": net_case(toml(layers(**{"in": {"shape": [4, 4, 1]}},
                                                     c1={"kernel": 7, "padding": 0})),
                                         "net.toml: layer 'c1' (conv): kernel 7 with padding 0 does not fit"),
    "dangling_layer": net_case(toml(LAYERS + [{"name": "extra", "kind": "relu", "input": "r1"}]),
                               "net.toml: network 'net': layer 'd' feeds nothing"),
    "seed_negative": net_case(toml(seed=-1), "net.toml: seed: must be an integer >= 0, not -1"),
    "seed_and_weights": net_case(toml(seed=1, weights="w.npz"), "net.toml: seed: only used without weights",
                                 extra={"w.npz": npz(**GOOD)}),
    "weights_missing": net_case(toml(weights="w.npz"), "net.toml: weights: cannot read"),
    "weights_not_npz": net_case(toml(weights="w.npz"), "is not a NumPy .npz file",
                                extra={"w.npz": "not a zip"}),
    "weights_missing_array": net_case(toml(weights="w.npz"), "net.toml: weights: no array 'd.weight'",
                                      extra={"w.npz": npz(**{k: v for k, v in GOOD.items() if k != "d.weight"})}),
    "weights_nan": net_case(toml(weights="w.npz"),
                            "net.toml: weights: array 'c1.weight' has NaN or infinite values",
                            extra={"w.npz": npz(**{**GOOD, "c1.weight": np.full((3, 3, 1, 4), np.nan)})}),
    "bias_inf": net_case(toml(weights="w.npz"), "net.toml: weights: array 'c1.bias' has NaN or infinite values",
                         extra={"w.npz": npz(**{**GOOD, "c1.bias": np.array([0, np.inf, 0, 0])})}),
    "weights_wrong_shape": net_case(toml(weights="w.npz"), "net.toml: layer 'c1' (conv): weight shape (3, 3, 2, 4)",
                                    extra={"w.npz": npz(**{**GOOD, "c1.weight": np.ones((3, 3, 2, 4))})}),
    "weights_extra_array": net_case(toml(weights="w.npz"), "net.toml: weights: array 'zz.weight' belongs to no",
                                    extra={"w.npz": npz(**GOOD, **{"zz.weight": np.ones(2)})}),
    "weights_not_numbers": net_case(toml(weights="w.npz"), "net.toml: weights: array 'c1.weight' must hold numbers",
                                    extra={"w.npz": npz(**{**GOOD, "c1.weight": np.full((3, 3, 1, 4), "x")})}),
    "features_2_40": net_case(toml(layers(d={"out_features": 2**40})),
                              "net.toml: layers[4].out_features: must be an integer in 1..4096"),
    "map_too_large": net_case(toml(layers(**{"in": {"shape": [1024, 1024, 3]}}, c1={"out_channels": 64})),
                              "net.toml: layer 'c1' (conv): its 1024x1024x64 output has 67108864 values; "
                              "at most 4194304"),
    "layer_too_large": net_case(toml(layers(**{"in": {"shape": [64, 64, 16]}}, c1={"out_channels": 1024},
                                            d={"out_features": 4096})),
                                "net.toml: layer 'd' (dense): has 17179869184 weights; at most 134217728"),
}

# --- architecture TOML ----------------------------------------------------------------------------

ARCH = ["map", "--network", "digits", "--arch", "a.toml", "-o", "out"]


def arch_case(text, fragment, argv=ARCH):
    return {"a.toml": text}, argv, fragment


ARCH_CASES = {
    "not_utf8": arch_case(b"rows = 64 # \xff\n", "--arch: a.toml is not UTF-8 text"),
    "not_toml": arch_case("rows = = 3", "--arch: a.toml is not valid TOML"),
    "unknown_field": arch_case("foo = 1", "arch: unknown field 'foo'"),
    "rows_zero": arch_case("rows = 0", "arch.rows: must be an integer in 1..4096, not 0"),
    "rows_2_70": arch_case(f"rows = {2**62}", "arch.rows: must be an integer in 1..4096"),
    "rows_string": arch_case('rows = "64"', "arch.rows: must be an integer in 1..4096, not '64'"),
    "adc_bits": arch_case("adc_bits = 99", "arch.adc_bits: must be an integer in 2..16, not 99"),
    "encoding": arch_case('input_encoding = "thermometer"', "arch.input_encoding: must be one of 'pwm', 'bit_serial'"),
    "clock_nan": arch_case("clock_mhz = nan", "arch.clock_mhz: must be a number in (0, 100000.0], not nan"),
    "clock_inf": arch_case("clock_mhz = inf", "arch.clock_mhz: must be a number in (0, 100000.0], not inf"),
    "noise": arch_case("weight_noise = 2.0", "arch.weight_noise: must be a number in [0.0, 1.0], not 2.0"),
    "buffer": arch_case('buffer = "ring"', "arch.buffer: must be one of 'line', 'frame', 'auto'"),
    "arch_not_a_table": arch_case("arch = 3", "expected a table of architecture fields"),
    "bit_serial_too_fast": arch_case('input_encoding = "bit_serial"\nmvm_cycles = 4',
                                     "arch.mvm_cycles: bit_serial input needs at least act_bits = 8"),
    "missing_file": ({}, ARCH, "--arch: cannot read 'a.toml'"),
    "not_a_preset": ({}, ["map", "--network", "digits", "--arch", "huge", "-o", "out"],
                     "--arch: 'huge' is neither a preset"),
}

# --- ONNX -----------------------------------------------------------------------------------------

ONNX = ["map", "--network", "m.onnx", "-o", "out"]


def save(model: onnx.ModelProto, **external):
    def write(path: Path):
        onnx.save(model, str(path), **external)
    return write


def _one_conv(out=4, shape=("N", 2, 8, 8), weights=True, opset=13):
    g = Graph(list(shape), weights=weights)
    return g.model(g.conv("input", out, 3, "conv", pad=1), opset=opset)


def _poisoned(name: str, value: float):
    model = small_cnn()
    (t,) = [t for t in model.graph.initializer if t.name == name]
    a = numpy_helper.to_array(t).copy()
    a.flat[0] = value
    t.CopyFrom(numpy_helper.from_array(a, name))
    return save(model)


def _external(mutate):
    """small_cnn with external data in w.bin, then ``mutate(directory, model_path)``."""
    def write(path: Path):
        onnx.save(small_cnn(), str(path), save_as_external_data=True, location="w.bin",
                  size_threshold=0)
        mutate(path.parent, path)
    return write


def _truncate(directory, path):
    data = (directory / "w.bin").read_bytes()
    (directory / "w.bin").write_bytes(data[:len(data) // 2])


def _outside(directory, path):
    (directory / "w.bin").rename(directory.parent / "w.bin")
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../w.bin"
    onnx.save(model, str(path))


def _dynamic(path: Path):
    model = _one_conv()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    onnx.save(model, str(path))


def _group(path: Path):
    g = Graph(["N", 2, 8, 8])
    w = g.const("w", np.ones((6, 1, 3, 3), np.float32))
    onnx.save(g.model(g.node("Conv", ["input", w], "conv", 6, group=3, kernel_shape=[3, 3])), str(path))


def _sigmoid(path: Path):
    g = Graph(["N", 2, 8, 8])
    onnx.save(g.model(g.node("Sigmoid", ["input"], "act")), str(path))


ONNX_CASES = {
    "not_onnx": ({"m.onnx": b"\xff\xfe not a protobuf"}, ONNX, "--network: m.onnx is not an ONNX model"),
    "missing": ({}, ONNX, "--network: cannot read 'm.onnx'"),
    "opset_10": ({"m.onnx": save(_one_conv(opset=10))}, ONNX, "onnx model 'm': opset 10 is not supported"),
    "unsupported_op": ({"m.onnx": _sigmoid}, ONNX, "onnx node 'act' (Sigmoid): op Sigmoid is not supported"),
    "group_conv": ({"m.onnx": _group}, ONNX, "onnx node 'conv' (Conv): weight has 1 input channels "
                                              "per group, 3 groups: 3, the input 2"),
    "dynamic_height": ({"m.onnx": _dynamic}, ONNX, "onnx model 'm': input 'input' has shape ['N', 2, 'H', 8]"),
    "nan_weight": ({"m.onnx": _poisoned("stem.weight", np.nan)}, ONNX,
                   "onnx initializer 'stem.weight': has NaN or infinite values"),
    "inf_bias": ({"m.onnx": _poisoned("fc.bias", -np.inf)}, ONNX,
                 "onnx initializer 'fc.bias': has NaN or infinite values"),
    "external_short": ({"m.onnx": _external(_truncate)}, ONNX,
                       "': external data w.bin holds 100 bytes from offset"),
    "external_outside": ({"m.onnx": _external(_outside)}, ONNX,
                         "onnx initializer 'stem.weight': external data '../w.bin' is outside the "
                         "model's folder"),
    "channels_100000": ({"m.onnx": save(_one_conv(out=100000, weights=False))}, ONNX,
                        "layer 'conv': out_channels: must be an integer in 1..4096, not 100000"),
    "input_100000": ({"m.onnx": save(_one_conv(shape=("N", 3, 100000, 100000), weights=False))}, ONNX,
                     "layer 'input': shape.h: must be an integer in 1..1024, not 100000"),
}

# --- manifests of generated directories -----------------------------------------------------------

SIM = ["sim", "acc", "--images", "1"]
FULL = {"format": 1, "top": "t", "verilog": "t.v", "core_budget": None, "timing": {},
        "skip_fifos": [], "options": {}, "config_hash": "x", "status": {}, "mapping": {}, "files": {}}


def manifest(obj):
    return {"acc/manifest.json": obj if isinstance(obj, str) else json.dumps(obj)}


MANIFEST_CASES = {
    "no_directory": ({}, SIM, "directory: 'acc' is not an accelerator written by `imcflow gen --network`"),
    "no_manifest": ({"acc/notes.txt": "x"}, SIM, "(manifest.json: No such file or directory)"),
    "not_json": (manifest("{top: "), SIM, "is not an accelerator written by `imcflow gen --network` (manifest.json:"),
    "a_list": (manifest([1, 2]), SIM, "has a manifest.json of another format (expected format 1)"),
    "other_format": (manifest({**FULL, "format": 99}), SIM, "has a manifest.json of another format"),
    "missing_top": (manifest({k: v for k, v in FULL.items() if k != "top"}), SIM,
                    "manifest.json.top: missing in 'acc'"),
    "missing_timing": (manifest({k: v for k, v in FULL.items() if k != "timing"}), SIM,
                       "manifest.json.timing: missing in 'acc'"),
    "timing_not_object": (manifest({**FULL, "timing": 3}), SIM, "manifest.json.timing: must be an object, not 3"),
    "budget_string": (manifest({**FULL, "core_budget": "2x"}), SIM,
                      "manifest.json.core_budget: must be an integer or null, not '2x'"),
}

# --- command-line arguments -----------------------------------------------------------------------

FIFO = ["gen", "fifo", "--width", "8", "--depth", "4"]
CLI_CASES = {
    "unknown_command": ({}, ["frobnicate"], "unknown command 'frobnicate'"),
    "map_without_network": ({}, ["map", "-o", "out"], "the following arguments are required: --network"),
    "unknown_option": ({}, ["map", "--network", "digits", "--colour"], "unrecognized arguments: --colour"),
    "bad_buffer": ({}, ["map", "--network", "digits", "--buffer", "ring"], "--buffer: invalid choice: 'ring'"),
    "unknown_network": ({}, ["map", "--network", "nope", "-o", "out"], "--network: 'nope' is neither a zoo network"),
    "budget_word": ({}, ["map", "--network", "digits", "--core-budget", "lots", "-o", "out"], "core_budget: must be"),
    "budget_zero": ({}, ["map", "--network", "digits", "--core-budget", "0", "-o", "out"], "core_budget: "),
    "map_o_empty": ({}, ["map", "--network", "digits", "-o", ""], "-o: must name an output directory"),
    "map_o_dot": ({}, ["map", "--network", "digits", "-o", "."], "-o: '.' is the current directory"),
    "map_o_dot_force": ({}, ["map", "--network", "digits", "-o", ".", "--force"], "-o: '.' is the current directory"),
    "map_o_parent": ({}, ["map", "--network", "digits", "-o", ".."], "-o: '..' contains the current directory"),
    "map_o_file": ({"afile": "mine"}, ["map", "--network", "digits", "-o", "afile"], "-o: 'afile' exists and is not a directory"),
    "map_o_foreign": ({"keep/notes.txt": "mine"}, ["map", "--network", "digits", "-o", "keep"],
                      "-o: 'keep' is a non-empty directory imcflow did not write"),
    "gen_o_empty": ({}, [*FIFO, "-o", ""], "-o: must name an output directory"),
    "gen_o_dot": ({}, [*FIFO, "-o", "."], "-o: '.' is the current directory"),
    "gen_o_file": ({"afile": "mine"}, ["gen", "--network", "digits", "-o", "afile"], "-o: 'afile' exists and is not a directory"),
    "gen_o_foreign": ({"keep/notes.txt": "mine"}, [*FIFO, "-o", "keep"], "imcflow did not write"),
    "gen_o_under_a_file": ({"afile": "mine"}, [*FIFO, "-o", "afile/out"], "-o: cannot write output directory 'afile/out'"),
    "gen_nothing": ({}, ["gen", "-o", "out"], "block: name the block to generate"),
    "gen_width_for_network": ({}, ["gen", "--network", "digits", "--width", "8", "-o", "out"], "--width: only for"),
    "gen_network_and_block": ({}, ["gen", "fifo", "--network", "digits", "-o", "out"], "--network: generates a whole"),
    "fifo_depth_zero": ({}, ["gen", "fifo", "--width", "8", "--depth", "0", "-o", "out"], "fifo.depth: must be an integer in 1..65536"),
    "fifo_missing_depth": ({}, ["gen", "fifo", "--width", "8", "-o", "out"], "--depth: required by `imcflow gen fifo`"),
    "fifo_width_word": ({}, ["gen", "fifo", "--width", "wide", "--depth", "4", "-o", "out"], "--width: invalid int value"),
    "skip_scale_negative": ({}, ["gen", "--network", "digits", "--skip-depth-scale", "-1", "-o", "out"],
                            "skip_depth_scale: must be a number in (0, 16], not -1.0"),
    "fpga_board": ({}, ["fpga", "build", "--board", "foo", "-o", "out"], "--board: must be one of"),
    "fpga_baud": ({}, ["fpga", "build", "--baud", "0", "-o", "out"], "--baud: must be a positive integer"),
    "fpga_o_dot": ({}, ["fpga", "build", "-o", "."], "-o: '.' is the current directory"),
    "fpga_run_timeout": ({}, ["fpga", "run", "--port", "/dev/null", "--images", "1", "--timeout", "0"],
                         "--timeout: must be a positive number"),
    "demo_o_empty": ({}, ["demo", "-o", ""], "-o: must name an output directory"),
    "demo_o_foreign": ({"keep/notes.txt": "mine"}, ["demo", "-o", "keep"], "imcflow did not write"),
    "dataset_float_images": ({"d.npz": npz(images=np.full((2, 8, 8, 1), np.nan), labels=np.zeros(2, int))},
                             ["accuracy", "--network", "digits", "--dataset", "d.npz"],
                             "--dataset: d.npz: images must be integers 0..255"),
    "accuracy_unlabelled": net_case(toml(), "--network: accuracy needs labelled held-out images",
                                    argv=["accuracy", "--network", "net.toml"]),
}

CASES = {f"{group}-{name}": case for group, cases in (
    ("network", NETWORK_CASES), ("arch", ARCH_CASES), ("onnx", ONNX_CASES),
    ("manifest", MANIFEST_CASES), ("cli", CLI_CASES)) for name, case in cases.items()}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, monkeypatch, capsys):
    files, argv, fragment = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name, content in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    before = _files(tmp_path)
    try:
        status = cli.main(argv)
    except SystemExit as e:          # argparse's own errors exit 2 after one usage line
        status = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert status == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert fragment in err, err
    assert out == ""
    assert _files(tmp_path) == before                    # no output, no hidden temporary


def test_the_suite_is_large():
    assert len(CASES) >= 60


# --- the same rules for library callers ----------------------------------------------------------

def test_non_finite_parameters_and_inputs_are_refused_by_name():
    def net(weight, bias=None):
        return Network("n", [Input("in", Shape(2, 2, 1)), Flatten("f", "in"),
                             Dense("d", "f", 3, weight=weight, bias=bias)])

    with pytest.raises(UserError, match=r"^layer 'd' \(dense\): weight has NaN or infinite values$"):
        net(np.full((4, 3), np.inf))
    with pytest.raises(UserError, match=r"^layer 'd' \(dense\): bias has NaN or infinite values$"):
        net(np.ones((4, 3)), np.array([0, np.nan, 0]))
    with pytest.raises(UserError, match=r"^inputs: has NaN or infinite values$"):
        float_run(net(np.ones((4, 3))), np.full((1, 2, 2, 1), np.nan))


def test_the_base_network_of_the_cases_is_valid():
    # Each network case breaks one thing in a network that is otherwise fine.
    assert loads_network(toml()).shapes["d"] == Shape(1, 1, 10)
