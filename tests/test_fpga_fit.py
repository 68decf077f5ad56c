"""The FPGA fit check: a resource estimate from the mapping (`imcflow.fpga.resources.estimate`)
refuses a design that cannot fit its board in seconds, before any synthesis, and on the digits
ULX3S build it is close to what Yosys and nextpnr measured (docs/fpga.md)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import signed, unsigned

from imcflow import toolchain
from imcflow.cli import main
from imcflow.fpga import build as flow
from imcflow.fpga.boards import BOARDS
from imcflow.fpga.resources import MemoryUse, estimate, memories, memory_plan, yosys_script
from imcflow.hw.accumulator import AdcAccumulator
from imcflow.hw.crossbar import CrossbarTile
from imcflow.hw.pool import GlobalAvgPool
from imcflow.hw.residual import Join
from imcflow.sw.arch import load_arch
from imcflow.sw.arith import Requantizer
from imcflow.sw.datasets import calibrated
from imcflow.sw.ir import AvgPool, Conv2d, Input, MaxPool, Network, Shape
from imcflow.sw.mapper import map_network
from imcflow.sw.ops.grouped_conv import GroupedConv2d
from imcflow.sw.networks import load_qnetwork
from small_networks import small_net

#: the full digits build on the ULX3S-85F (docs/fpga.md, `benchmarks/fpga_build.py`), made
#: before the `fpga` preset folded rows, with the arch it had
MEASURED = {"luts": 59_701, "ffs": 21_168, "brams": 117, "dsps": 122}
# the architecture of the measured digits build: before row folds and shared multipliers
UNFOLDED = load_arch("fpga", mac_stages=3, row_folds=1, slack_folds=False, requant_lanes=0,
                     window_ports=0)


def _estimate(network, board, arch="fpga"):
    q = load_qnetwork(network, arch)
    return estimate(map_network(q.network, q.arch), BOARDS[board])


def test_digits_estimate_against_the_measured_build():
    e = _estimate("digits", "ulx3s-85f", UNFOLDED)
    # DSPs (one per requantized channel) and block RAMs (one copy of a window buffer per read
    # port) are counted exactly; LUT4s and flip-flops are modelled from single-block runs.
    assert (e.dsps, e.brams) == (MEASURED["dsps"], MEASURED["brams"])
    for name in ("luts", "ffs"):
        assert 0.8 < getattr(e, name) / MEASURED[name] < 1.2, (name, getattr(e, name))
    assert e.fits(BOARDS["ulx3s-85f"]) and not e.fits(BOARDS["icebreaker"])
    # the crossbar layers with 144-row tiles are the largest consumers
    top = sorted(e.consumers, key=e.consumers.get, reverse=True)[:3]
    assert set(top) == {"block_conv1", "block_conv2", "conv3"}


def test_shared_requantization_multipliers_cut_the_dsps():
    # digits on the fpga preset: one multiplier per accumulator (5 crossbar layers) instead of
    # one per column (16 + 16 + 16 + 16 + 10), one for the global pool instead of 16, a pair
    # for the join instead of 2 x 16
    shared = _estimate("digits", "ulx3s-85f")
    each = _estimate("digits", "ulx3s-85f", load_arch("fpga", requant_lanes=0))
    assert (shared.dsps, each.dsps) == (5 + 1 + 2, 74 + 16 + 32)
    assert shared.luts == each.luts and shared.brams == each.brams


def test_one_window_port_takes_the_line_buffers_out_of_block_ram():
    # digits' four 3x3 convs read their windows over 9 cycles through one port (the fpga
    # preset's window_ports = 1): each line buffer is one LUT-RAM copy instead of 9 block-RAM
    # ones (4 DP16KD each for 128-bit words), so only the weight memories stay in block RAM
    one = _estimate("digits", "ulx3s-85f")
    each = _estimate("digits", "ulx3s-85f", load_arch("fpga", window_ports=0))
    assert (one.brams, each.brams) == (5, 5 + 3 * 9 * 4 + 9)
    assert one.luts < each.luts and one.ffs == each.ffs


@pytest.mark.parametrize("block", ["accumulator", "global pool", "join"])
def test_the_netlist_has_one_multiplier_per_shared_lane(block):
    # The estimate's DSPs are the netlist's multipliers: 16 lanes over 8 passes are 2 multipliers
    # (a pair for the join), not one per lane behind a select.
    passes, c = 8, 16
    if block == "accumulator":
        params = load_arch("fpga", requant_lanes=2, col_parallelism=16, mvm_cycles=8).crossbar
        dut = AdcAccumulator(np.zeros(c, int), Requantizer(list(range(1, c + 1)), 4, 8),
                             row_tiles=1, params=params)
    elif block == "global pool":
        dut = GlobalAvgPool(h=2, w=2, c=c, bits=8, requantizer=Requantizer(3000, 14, 8),
                            passes=passes)
    else:
        dut = Join(c=c, a_shape=unsigned(8), b_shape=signed(8),
                   requantizer=Requantizer((3, 700), 7, 8, True), passes=passes)
    assert dut.passes == passes and dut.lanes == 2
    pairs = 2 if block == "join" else 1
    assert rtlil.convert(dut).count("cell $mul ") == pairs * dut.lanes


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
    base = _estimate("digits", "ulx3s-85f", UNFOLDED)
    wide = _estimate("digits", "ulx3s-85f", UNFOLDED.replace(col_parallelism=2))
    assert wide.luts > base.luts and wide.dsps == base.dsps
    serial = _estimate("digits", "ulx3s-85f", UNFOLDED.replace(input_encoding="bit_serial"))
    assert serial.luts < base.luts * 0.6 and serial.brams == base.brams


def test_luts_per_crossbar_mac_per_cycle_of_digits():
    # digits' crossbar layers complete 64*9*16 + 2*64*144*16 + 16*144*16 + 10*16 = 341,152 MACs
    # per image, one image every 1,024 cycles (64 windows of 16 one-column steps); their tiles
    # have 9 + 3*144 + 16 = 457 rows at one column per cycle. The tiles' LUT4s by hand
    # (TREE_LUTS 2.7 per tree input bit, TILE_LUTS 100, a 16-word LUT ROM 1 LUT4 per word bit):
    # conv1 2.7*9*32 + 100 + 36 = 913.6, each 144-row tile 2.7*4608 + 100 + 576 = 13,117.6,
    # fc 2.7*16*32 + 100 + 64 = 1,546.4: 41,813 in all.
    e = _estimate("digits", "ulx3s-85f", UNFOLDED)
    x = e.crossbar()
    assert (x["macs_per_image"], x["cycles_per_image"], x["peak_macs_per_cycle"]) == (341_152, 1024, 457)
    assert e.crossbar_luts == 41_813 and x["luts"] == e.crossbar_luts < e.luts
    assert x["macs_per_cycle"] == round(341_152 / 1024, 2)
    assert x["luts_per_mac_per_cycle"] == round(41_813 * 1024 / 341_152, 2) == 125.51
    assert x["luts_per_peak_mac_per_cycle"] == round(41_813 / 457, 2)
    assert "crossbars 41,813 LUT4, 125.5 LUT4 per MAC per cycle" in e.summary(BOARDS["ulx3s-85f"])
    # slack folds alone fold conv3 4 times (36 rows per step: 2.7*36*32 + 100 + 0.8*144*8, and
    # 4 DP16KD of weights at 36 LUT4 each: 4,276) and fc 16 times (one row per step:
    # 2.7*32 + 100 + 0.8*16*8 + 36 = 324.8): 31,750 LUT4, 95.3 per MAC per cycle
    folded = _estimate("digits", "ulx3s-85f", UNFOLDED.replace(slack_folds=True))
    assert (folded.crossbar_luts, folded.cycles_per_image) == (31_750, 1024)
    assert folded.crossbar()["luts_per_mac_per_cycle"] == round(31_750 * 1024 / 341_152, 2) == 95.3
    # the `fpga` preset (16 folds, the plan's choice): 5,592 LUT4 at 16,384 cycles per image
    preset = _estimate("digits", "ulx3s-85f")
    assert (preset.crossbar_luts, preset.cycles_per_image) == (5_592, 16_384)


def test_slack_folds_cut_the_crossbar_luts_at_the_same_throughput():
    # conv3 (stride 2: 16 windows of 16 steps) has 4 times its stage time spare under the
    # slowest stages' 1,024 cycles, fc (one window of 10 columns) 102 times, capped at its 16
    # rows: they fold their rows 4 and 16 times; the throughput stays.
    q = load_qnetwork("digits", UNFOLDED)
    plain, slack = (map_network(q.network, q.arch.replace(slack_folds=s)) for s in (False, True))
    assert {l.name: l.row_folds for l in slack.stages if l.role == "crossbar"} == {
        "conv1": 1, "block_conv1": 1, "block_conv2": 1, "conv3": 4, "fc": 16}
    assert {l.row_folds for l in plain.stages} == {1}
    assert slack.cycles_per_image == plain.cycles_per_image == 1024
    assert slack.layer("conv3").interval == 64 and slack.layer("conv3").stage_cycles == 1024
    a, b = (estimate(m, BOARDS["ulx3s-85f"]) for m in (plain, slack))
    assert b.crossbar_luts < 0.8 * a.crossbar_luts
    # conv3's weights are now 64 words of 36 rows x 4 bits (4 DP16KD of 36 x 512), fc's 160
    # words of one row (1 DP16KD of 4 x 4096); 16-word memories stay LUT ROMs
    assert (a.weight_brams, b.weight_brams, b.brams - a.brams) == (0, 5, 5)
    assert b.luts_per_mac_per_cycle < 0.8 * a.luts_per_mac_per_cycle
    assert b.peak_macs_per_cycle == 9 + 2 * 144 + 144 / 4 + 16 / 16    # rows per step, summed
    # small_net at 2-cycle MVMs, one column per cycle: the slowest stage is c1 (384 cycles);
    # proj's 6 rows could take 4 folds, but 2 rows per step need only 3
    arch = load_arch("default", mvm_cycles=2, col_parallelism=1, slack_folds=True)
    folded = map_network(calibrated(small_net(), arch)[0].network, arch)
    assert {l.name: l.row_folds for l in folded.stages if l.role == "crossbar"} == {
        "c1": 1, "c2": 4, "proj": 3, "c3": 6, "d1": 16, "d2": 8}
    assert folded.cycles_per_image == 384 == max(l.stage_cycles for l in folded.stages)


def test_deep_weight_memories_go_to_block_ram_after_the_window_buffers():
    ulx3s = BOARDS["ulx3s-85f"]
    uses = [MemoryUse("top.a.weights", 64, 144, 1, 1),    # row-folded: 4 DP16KD of 36 x 512
            MemoryUse("top.b.weights", 16, 576, 1, 1),    # 16 words: a LUT ROM (Yosys' choice)
            MemoryUse("top.c.fifo", 64, 144, 1, 1),       # not a tile's weights
            MemoryUse("top.w.buffer", 100, 128, 9, 1)]    # 9 ports x 4 blocks
    placed = {p["path"]: (p["style"], p["brams"]) for p in memory_plan(uses, ulx3s)["placements"]}
    assert placed == {"top.w.buffer": ("block", 36), "top.a.weights": ("block", 4)}
    # the window buffers come first: with 40 block RAMs (36 usable) the weights stay in LUTs
    small = dataclasses.replace(ulx3s, brams=40)
    assert [p["path"] for p in memory_plan(uses, small)["placements"]] == ["top.w.buffer"]


def test_yosys_puts_a_planned_weight_memory_in_block_ram(tmp_path):
    # An 8 x 4 tile with 8 row folds reads a 32-word weight memory, which Yosys alone builds
    # from LUTs; the plan's script selects it by its path and it becomes one DP16KD.
    arch = load_arch("fpga", rows=8, cols=4, row_folds=8)
    tile = CrossbarTile([[1, -2, 3, 0]] * 8, adc_shift=0, params=arch.crossbar)
    plan = memory_plan(memories(tile, "top"), BOARDS["ulx3s-85f"])
    assert [(p["path"], p["depth"], p["style"]) for p in plan["placements"]] == [
        ("top.weights", 32, "block")]
    (tmp_path / "tile.il").write_text(rtlil.convert(tile, name="top"))
    done = subprocess.run([toolchain.require("yosys"), "-q", "-p", f"read_rtlil tile.il; "
                           f"{yosys_script(plan)}; synth_ecp5 -top top; tee -o stat.txt stat"],
                          capture_output=True, text=True, cwd=tmp_path, env=toolchain.environ())
    assert done.returncode == 0, done.stderr
    assert re.search(r"\b1\s+DP16KD", (tmp_path / "stat.txt").read_text())


def test_fpga_plan_chooses_the_fewest_luts_that_outrun_the_link(capsys):
    assert main(["fpga", "plan", "--network", "digits", "--clock-mhz", "100", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    # 3 Mbaud at 100 MHz, 64 pixels + 6 frame bytes per image: 4,285.7 images/s
    assert (p["baud"], p["link_images_per_s"]) == (3_000_000, 4285.7)
    assert p["current"]["crossbar"] == _estimate("digits", "ulx3s-85f").crossbar()
    assert [c["row_folds"] for c in p["candidates"]] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert all(c["slack_folds"] and c["fits"] for c in p["candidates"])
    # 16 folds: 16,384 cycles per image, 6,104 images/s; 32 folds: 29,696 cycles, 3,367/s
    by_folds = {c["row_folds"]: c for c in p["candidates"]}
    assert (by_folds[16]["cycles_per_image"], by_folds[16]["outruns_link"]) == (16_384, True)
    assert (by_folds[32]["cycles_per_image"], by_folds[32]["outruns_link"]) == (29_696, False)
    assert p["fits"] and p["choice"] == 16
    assert p["arch"] == {"row_folds": 16, "slack_folds": True, "mac_stages": 3}
    # the adder-tree registers keep the preset's 5/4 tree levels per stage (9 rows per step)
    assert [c["mac_stages"] for c in p["candidates"]] == [7, 6, 5, 4, 3, 3, 2, 1, 0]
    assert min((c for c in p["candidates"] if c["outruns_link"]),
               key=lambda c: c["luts"]["used"])["row_folds"] == 16
    assert by_folds[16]["luts"]["used"] < 0.5 * by_folds[1]["luts"]["used"]
    # the `fpga` preset is that choice
    assert p["current"] == by_folds[16]
    # the text form: a row per candidate and the choice
    assert main(["fpga", "plan", "--network", "digits", "--clock-mhz", "100"]) == 0
    text = capsys.readouterr().out
    assert "at most 4,286 images/s" in text and len(re.findall(r"  fits", text)) == 10
    assert text.rstrip().endswith("choice: row_folds = 16, slack_folds = true, mac_stages = 3 "
                                  "(the fewest LUT4 that fit and outrun the link)")


def test_fpga_plan_says_what_resnet8_needs(capsys):
    assert main(["fpga", "plan", "--network", "resnet8", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    # with the multipliers shared (one per accumulator, a pair per join, one for the global
    # pool: 10 + 3 * 2 + 1) and one read port per window buffer, the LUT4s bind at every fold:
    # too many up to 4 folds, enough from 8 on; 32 folds is the fewest LUT4 that still outrun
    # the 3 Mbaud link of the preset's 100 MHz (191 against 98 images/s)
    assert {c["binding"]["resource"] for c in p["candidates"]} == {"luts"}
    assert [c["row_folds"] for c in p["candidates"] if not c["fits"]] == [1, 2, 4]
    assert p["fits"] and p["choice"] == 32
    assert p["arch"] == {"row_folds": 32, "slack_folds": True, "mac_stages": 3}
    assert p["closest"]["dsps"]["used"] == 17 and p["closest"]["outruns_link"]
    assert main(["fpga", "plan", "--network", "resnet8"]) == 0
    assert "choice: row_folds = 32" in capsys.readouterr().out


def test_fpga_plan_errors_are_one_line(capsys):
    assert main(["fpga", "plan", "--network", "digits", "--clock-mhz", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--clock-mhz" in err


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
