"""The FPGA fit check: a resource estimate from the mapping (`imcflow.fpga.resources.estimate`)
refuses a design that cannot fit its board in seconds, before any synthesis, and on the digits
ULX3S build it is close to what Yosys and nextpnr measured (docs/fpga.md)."""

from __future__ import annotations

import dataclasses

import pytest

from imcflow.cli import main
from imcflow.fpga import build as flow
from imcflow.fpga.boards import BOARDS
from imcflow.fpga.resources import estimate
from imcflow.sw.arch import load_arch
from imcflow.sw.ir import AvgPool, Conv2d, Input, MaxPool, Network, Shape
from imcflow.sw.mapper import map_network
from imcflow.sw.ops.grouped_conv import GroupedConv2d
from imcflow.sw.networks import load_qnetwork

#: the full digits build on the ULX3S-85F (docs/fpga.md, `benchmarks/fpga_build.py`)
MEASURED = {"luts": 59_701, "ffs": 21_168, "brams": 117, "dsps": 122}


def _estimate(network, board, arch="fpga"):
    q = load_qnetwork(network, arch)
    return estimate(map_network(q.network, q.arch), BOARDS[board])


def test_digits_estimate_against_the_measured_build():
    e = _estimate("digits", "ulx3s-85f")
    # DSPs (one per requantized channel) and block RAMs (one copy of a window buffer per read
    # port) are counted exactly; LUT4s and flip-flops are modelled from single-block runs.
    assert (e.dsps, e.brams) == (MEASURED["dsps"], MEASURED["brams"])
    for name in ("luts", "ffs"):
        assert 0.8 < getattr(e, name) / MEASURED[name] < 1.2, (name, getattr(e, name))
    assert e.fits(BOARDS["ulx3s-85f"]) and not e.fits(BOARDS["icebreaker"])
    # the crossbar layers with 144-row tiles are the largest consumers
    top = sorted(e.consumers, key=e.consumers.get, reverse=True)[:3]
    assert set(top) == {"block_conv1", "block_conv2", "conv3"}


def test_a_grouped_convs_empty_tiles_cost_nothing():
    # 8 depthwise 3x3 channels on 32 x 4 crossbars: 2 of the 3 x 2 tiles hold no weight and
    # are not built, so their adder trees are not counted
    net = Network("dw", [Input("in", Shape(4, 4, 8)),
                         GroupedConv2d("g", "in", 8, kernel=3, padding=1, groups=8)])
    mapping = map_network(net, load_arch("fpga", rows=32, cols=4))
    assert mapping.layer("g").empty == ((0, 1), (2, 0))
    every_tile = dataclasses.replace(mapping, layers=tuple(
        dataclasses.replace(l, empty=()) for l in mapping.layers))
    built, counted = (estimate(m, BOARDS["ulx3s-85f"]) for m in (mapping, every_tile))
    assert built.luts < counted.luts and built.dsps == counted.dsps


def test_an_average_pool_takes_a_dsp_per_channel():
    def pooled(pool):
        net = Network("p", [Input("in", Shape(6, 6, 2)), Conv2d("c", "in", 5, kernel=3, padding=1),
                            pool("p", "c", kernel=2, stride=2)])
        return estimate(map_network(net, load_arch("fpga")), BOARDS["ulx3s-85f"])
    # the average's requantization multiply per output channel; a max pool has none
    assert pooled(AvgPool).dsps == pooled(MaxPool).dsps + 5


def test_the_estimate_follows_the_architecture():
    base = _estimate("digits", "ulx3s-85f")
    wide = _estimate("digits", "ulx3s-85f", load_qnetwork("digits", "fpga").arch.replace(
        col_parallelism=2))
    assert wide.luts > base.luts and wide.dsps == base.dsps
    serial = _estimate("digits", "ulx3s-85f", load_qnetwork("digits", "fpga").arch.replace(
        input_encoding="bit_serial"))
    assert serial.luts < base.luts * 0.6 and serial.brams == base.brams


def test_a_design_that_cannot_fit_is_refused_before_synthesis(tmp_path, capsys, monkeypatch):
    def no_synthesis(*args, **kwargs):
        raise AssertionError("the flow ran")

    monkeypatch.setattr(flow, "build_board", no_synthesis)
    out = tmp_path / "out"
    assert main(["fpga", "build", "--board", "icebreaker", "--network", "resnet8",
                 "-o", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and len(err.splitlines()) == 1
    assert err.startswith("imcflow fpga: error: --network: resnet8 cannot fit icebreaker "
                          "(iCE40UP5K): estimated ")
    assert "LUT4 of 5,280" in err and "DSP of 8" in err and "; largest: " in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_interrupted_build_leaves_no_temporary(tmp_path, capsys, monkeypatch):
    # Ctrl-C while a tool runs: exit 130, no output directory and no hidden `.out.*` temporary.
    net = tmp_path / "tiny.toml"
    net.write_text('name = "tiny"\nseed = 3\n[[layers]]\nname = "input"\nkind = "input"\n'
                   'shape = [2, 2, 1]\n[[layers]]\nname = "flatten"\nkind = "flatten"\n'
                   '[[layers]]\nname = "fc"\nkind = "dense"\nout_features = 3\n')
    def interrupted(self, tool, argv, cwd, env):
        assert cwd.parent.name.startswith(".out.")           # inside the temporary directory
        raise KeyboardInterrupt

    monkeypatch.setattr(flow._Progress, "run", interrupted)
    assert main(["fpga", "build", "--network", str(net), "-o", str(tmp_path / "out")]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]
