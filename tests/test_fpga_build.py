# amaranth: UnusedElaboratable=no
"""The FPGA build flow: boards and PLL dividers, nextpnr report parsing, `imcflow fpga build`
errors (one line, exit 2, no output directory), a failing tool, and one small place and route:
the ULX3S top (PLL, reset, UART, LEDs) around the accelerator `imcflow gen --target fpga` wrote
for a tiny network (2x2 pixels -> 3 logits), through the CLI, in about 40 s."""

import dataclasses
import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from amaranth.back import rtlil

from imcflow import toolchain
from imcflow.cli import main
from imcflow.errors import UserError
from imcflow.fpga import build as flow
from imcflow.fpga.boards import BOARDS, board, ecp5_pll
from imcflow.fpga.design import load_design, prepare_design
from imcflow.fpga.link import HOST_TURNAROUND_S, window_for
from imcflow.fpga.resources import memories, memory_plan, yosys_script
from imcflow.fpga.top import BoardTop, SerialAccelerator, accelerator_latency
from imcflow.fpga.uart import UartTx
from imcflow.gen.project import generate
from imcflow.sw.arch import load_arch
from imcflow.sw.perf import analyze

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
def tiny(tmp_path):
    """A 2x2 -> 3 linear network: its accelerator is small enough to place and route in seconds."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """The tiny network's accelerator as `imcflow gen --target fpga` writes it (``fpga``) and as
    it writes it for simulation (``sim``)."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "tiny.toml").write_text(TINY)
    for target in ("fpga", "sim"):
        generate(root / target, root / "tiny.toml", target=target, progress=False)
    return root


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


