"""`imcflow gen fifo` and `imcflow gen --network`: Verilog plus manifest (and for a network the
golden model, weight images, FuseSoC core and mapping report), lint-clean; bad arguments give one
line and exit 2, and an output directory appears whole or not at all."""

import gc
import json
import re
from pathlib import Path

import numpy as np
import pytest

from imcflow import cli, rtl
from imcflow.gen.project import load
from imcflow.sw import zoo
from imcflow.sw.inference import run
from imcflow.sw.networks import load_qnetwork


def gen(*args):
    return cli.main(["gen", *map(str, args)])


def test_gen_fifo_writes_verilog_and_manifest(tmp_path, capsys):
    out = tmp_path / "fifo"
    assert gen("fifo", "--width", 12, "--depth", 6, "-o", out, "--json") == 0
    printed = json.loads(capsys.readouterr().out)          # exactly one JSON object
    manifest = json.loads((out / "manifest.json").read_text())
    assert printed == {**manifest, "directory": str(out)}
    assert sorted(p.name for p in out.iterdir()) == [".imcflow", "fifo_w12_d6.v", "manifest.json"]
    assert manifest["parameters"] == {"width": 12, "depth": 6}
    assert (manifest["latency"], manifest["interval"]) == (1, 1)
    assert set(manifest["tools"]) >= {"imcflow", "amaranth", "verilator"}

    # The manifest's ports are the Verilog module's ports, with the same directions and widths.
    verilog = (out / "fifo_w12_d6.v").read_text()
    declared = {name: (direction, int(msb) + 1 if msb else 1) for direction, msb, name in
                re.findall(r"^\s*(input|output) (?:\[(\d+):0\] )?(\w+);", verilog, re.M)}
    assert declared == {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert declared["i__payload"] == ("input", 12) and declared["level"] == ("output", 3)

    # Lint-clean with only the width waivers, and under -Wall with only the documented waivers.
    rtl.lint(out / "fifo_w12_d6.v", wall=False)
    rtl.lint(out / "fifo_w12_d6.v", wall=True)


@pytest.mark.parametrize("args, message", [
    (["--width", 8, "--depth", 0], "fifo.depth: must be an integer in 1..65536, not 0"),
    (["--width", -3, "--depth", 4], "fifo.width: must be an integer in 1..4096, not -3"),
    (["--depth", 4], "--width: required by `imcflow gen fifo`"),
])
def test_bad_arguments_exit_2_with_one_line(args, message, tmp_path, capsys):
    assert gen("fifo", *args, "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err == f"imcflow gen: error: {message}\n"
    assert list(tmp_path.iterdir()) == []                  # nothing written, no temporaries


def test_unwritable_output_exits_2(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    assert gen("fifo", "--width", 8, "--depth", 4, "-o", tmp_path / "file" / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("imcflow gen: error: -o: ") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_not_an_integer_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        gen("fifo", "--width", "wide", "--depth", 4, "-o", tmp_path / "out")
    assert exit_.value.code == 2 and "--width" in capsys.readouterr().err


def test_failure_leaves_no_half_written_directory(tmp_path, monkeypatch):
    # An earlier output directory survives a failed generation untouched, and no temporary
    # directory is left beside it.
    out = tmp_path / "out"
    assert gen("fifo", "--width", 8, "--depth", 2, "-o", out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def failing_lint(path, top=None, *, wall=True):
        assert path.is_file()                               # the Verilog was already written
        raise rtl.LintError("injected lint failure")

    monkeypatch.setattr(rtl, "lint", failing_lint)
    with pytest.raises(rtl.LintError):
        gen("fifo", "--width", 8, "--depth", 4, "-o", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --- the whole accelerator: imcflow gen --network ------------------------------------------------

TINY = Path(__file__).parents[1] / "docs" / "examples" / "tiny_cnn.toml"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "tiny"
    assert cli.main(["gen", "--network", str(TINY), "--core-budget", "2x", "-o", str(out)]) == 0
    return out


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")   # load()'s unbuilt top
def test_gen_network_writes_the_output_directory(tiny):
    manifest = json.loads((tiny / "manifest.json").read_text())
    name = manifest["top"]
    assert re.fullmatch(r"imcflow_tiny_cnn_[0-9a-f]{8}", name)
    assert sorted(p.name for p in tiny.iterdir()) == sorted(
        [".imcflow", f"{name}.v", f"{name}.core", f"{name}_inst.v", f"{name}.sdc",
         "manifest.json", "qnet.npz", "report", "weights"])
    assert sorted(p.name for p in (tiny / "report").iterdir()) == [
        "mapping.json", "memory_latency.png", "report.md", "stage_times.png"]

    # The Verilog top's ports are the manifest's, with AXI4-Stream names and byte lanes.
    verilog = (tiny / f"{name}.v").read_text()
    top = verilog[verilog.index(f"module {name}("):]
    top = top[:top.index("endmodule")]
    declared = {n: (d, int(msb) + 1 if msb else 1) for d, msb, n in
                re.findall(r"^\s*(input|output) (?:\[(\d+):0\] )?(\w+);", top, re.M)}
    assert declared == {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert declared["s_axis_tdata"] == ("input", 8) and declared["m_axis_tdata"] == ("output", 80)
    assert {"s_axis_tvalid", "s_axis_tready", "s_axis_tlast", "m_axis_tvalid", "m_axis_tready",
            "m_axis_tlast", "clk", "rst", "status"} <= set(declared)
    assert manifest["streams"]["output"]["signed"] and manifest["streams"]["input"]["lanes"] == 1
    status = manifest["status"]
    assert status["width"] == declared["status"][1] == 4 * len(status["links"])
    rtl.lint(tiny / f"{name}.v", name)      # lint-clean, as gen checked before writing

    # The golden model in the directory is the network's quantization; the weight files hold
    # its weights (the Verilog holds them as constants).
    qnet, q = load(tiny).qnet, load_qnetwork(TINY, "default")
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1))
    assert np.array_equal(run(qnet, images), run(q, images))
    for layer in ("conv1", "conv2", "fc"):
        weight = np.load(tiny / "weights" / f"{layer}.npz")["weight"]
        assert np.array_equal(weight, q[layer].weight)
    core = (tiny / f"{name}.core").read_text()
    assert core.startswith("CAPI=2:") and f"- {name}.v" in core and f"toplevel: {name}" in core

    # Mapping and replication as the mapper chose them, and the model's prediction.
    layers = {l["name"]: l for l in manifest["layers"]}
    assert layers["conv1"]["replication"] == 4 and manifest["core_budget"] == 6
    assert manifest["model"]["deadlock"] is None and manifest["model"]["cycles_per_image"] > 0
    assert len(manifest["config_hash"]) == 16
    gc.collect()


@pytest.mark.parametrize("args, message", [
    (["--network", "digits", "--width", 8], "--width: only for `imcflow gen fifo`"),
    (["fifo", "--network", "digits"], "--network: generates a whole accelerator; leave out the "
                                      "block name 'fifo'"),
    (["fifo", "--width", 8, "--depth", 2, "--buffer", "line"], "--buffer: only for --network"),
    ([], "block: name the block to generate (fifo) or give --network for a whole accelerator"),
    (["--network", "nosuch"], f"--network: 'nosuch' is neither a zoo network "
                              f"({', '.join(zoo.names())}) nor a .toml or .onnx file"),
    (["--network", str(TINY), "--core-budget", 2], "core_budget: core budget 2 is below the "
                                                   "minimum 3 crossbars (one copy of every conv "
                                                   "and dense layer)"),
    (["--network", str(TINY), "--skip-depth-scale", 0],
     "skip_depth_scale: must be a number in (0, 16], not 0.0"),
])
def test_gen_network_bad_arguments_exit_2_and_write_nothing(args, message, tmp_path, capsys):
    assert gen(*args, "-o", tmp_path / "out") == 2
    assert capsys.readouterr().err == f"imcflow gen: error: {message}\n"
    assert list(tmp_path.iterdir()) == []
