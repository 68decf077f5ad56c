"""A generated core drops into a user's flow: a unique top and VLNV per configuration (two
configurations lint as one Verilator design, wired through their instantiation templates), the
clock and reset stated in the manifest, the Verilog header and the SDC, and no weight files that
pretend to be loaded."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from imcflow import rtl, toolchain
from imcflow.gen.project import design_hash, generate, top_name, verilog_body
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_qnetwork

TINY = Path(__file__).parents[1] / "docs" / "examples" / "tiny_cnn.toml"


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """The same network on two architectures (the default, and 64 x 64 crossbars at 200 MHz)."""
    root = tmp_path_factory.mktemp("cores")
    small = root / "small.toml"
    small.write_text("[arch]\nrows = 64\ncols = 64\nclock_mhz = 200.0\n")
    return [generate(root / "a", TINY, "default", progress=False),
            generate(root / "b", TINY, small, progress=False)]


def _modules(text: str) -> set[str]:
    return set(re.findall(r"^module (\S+?)\(", text, re.M))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_two_configurations_coexist_in_one_verilator_design(two, tmp_path):
    a, b = two
    names = [g.name for g in two]
    assert names[0] != names[1] and all(n.startswith("imcflow_tiny_cnn_") for n in names)
    assert [g.name for g in two] == [top_name("tiny_cnn", g.manifest["design_hash"]) for g in two]
    texts = [g.verilog_path.read_text() for g in two]
    assert not _modules(texts[0]) & _modules(texts[1])       # no module name in common
    cores = [(g.directory / g.manifest["fusesoc"]).read_text() for g in two]
    vlnvs = [re.search(r"^name: (\S+)$", c, re.M)[1] for c in cores]
    assert vlnvs[0] != vlnvs[1] and vlnvs[0] == f"imcflow:accelerator:{names[0]}:" + \
        json.loads((a.directory / "manifest.json").read_text())["imcflow"]
    # FuseSoC targets (run by hand with FuseSoC 2.4.7, docs/generator.md): the RTL for a core
    # that depends on this one, and lint with the waivers of manifest.json
    targets = re.findall(r"^  (\w+):$", cores[0].split("\ntargets:\n")[1], re.M)
    assert targets == ["default", "lint"] and "        mode: lint-only" in cores[0]

    # One design instantiating both through their templates, linted by Verilator as a whole.
    wrappers = []
    for g in two:
        ports = g.manifest["ports"]
        wires = "\n".join(f"  wire [{p['width'] - 1}:0] {p['name']};" for p in ports
                          if p["name"] not in ("clk", "rst"))
        outputs = [p for p in ports if p["direction"] == "output"]
        inputs = [p for p in ports if p["direction"] == "input" and p["name"] not in ("clk", "rst")]
        drive = "\n".join(f"  assign {p['name']} = {p['width']}'d0;" for p in inputs)
        sink = " ^ ".join(f"(^{p['name']})" for p in outputs)
        wrappers.append(f"module wrap_{g.name}(input clk, input rst, output y);\n{wires}\n{drive}\n"
                        f"  assign y = {sink};\n"
                        f"`include \"{g.directory / g.manifest['instantiation']}\"\nendmodule\n")
    top = tmp_path / "both.v"
    top.write_text("".join(wrappers) + "module both(input clk, input rst, output y);\n  wire ya, yb;\n"
                   + "".join(f"  wrap_{n} u{i}(.clk(clk), .rst(rst), .y(y{'ab'[i]}));\n"
                             for i, n in enumerate(names))
                   + "  assign y = ya ^ yb;\nendmodule\n")
    flags = rtl.lint_flags()
    out = subprocess.run([toolchain.require("verilator"), *flags, "-Wno-DECLFILENAME",
                          "-Wno-INCABSPATH", "--top-module", "both", str(top),
                          *(str(g.verilog_path) for g in two)],
                         capture_output=True, text=True, env=toolchain.environ())
    assert out.returncode == 0 and "%Warning" not in out.stderr, out.stderr[-3000:]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_clock_reset_and_files(two):
    a, b = two
    # the manifest names the arch and says the network had no data set (random calibration)
    assert a.manifest["arch_name"] == "default" and b.manifest["arch_name"].endswith("small.toml")
    assert a.manifest["calibration"]["dataset"] is None and not a.manifest["calibration"]["labels"]
    for g, mhz in ((a, 1000.0), (b, 200.0)):
        m, d = g.manifest, g.directory
        assert m["clock"] == {"port": "clk", "edge": "rising", "mhz": mhz}
        assert m["reset"] == {"port": "rst", "synchronous": True, "active": "high", "min_cycles": 1}
        text = g.verilog_path.read_text()
        head = text[:len(text) - len(verilog_body(text))]
        assert f"Clock: clk, rising edge, {mhz:g} MHz" in head and \
            "Reset: rst, synchronous, active high" in head
        assert verilog_body(text).startswith("/* Generated by Amaranth")
        sdc = (d / m["constraints"]).read_text()
        assert f"create_clock -name clk -period {1000 / mhz:.4f} [get_ports clk]" in sdc
        inst = (d / m["instantiation"]).read_text()
        assert re.search(rf"^{g.name} u_{g.name} \($", inst, re.M)
        assert {p["name"] for p in m["ports"]} == set(re.findall(r"^\s+\.(\w+)\s", inst, re.M))
        # the weights are constants in the Verilog; no $readmemh files are shipped
        assert not list(d.glob("weights/*.hex")) and "$readmemh" not in text
        assert all(l["weights"].endswith(".npz") for l in m["layers"] if "weights" in l)


def test_the_name_follows_the_configuration_not_the_verilog():
    q = load_qnetwork(TINY, "default")
    m = map_network(q.network, q.arch)
    base = design_hash(q, m)
    assert base == design_hash(q, m) and len(base) == 16
    assert design_hash(q, m, "fpga") != base
    q["conv1"].bias[0] += 1
    assert design_hash(q, m) != base
