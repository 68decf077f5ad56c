"""Fmax of single accelerator stages on the ECP5, placed and routed out of context: minutes, not
the full build's half hour, for iterating on a critical path.

    python benchmarks/fpga_stage_timing.py [--network digits] [--arch fpga] [--stage NAME ...]
                                           [--clock-mhz 100] [--nextpnr-opt=--router=router2 ...]
                                           [--json]

Each stage of the generated accelerator (`imcflow.gen.accelerator.Accelerator`; default: every
stage that is not a crossbar, i.e. the pools and joins, plus the first crossbar stage) is wrapped
with a register on every port, so every timed path runs from a flip-flop to a flip-flop as inside
the full design, synthesized with Yosys ``synth_ecp5`` and placed and routed by nextpnr-ecp5
``--out-of-context`` on the ULX3S's LFE5U-85F-6 at the target clock. Prints, per stage, the
cells used, Fmax, the critical path (logic, routing, levels, imcflow source lines) and the tool
times. An uncongested stage alone routes shorter than in the full design, so its Fmax is an
upper bound for the same logic there; the critical path's logic delay is the part a pipeline
register removes.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module, Signal, Value
from amaranth.lib.wiring import In

from imcflow import toolchain
from imcflow.fpga.build import parse_timing
from imcflow.gen.accelerator import Accelerator
from imcflow.sw.arch import load_arch
from imcflow.sw.datasets import calibrated
from imcflow.sw.mapper import map_network

#: nextpnr-ecp5 device options of the ULX3S-85F
DEVICE = ["--85k", "--package", "CABGA381", "--speed", "6"]


class Registered(Elaboratable):
    """``block`` with a flip-flop between each of its ports and a top-level port of the same
    name: every path of the block starts and ends at a register, as inside the accelerator."""

    def __init__(self, block):
        self.block, self.pairs = block, []
        for path, member, value in block.signature.flatten(block):
            value = Value.cast(value)
            top = Signal(value.shape(), name="p_" + "_".join(str(p) for p in path))
            self.pairs.append((member.flow == In, top, value))
        self.ports = [top for _, top, _ in self.pairs]

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = self.block
        for inward, top, inner in self.pairs:
            m.d.sync += inner.eq(top) if inward else top.eq(inner)
        return m


def run(tool: str, args: list[str], cwd: Path) -> tuple[float, float]:
    """Run ``tool``; its wall and CPU seconds (user + system)."""
    start, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([toolchain.require(tool), *args], cwd=cwd, env=toolchain.environ(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        lines = [ln for ln in done.stdout.splitlines() if "ERROR" in ln] or done.stdout.splitlines()[-5:]
        raise SystemExit(f"{tool} failed in {cwd}: {lines[0] if lines else done.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (time.monotonic() - start,
            after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def phase_times(log: Path) -> dict:
    """nextpnr's own wall-clock times of its placer and router passes, from its log."""
    found = {}
    for key, pattern in (("heap_s", r"HeAP Placer Time: ([\d.]+)s"),
                         ("sa_s", r"SA placement time ([\d.]+)s"),
                         ("router1_s", r"Router1 time ([\d.]+)s"),
                         ("router2_s", r"Router2 time ([\d.]+)s")):
        values = [float(v) for v in re.findall(pattern, log.read_text(errors="replace"))]
        if values:
            found[key] = round(sum(values), 2)
    return found


def stage_timing(name: str, block, clock_mhz: float, nextpnr_opts: list[str], work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    top = Registered(block)
    (work / "top.il").write_text(rtlil.convert(top, name="top", ports=top.ports))
    (work / "top.ys").write_text("read_rtlil top.il\nsynth_ecp5 -top top\nwrite_json top.json\n")
    yosys = run("yosys", ["-q", "-l", "top.rpt", "top.ys"], work)
    nextpnr = run("nextpnr-ecp5", [*DEVICE, "--json", "top.json", "--out-of-context",
                                   "--freq", str(clock_mhz), "--report", "report.json",
                                   "--timing-allow-fail", "--log", "top.tim", *nextpnr_opts], work)
    report = json.loads((work / "report.json").read_text())
    timing = parse_timing(report, clock_mhz * 1e6)
    cells = {bel: v["used"] for bel, v in report["utilization"].items() if v["used"]}
    return {"stage": name, "block": type(block).__name__, "fmax_mhz": timing["fmax_mhz"],
            "target_mhz": clock_mhz, "met": timing["met"], "critical_path": timing["critical_path"],
            "cells": cells, "seconds": {"yosys": round(yosys[0], 1), "nextpnr": round(nextpnr[0], 1)},
            "cpu_seconds": {"yosys": round(yosys[1], 1), "nextpnr": round(nextpnr[1], 1)},
            "phases": phase_times(work / "top.tim"),
            "work": str(work)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="digits")
    parser.add_argument("--arch", default="fpga")
    parser.add_argument("--stage", action="append", default=None,
                        help="a stage to build (repeatable; default: pools, joins, first crossbar)")
    parser.add_argument("--clock-mhz", type=float, default=100.0)
    parser.add_argument("--nextpnr-opt", action="append", default=[],
                        help="an extra nextpnr option, e.g. --nextpnr-opt=--router=router2")
    parser.add_argument("-o", "--output", default=None, help="keep the build trees here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    arch = load_arch(args.arch)
    qnet = calibrated(args.network, arch)[0]
    core = Accelerator(qnet, map_network(qnet.network, arch))
    roles = {l.name: l.role for l in core.mapping.stages}
    names = args.stage or ([n for n in core.stages if roles[n] != "crossbar"]
                           + [next(n for n in core.stages if roles[n] == "crossbar")])
    unknown = [n for n in names if n not in core.stages]
    if unknown:
        print(f"fpga_stage_timing: error: --stage: no stage {unknown[0]!r} (stages: "
              f"{', '.join(core.stages)})", file=sys.stderr)
        return 2
    opts = [o.replace("=", " ", 1).split(" ", 1) if o.startswith("--") and "=" in o else [o]
            for o in args.nextpnr_opt]
    opts = [part for o in opts for part in o]
    root = Path(args.output or tempfile.mkdtemp(prefix="imcflow-stage-timing-"))
    results = []
    for name in names:
        r = stage_timing(name, core.stages[name], args.clock_mhz, opts, root / name)
        results.append(r)
        if not args.json:
            cp = r["critical_path"] or {}
            d = cp.get("delay_ns", {})
            print(f"{name:>12} ({r['block']}): Fmax {r['fmax_mhz']:.1f} MHz "
                  f"({'met' if r['met'] else 'NOT met'} at {args.clock_mhz:g}); critical path "
                  f"{cp.get('total_ns', 0):.2f} ns = {d.get('logic', 0):.2f} logic in "
                  f"{cp.get('logic_levels', 0)} cells + {d.get('routing', 0):.2f} routing; "
                  f"from {', '.join(cp.get('sources', [])[:4]) or '?'}; cells {r['cells']}; "
                  f"yosys {r['seconds']['yosys']:.0f} s ({r['cpu_seconds']['yosys']:.0f} s CPU), "
                  f"nextpnr {r['seconds']['nextpnr']:.0f} s ({r['cpu_seconds']['nextpnr']:.0f} s "
                  f"CPU; {r['phases']})",
                  flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
