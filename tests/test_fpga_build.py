# amaranth: UnusedElaboratable=no
"""The FPGA build flow: boards and PLL dividers, nextpnr report parsing, `imcflow fpga build`
errors (one line, exit 2, no output directory), a failing tool, and one small place and route:
the ULX3S top (PLL, reset, UART, LEDs) around a tiny stand-in accelerator, through the CLI, in
about 40 s."""

import json
import re
from pathlib import Path

import pytest

from imcflow.cli import main
from imcflow.errors import UserError
from imcflow.fpga import build as flow
from imcflow.fpga import design as design_module
from imcflow.fpga.boards import BOARDS, board, ecp5_pll
from imcflow.fpga.standin import DenseStandIn

TINY = """name = "tiny"
seed = 3

[[layers]]
name = "input"
kind = "input"
shape = [2, 2, 1]

[[layers]]
name = "flatten"
kind = "flatten"

[[layers]]
name = "fc"
kind = "dense"
out_features = 3
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A 2x2 -> 3 linear network, and `accelerator_for` giving its stand-in (this checkout may
    have no whole-network generator; the flow around it is what is tested)."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    monkeypatch.setattr(design_module, "accelerator_for", lambda d: DenseStandIn(d.qnet))
    return path


# --- boards and clocking -------------------------------------------------------------------

def test_ecp5_pll_dividers():
    # 25 -> 100 MHz as Project Trellis' ecppll chooses: VCO 600 MHz, CLKOP_CPHASE 2.
    p = ecp5_pll(25e6, 100e6)
    assert (p.input_div, p.feedback_div, p.output_div, p.phase) == (1, 4, 6, 2)
    assert p.output_hz == 100e6 and p.vco_hz == 600e6
    for mhz in (12, 48, 65, 75, 120, 200):
        p = ecp5_pll(25e6, mhz * 1e6)
        assert 400e6 <= p.vco_hz <= 800e6 and 25e6 / p.input_div >= 3.125e6
        assert abs(p.output_hz - mhz * 1e6) / (mhz * 1e6) < 0.05
    with pytest.raises(UserError, match=r"^--clock-mhz: must be in 3.125..400 for the ECP5 PLL, not 500$"):
        ecp5_pll(25e6, 500e6)


def test_boards_do_not_need_a_programmer_to_build():
    assert list(BOARDS) == ["ulx3s-85f", "icebreaker"]
    for b in BOARDS.values():
        assert "openFPGALoader" not in b.platform().required_tools
    assert board("ulx3s-85f").clock_hz(75) == 75e6 and board("icebreaker").clock_hz(75) == 12e6
    with pytest.raises(UserError, match=r"^--board: must be one of ulx3s-85f, icebreaker, not 'foo'$"):
        board("foo")


# --- report parsing ------------------------------------------------------------------------

def _nextpnr_report(achieved):
    """The shape of ``nextpnr-ecp5 --report``: utilisation per BEL type, Fmax per clock and
    critical paths as lists of delay steps (see a real one under build/ after a build)."""
    step = lambda kind, delay, **k: {"type": kind, "delay": delay,   # noqa: E731
                                     "from": {"cell": k.get("a", "x"), "loc": [0, 0], "port": "Q"},
                                     "to": {"cell": k.get("b", "y"), "loc": [0, 0], "port": "D"},
                                     **({"sources": k["sources"]} if "sources" in k else {})}
    root = Path(flow.__file__).resolve().parent.parent
    return {
        "utilization": {"TRELLIS_COMB": {"used": 41820, "available": 83640},
                        "TRELLIS_FF": {"used": 1000, "available": 83640},
                        "DP16KD": {"used": 13, "available": 208},
                        "MULT18X18D": {"used": 156, "available": 156}},
        "fmax": {"$glbnet$clk": {"achieved": achieved, "constraint": 100.0}},
        "critical_paths": [
            {"from": "<async>", "to": "<async>", "path": [step("logic", 1.0)]},
            {"from": "posedge $glbnet$clk", "to": "posedge $glbnet$clk", "path": [
                step("clk-to-q", 0.5, a="tile.x_FF"),
                step("routing", 3.0, sources=[f"{root}/hw/crossbar.py:241", "/elsewhere/lib.v:1"]),
                step("logic", 2.0),
                step("routing", 4.0, sources=[f"{root}/hw/crossbar.py:241.5-241.9",
                                              f"{root}/hw/accumulator.py:90"]),
                step("setup", 0.2, b="tile.dot_FF"),
            ]},
        ],
    }


def test_report_parsing_and_what_binds():
    util = flow.parse_utilization(_nextpnr_report(80.0), "ecp5")
    assert util == {"luts": {"used": 41820, "available": 83640}, "ffs": {"used": 1000, "available": 83640},
                    "brams": {"used": 13, "available": 208}, "dsps": {"used": 156, "available": 156}}
    timing = flow.parse_timing(_nextpnr_report(80.0), 100e6)
    assert (timing["fmax_mhz"], timing["target_mhz"], timing["met"]) == (80.0, 100.0, False)
    cp = timing["critical_path"]
    assert (cp["from"], cp["to"], cp["logic_levels"], cp["total_ns"]) == ("tile.x_FF", "tile.dot_FF", 1, 9.7)
    assert cp["delay_ns"] == {"clk-to-q": 0.5, "logic": 2.0, "routing": 7.0, "setup": 0.2}
    assert cp["sources"] == ["hw/crossbar.py:241", "hw/accumulator.py:90"]
    limits = flow.binding_limits(util, timing)
    assert (limits["resource"], limits["utilization"], limits["binds"]) == ("dsps", 1.0, "timing")
    assert limits["timing_margin"] == -0.2
    assert flow.binding_limits(util, flow.parse_timing(_nextpnr_report(120.0), 100e6))["binds"] == "none"
    # iCE40: logic cells from nextpnr, flip-flops from Yosys' cell counts
    ice = {"utilization": {"ICESTORM_LC": {"used": 1692, "available": 5280}}}
    assert flow.parse_utilization(ice, "ice40", {"SB_DFF": 13, "SB_DFFE": 209, "SB_LUT4": 1271})["ffs"] \
        == {"used": 222, "available": 5280}


# --- the command -------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--board", "foo"], "--board: must be one of ulx3s-85f, icebreaker, not 'foo'"),
    (["--network", "nope"], "--network: 'nope' is neither a zoo network"),
    (["--clock-mhz", "500"], "--clock-mhz: must be in 3.125..400 for the ECP5 PLL, not 500"),
    (["--board", "icebreaker", "--baud", "2500000"],
     "--baud: Baud rate 2500000 is 4.0% off at 12 MHz (divisor 5); at most 2% works"),
    (["--baud", "0"], "--baud: must be a positive integer, not 0"),
])
def test_build_command_errors(tmp_path, capsys, tiny, argv, message):
    out = tmp_path / "out"
    argv = ["fpga", "build", "--network", str(tiny), "-o", str(out), *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"imcflow fpga: error: {message}") and len(err.splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [tiny]


def test_a_failing_tool_leaves_no_output_and_keeps_its_log(tmp_path, capsys, tiny, monkeypatch):
    monkeypatch.setenv("IMCFLOW_CACHE", str(tmp_path / "cache"))
    real = flow.toolchain.require
    monkeypatch.setattr(flow.toolchain, "require", lambda t: "false" if t == "yosys" else real(t))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["fpga", "build", "--network", str(tiny), "-o", str(out)])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    kept = tmp_path / "cache" / "fpga" / "failed" / "out"
    assert f"yosys failed (exit 1) after 0 s: see its log; build tree kept in {kept}" in err
    assert not out.exists() and (kept / "top.ys").exists()


def test_small_place_and_route_on_ulx3s(tmp_path, capsys, tiny):
    # The whole ULX3S top around a 2x2 -> 3 stand-in: PLL to 100 MHz, reset, UART, LEDs.
    out = tmp_path / "out"
    assert main(["fpga", "build", "--network", str(tiny), "--clock-mhz", "100", "-o", str(out),
                 "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "yosys done" in captured.err and "nextpnr-ecp5 done" in captured.err
    assert (report["board"], report["device"], report["network"]) == ("ulx3s-85f", "LFE5U-85F", str(tiny))
    assert "stand-in" in report["accelerator"]
    for name, available in (("luts", 83640), ("ffs", 83640), ("brams", 208), ("dsps", 156)):
        assert report[name]["available"] == available and 0 <= report[name]["used"] < available
    assert 100 < report["luts"]["used"] and 100 < report["ffs"]["used"]
    assert report["target_mhz"] == 100.0 and report["fmax_mhz"] > 30
    assert report["pll"] == {"input_div": 1, "feedback_div": 4, "output_div": 6, "vco_mhz": 600.0}
    assert (report["baud"], report["divisor"]) == (3_000_000, 33)
    assert report["timing"]["critical_path"]["total_ns"] > 0
    bitstream = Path(report["bitstream"])
    assert bitstream == out.resolve() / "top.bit" and b"\xff\xff\xbd\xb3" in bitstream.read_bytes()[:4096]
    assert json.loads((out / "report.json").read_text()) == report
    assert "## What binds" in (out / "report.md").read_text()


@pytest.mark.parametrize("board_name, clock_mhz, baud, divisor", [
    ("ulx3s-85f", 100, 3_000_000, 33),     # 3,030,303 baud: 1.0 % fast
    ("ulx3s-85f", 25, 1_000_000, 25),      # 3 Mbaud would be 4.2 % off at 25 MHz
    ("icebreaker", None, 3_000_000, 4),    # 12 MHz: exact
])
def test_board_top_link_baud_and_window(tmp_path, board_name, clock_mhz, baud, divisor):
    # Default baud: 3 Mbaud where the clock makes it; window: enough image frames in flight to
    # cover the stand-in's latency, its answer and the host's turnaround at that clock.
    from imcflow.fpga.link import HOST_TURNAROUND_S, window_for
    from imcflow.fpga.top import BoardTop
    from imcflow.sw.networks import load_qnetwork

    (tmp_path / "tiny.toml").write_text(TINY)
    standin = DenseStandIn(load_qnetwork(str(tmp_path / "tiny.toml"), "fpga"))
    top = BoardTop(board(board_name), standin, height=2, width=2, clock_mhz=clock_mhz)
    assert (top.baud, top.divisor) == (baud, divisor)
    window = window_for(4, 3, divisor=divisor, latency=standin.latency,
                        turnaround=round(HOST_TURNAROUND_S * top.clock_hz))
    assert top.system.link.info.window == window > 2
    assert BoardTop(board(board_name), standin, height=2, width=2, clock_mhz=clock_mhz,
                    baud=115200, window=2).system.link.info.window == 2


def test_yosys_follows_the_memory_plan(tmp_path):
    # The plan's commands must select what they mean (Yosys silently skips modules that still
    # hold processes): the window buffer of a 2x2 -> 3 dense layer (4 read ports, 8 bits) lands
    # in 4 block RAMs, one per read port. Its crossbar has no multipliers (adder trees over the
    # weight bits): only the 3 requantization multiplies use DSPs.
    import subprocess
    from dataclasses import replace

    from amaranth.back import rtlil

    from imcflow import toolchain
    from imcflow.fpga.resources import memories, memory_plan, yosys_script
    from imcflow.fpga.top import SerialAccelerator
    from imcflow.sw.networks import load_qnetwork

    (tmp_path / "tiny.toml").write_text(TINY)
    qnet = load_qnetwork(str(tmp_path / "tiny.toml"), "fpga")

    system = SerialAccelerator(DenseStandIn(qnet), height=2, width=2, divisor=868)
    uses = memories(system, "t")
    placement = memory_plan(uses, board("ulx3s-85f"))
    buffer, = placement["placements"]
    assert (buffer["path"], buffer["read_ports"], buffer["width"]) == ("t.accelerator.window.buffer.memory", 4, 8)
    assert (buffer["style"], buffer["brams"], placement["brams"]) == ("block", 4, 4)
    assert {u.path for u in uses if u.read_ports == 1} >= {"t.link.receiver.images", "t.link.replies.storage"}
    assert memory_plan(uses, replace(board("ulx3s-85f"), brams=4))["placements"][0]["style"] == "distributed"

    (tmp_path / "t.il").write_text(rtlil.convert(system, name="t"))
    subprocess.run([toolchain.require("yosys"), "-q", "-p",     # yowasp sees the working directory
                    f"read_rtlil t.il; {yosys_script(placement)}; synth_ecp5 -top t; "
                    f"tee -q -o stat.txt stat"],
                   check=True, capture_output=True, cwd=tmp_path, env=toolchain.environ())
    cells = dict((name, int(n)) for n, name in
                 re.findall(r"^\s+(\d+)\s+(\w+)\s*$", (tmp_path / "stat.txt").read_text(), re.M))
    assert cells.get("MULT18X18D") == 3 and cells.get("DP16KD") == 4


def test_a_plan_that_selects_nothing_fails_the_build(tmp_path):
    import subprocess

    from amaranth.back import rtlil

    from imcflow import toolchain
    from imcflow.fpga.resources import yosys_script
    from imcflow.fpga.uart import UartTx

    (tmp_path / "u.il").write_text(rtlil.convert(UartTx(4), name="u"))
    script = yosys_script({"placements": [
        {"path": "u.renamed.memory", "style": "block"}]})
    done = subprocess.run([toolchain.require("yosys"), "-q", "-p", f"read_rtlil u.il; {script}"],
                          capture_output=True, text=True, cwd=tmp_path, env=toolchain.environ())
    assert done.returncode != 0 and "Assertion failed: selection" in done.stdout + done.stderr