def test_the_build_report_is_report_json_with_the_details_in_place():
    # `BuildReport.to_json` is report.json: its fields in order, the caller's details (network,
    # arch, the crossbar estimate, ...) as top-level keys where `details` stands, so that
    # `imcflow fpga build --json`, report.json and report.md read `network` like `board`.
    names = [f.name for f in dataclasses.fields(flow.BuildReport)]
    details = {"network": "digits", "crossbar": {"luts": 5}}
    report = flow.BuildReport(**{n: n for n in names if n != "details"}, details=details)
    at = names.index("details")
    assert list(report.to_json()) == names[:at] + ["network", "crossbar"] + names[at + 1:]
    assert report.to_json()["network"] == "digits" and report.to_json()["board"] == "board"


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
    (["--seeds", "0"], "--seeds: must be a positive integer, not 0"),
    (["--nextpnr-options", "--router 'router2"], "--nextpnr-options: No closing quotation"),
    (["--nextpnr-options=--seed 2"], "--nextpnr-options: --seed is set by --seeds"),
])
def test_build_command_errors(tmp_path, capsys, tiny, argv, message):
    out = tmp_path / "out"
    argv = ["fpga", "build", "--network", str(tiny), "-o", str(out), *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"imcflow fpga: error: {message}") and len(err.splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [tiny]


@pytest.mark.parametrize("argv, message", [
    (["{sim}"], "DIR: {sim} holds the sim crossbar flavour; a board needs the fpga one "
                "(imcflow gen --target fpga)"),
    (["{fpga}", "--arch", "small"], "--arch: only with --network; DIR was generated with its own"),
    (["{fpga}", "--network", "digits"], "DIR: give the directory `imcflow gen --target fpga` "
                                        "wrote, or --network (not both)"),
    ([], "DIR: give the directory `imcflow gen --target fpga` wrote, or --network (not both)"),
    (["{tiny}"], "directory: '{tiny}' is not an accelerator written by `imcflow gen --network` "
                 "(manifest.json: Not a directory)"),
])
def test_build_command_takes_a_generated_fpga_directory(tmp_path, capsys, tiny_dir, argv, message):
    paths = {"sim": tiny_dir / "sim", "fpga": tiny_dir / "fpga", "tiny": tiny_dir / "tiny.toml"}
    out = tmp_path / "out"
    assert main(["fpga", "build", *(a.format(**paths) for a in argv), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"imcflow fpga: error: {message.format(**paths)}"
    assert not out.exists()


def test_run_takes_the_generated_directory_too(capsys, tiny_dir):
    # `fpga run DIR` reads the same directory; the tiny network was calibrated on random images,
    # so it has no labelled images to send (before any port is opened).
    assert main(["fpga", "run", str(tiny_dir / "fpga"), "--port", "/nonexistent/tty",
                 "--images", "1"]) == 2
    assert capsys.readouterr().err == (f"imcflow fpga: error: DIR: {tiny_dir / 'fpga'} has no "
                                       f"labelled held-out images; generate it with --dataset (a "
                                       f"labelled data set)\n")


def test_the_network_shortcut_is_the_generated_design(tiny_dir):
    # `fpga build --network N` builds what `imcflow gen --network N --target fpga` wrote: the
    # same top (its name carries the configuration's hash), network, mapping and design id.
    generated, prepared = load_design(tiny_dir / "fpga"), prepare_design(tiny_dir / "tiny.toml")
    assert generated.generated.name == prepared.generated.name
    assert generated.generated.mapping.to_json() == prepared.generated.mapping.to_json()
    assert generated.design_id == prepared.design_id and generated.qnet.arch.clock_mhz == 100.0
    assert (generated.field, prepared.field) == ("DIR", "--network")
    assert generated.accelerator.mapping == generated.generated.mapping


def test_a_failing_tool_leaves_no_output_and_keeps_its_log(tmp_path, capsys, tiny, monkeypatch):
    # (--network: the shortcut that prepares the accelerator as `imcflow gen` would)
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


def test_small_place_and_route_on_ulx3s(tmp_path, capsys, tiny_dir):
    # The whole ULX3S top around the generated 2x2 -> 3 accelerator: PLL to 100 MHz, reset, UART,
    # LEDs; the accelerator is the one in the directory `imcflow gen --target fpga` wrote.
    out, generated = tmp_path / "out", tiny_dir / "fpga"
    manifest = json.loads((generated / "manifest.json").read_text())
    assert main(["fpga", "build", str(generated), "--clock-mhz", "100", "-o", str(out),
                 "--nextpnr-options", "--router router2", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "yosys done" in captured.err and "nextpnr-ecp5 seed 2/2 done" in captured.err
    # nextpnr ran with the options given, the default two seeds (the real tools, each in a
    # directory of its own), and its log showed every phase, in order
    assert report["nextpnr_options"] == ["--router", "router2"]
    assert [r["seed"] for r in report["nextpnr_runs"]] == [1, 2] and report["seed"] in (1, 2)
    assert report["fmax_mhz"] == max(r["fmax_mhz"] for r in report["nextpnr_runs"])
    assert list(report["nextpnr_phase_seconds"]) == ["packing", "placing", "routing", "reporting"]
    assert "Router2 time" in (out / "build" / "top.tim").read_text()
    assert (out / "build" / "top.tim").read_text() == (
        out / "build" / f"seed{report['seed']}" / "top.tim").read_text()
    assert (report["board"], report["device"]) == ("ulx3s-85f", "LFE5U-85F")
    assert report["network"] == report["directory"] == str(generated)
    assert (report["top"], report["design_hash"], report["arch_name"]) == (
        manifest["top"], manifest["design_hash"], "fpga")
    assert report["accelerator"] == "imcflow.gen.accelerator.Accelerator"
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


FAKE_NEXTPNR = """#!/usr/bin/env python3
import json, sys, time
start = time.time()
args = sys.argv[1:]
seed = int(args[args.index("--seed") + 1])
time.sleep(0.3)
with open(args[args.index("--log") + 1], "w") as log:
    log.write("Info: Packing IOs..\\nInfo: Creating initial analytic placement for 9 cells\\n"
              "Info: Routing globals...\\nInfo: Critical path report for clock 'clk'\\n")
with open("top.report.json", "w") as report:
    json.dump({"fmax": {"clk": {"achieved": {1: 50.0, 2: 80.0, 3: 80.0}[seed], "constraint": 100.0}}},
              report)
with open("top.config", "w") as config:
    config.write(f"seed {seed}")
with open("span", "w") as span:
    span.write(f"{start} {time.time()}")
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_seeds_keep_the_best_place_and_route(tmp_path, jobs):
    # Three seeds of a stand-in nextpnr (Fmax 50, 80, 80 MHz), each in a directory of its own
    # with the build tree's inputs linked, `jobs` at a time: the first best run's outputs are
    # left in the build tree, every run is reported with its phases in order.
    fake = tmp_path / "nextpnr"
    fake.write_text(FAKE_NEXTPNR)
    fake.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "top.json").write_text("{}")
    stream = io.StringIO()
    seconds, runs = flow._place_and_route(flow._Progress(stream, every=0), "nextpnr-ecp5",
                                          [str(fake), "--log", "top.tim"], work, dict(os.environ), 3,
                                          jobs=jobs)
    assert [(r["seed"], r["fmax_mhz"]) for r in runs] == [(1, 50.0), (2, 80.0), (3, 80.0)]
    assert (work / "top.config").read_text() == "seed 2"
    assert json.loads((work / "top.report.json").read_text())["fmax"]["clk"]["achieved"] == 80.0
    assert all((work / f"seed{n}" / "top.config").read_text() == f"seed {n}" for n in (1, 2, 3))
    assert (work / "seed3" / "top.json").read_text() == "{}"   # a file: yowasp follows no links
    assert not (work / "seed3" / "top.json").is_symlink()
    assert all(list(r["phases"]) == ["packing", "placing", "routing", "reporting"] for r in runs)
    assert seconds <= sum(r["seconds"] for r in runs) + 0.5
    spans = [[float(t) for t in (work / f"seed{n}" / "span").read_text().split()] for n in (1, 2)]
    assert (spans[1][0] < spans[0][1]) == (jobs == 2)   # seed 2 starts before seed 1 ends
    err = stream.getvalue()
    assert "nextpnr-ecp5 seed 3/3 done" in err and "keeping seed 2 of 3 (Fmax 50.00, 80.00, 80.00 MHz)" in err


def test_a_failing_seed_stops_the_others(tmp_path):
    # seed 1 fails while seed 2 would run for a minute: the error names the seed and nextpnr's
    # message, and seed 2 is stopped
    fake = tmp_path / "nextpnr"
    fake.write_text("#!/usr/bin/env python3\nimport os, sys, time\n"
                    "if sys.argv[-1] == '1':\n    time.sleep(0.3)\n"
                    "    print('ERROR: no placement')\n    sys.exit(3)\n"
                    "open('pid', 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
                    "open('finished', 'w').close()\n")
    fake.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(flow.FlowError, match=r"nextpnr-ecp5 seed 1 failed \(exit 3\) after \d+ s: "
                                             r"ERROR: no placement"):
        flow._place_and_route(flow._Progress(io.StringIO(), every=0), "nextpnr-ecp5",
                              [str(fake), "--log", "top.tim"], work, dict(os.environ), 2, jobs=2)
    with pytest.raises(ProcessLookupError):   # seed 2 was killed (and reaped)
        os.kill(int((work / "seed2" / "pid").read_text()), 0)
    assert not (work / "seed2" / "finished").exists()


@pytest.mark.parametrize("board_name, clock_mhz, baud, divisor", [
    ("ulx3s-85f", 100, 3_000_000, 33),     # 3,030,303 baud: 1.0 % fast
    ("ulx3s-85f", 25, 1_000_000, 25),      # 3 Mbaud would be 4.2 % off at 25 MHz
    ("icebreaker", None, 3_000_000, 4),    # 12 MHz: exact
])
def test_board_top_link_baud_and_window(tmp_path, board_name, clock_mhz, baud, divisor):
    # Default baud: 3 Mbaud where the clock makes it; window: enough image frames in flight to
    # cover the accelerator's latency (the performance model's), its answer and the host's
    # turnaround at that clock.
    (tmp_path / "tiny.toml").write_text(TINY)
    design = prepare_design(tmp_path / "tiny.toml")
    accelerator = design.accelerator
    latency = analyze(design.generated.mapping, images=2).latency_cycles
    assert accelerator_latency(accelerator) == latency > 4
    top = BoardTop(board(board_name), accelerator, height=2, width=2, clock_mhz=clock_mhz)
    assert (top.baud, top.divisor) == (baud, divisor)
    window = window_for(4, 3, divisor=divisor, latency=latency,
                        turnaround=round(HOST_TURNAROUND_S * top.clock_hz))
    assert top.system.link.info.window == window > 2
    assert BoardTop(board(board_name), accelerator, height=2, width=2, clock_mhz=clock_mhz,
                    baud=115200, window=2).system.link.info.window == 2


def test_yosys_follows_the_memory_plan(tmp_path):
    # The plan's commands must select what they mean (Yosys silently skips modules that still
    # hold processes): the window buffer of a 2x2 -> 3 dense layer (4 read ports with a port per
    # tap, 8 bits) lands in 4 block RAMs, one per read port. Its crossbar has no multipliers
    # (adder trees over the weight bits): only the requantization multiply uses a DSP, one for
    # the 3 columns (the fpga preset's requant_lanes = 1).
    (tmp_path / "tiny.toml").write_text(TINY)
    accelerator = prepare_design(tmp_path / "tiny.toml",
                                 load_arch("fpga", window_ports=0)).accelerator
    system = SerialAccelerator(accelerator, height=2, width=2, divisor=868)
    uses = memories(system, "t")
    placement = memory_plan(uses, board("ulx3s-85f"))
    buffer, = placement["placements"]
    assert (buffer["path"], buffer["read_ports"], buffer["width"]) == ("t.accelerator.fc.window.buffer.memory", 4, 8)
    assert (buffer["style"], buffer["brams"], placement["brams"]) == ("block", 4, 4)
    assert {u.path for u in uses if u.read_ports == 1} >= {"t.link.receiver.images", "t.link.replies.storage"}
    assert memory_plan(uses, dataclasses.replace(board("ulx3s-85f"), brams=4))["placements"][0]["style"] == "distributed"

    (tmp_path / "t.il").write_text(rtlil.convert(system, name="t"))
    subprocess.run([toolchain.require("yosys"), "-q", "-p",     # yowasp sees the working directory
                    f"read_rtlil t.il; {yosys_script(placement)}; synth_ecp5 -top t; "
                    f"tee -q -o stat.txt stat"],
                   check=True, capture_output=True, cwd=tmp_path, env=toolchain.environ())
    cells = dict((name, int(n)) for n, name in
                 re.findall(r"^\s+(\d+)\s+(\w+)\s*$", (tmp_path / "stat.txt").read_text(), re.M))
    assert [a.lanes for a in accelerator.stages["fc"].layer.accumulators] == [1]
    assert cells.get("MULT18X18D") == 1 and cells.get("DP16KD") == 4


def test_a_plan_that_selects_nothing_fails_the_build(tmp_path):
    (tmp_path / "u.il").write_text(rtlil.convert(UartTx(4), name="u"))
    script = yosys_script({"placements": [
        {"path": "u.renamed.memory", "style": "block"}]})
    done = subprocess.run([toolchain.require("yosys"), "-q", "-p", f"read_rtlil u.il; {script}"],
                          capture_output=True, text=True, cwd=tmp_path, env=toolchain.environ())
    assert done.returncode != 0 and "Assertion failed: selection" in done.stdout + done.stderr
