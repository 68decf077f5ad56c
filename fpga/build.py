"""Synthesis, place and route and bitstream with the pip-only yowasp tools, and the build report.

`build_board` renders a `~imcflow.fpga.top.BoardTop` with Amaranth's build system for the
board's platform (``platform.build(top, do_build=False)`` gives the build plan: RTLIL, Yosys
script, constraints and the command list), then runs the plan's commands itself, one tool at a
time, with the yowasp executables from `imcflow.toolchain`: Yosys, nextpnr-ecp5 or -ice40, and
ecppack or icepack. Running them here (rather than through the plan's shell script) lets the
progress go to stderr, tool by tool, while stdout stays free for ``--json``. nextpnr runs with
``--report`` (utilisation and Fmax as JSON) and ``--timing-allow-fail`` (a design that misses
its clock still gets a bitstream and a report saying by how much).

The output directory (written atomically) holds the bitstream, the board's constraints
(``top.lpf`` or ``top.pcf``), ``report.json``, ``report.md`` and ``build/`` with the Amaranth build tree and every tool's log. If a tool fails, the partial
build tree is kept under ``$IMCFLOW_CACHE/fpga/failed/`` and the error names it.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

from imcflow import toolchain
from imcflow.errors import UserError
from imcflow.files import atomic_directory, cache_dir
from imcflow.progress import Ticker, note

__all__ = ["FlowError", "RESOURCES", "SEEDS", "BuildReport", "build_board",
           "check_nextpnr_options", "parse_utilization", "parse_timing", "binding_limits",
           "render_markdown"]

#: report name -> nextpnr BEL type, per family (iCE40 logic cells hold one LUT4 and one FF each;
#: their FFs are counted from Yosys' cell statistics, nextpnr reports only logic cells)
RESOURCES = {
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "brams": "DP16KD", "dsps": "MULT18X18D"},
    "ice40": {"luts": "ICESTORM_LC", "ffs": "ICESTORM_LC", "brams": "ICESTORM_RAM",
              "dsps": "ICESTORM_DSP"},
}
#: what each resource is, for the report
RESOURCE_NAMES = {
    "ecp5": {"luts": "LUT4 (TRELLIS_COMB, carry halves included)", "ffs": "flip-flops (TRELLIS_FF)",
             "brams": "18-kbit block RAMs (DP16KD)", "dsps": "18x18 multipliers (MULT18X18D)"},
    "ice40": {"luts": "logic cells (ICESTORM_LC, LUT4 + FF)", "ffs": "flip-flops (SB_DFF*)",
              "brams": "4-kbit block RAMs (ICESTORM_RAM)", "dsps": "16x16 MAC16 (ICESTORM_DSP)"},
}
#: the log each tool writes (to show its progress)
_LOGS = {"yosys": "top.rpt", "nextpnr-ecp5": "top.tim", "nextpnr-ice40": "top.tim"}
#: nextpnr's options beyond the build plan's (device, constraints, outputs, ``--report`` and
#: ``--timing-allow-fail``), per family; ``build_board(nextpnr_options=...)`` (``imcflow fpga
#: build --nextpnr-options``) replaces them. None yet: on a digits crossbar stage router2 took
#: 25 % more CPU than router1 for 6 % less Fmax, and --no-tmdriv cost 27 % of the Fmax
#: (docs/fpga.md, "Build time"); the whole design is not measured yet
NEXTPNR_OPTIONS = {"ecp5": (), "ice40": ()}
#: Yosys' synth_ecp5/synth_ice40 options per family: the iCE40 maps multiplies to its DSPs only
#: with -dsp (`imcflow.fpga.resources.multiplier_plan` leaves the ones beyond them to logic). The
#: ECP5 synthesis stops before its LUT mapping (`SYNTH_AFTER` maps the LUTs)
SYNTH_OPTIONS = {"ecp5": "-run :map_luts", "ice40": "-dsp"}
#: Yosys commands after synth_ecp5/synth_ice40, per family. ECP5: the LUTs are mapped by ABC
#: (`abc -lut 4:7`, LUT4s and the PFU's wide-LUT muxes), then synth_ecp5 finishes from
#: map_cells: Yosys 0.70's synth_ecp5 maps with ABC9 only, and ABC9's reintegration aborts
#: (`GetSize(conn.first) == GetSize(conn.second)` in rtlil.cc) on the digits accelerator with
#: row folds
SYNTH_AFTER = {"ecp5": "techmap -map +/lattice/latches_map.v; abc -lut 4:7 -dress; clean; "
                       "synth_ecp5 -top top -run map_cells:",
               "ice40": ""}
#: nextpnr seeds a build runs by default (at once on two cores), the best kept: the same design
#: placed with another seed reached 88 to 102 MHz at 100 (docs/fpga.md)
SEEDS = 2
#: the files a nextpnr run writes, kept per seed when several run
_NEXTPNR_OUTPUTS = ("top.config", "top.asc", "top.report.json", "top.tim")
#: nextpnr's phases, in order, and the log line that starts each
PHASES = (("reading", "Info: Reading"), ("packing", "Info: Packing"),
          ("placing", "placement"), ("placing", "placer"), ("routing", "Routing"),
          ("routing", "router"), ("reporting", "Critical path report"))
#: bitstream file per family
BITSTREAMS = {"ecp5": "top.bit", "ice40": "top.bin"}
#: constraint files of the Amaranth build plan copied beside the bitstream (ECP5 pins and
#: clocks in the LPF, iCE40 pins in the PCF, clocks in the SDC)
CONSTRAINTS = ("lpf", "pcf", "sdc")


class FlowError(RuntimeError):
    """A tool of the flow failed; the message names it, its first error and its kept log."""


# --- running the tools ---------------------------------------------------------------------------

def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


class Phases:
    """nextpnr's phase (`PHASES`) from its log, read as it grows: `detail` is the phase, its
    elapsed time and the log's last line; `seconds` the wall time of each phase seen (to the
    resolution of the calls to `detail`, twice a second under `imcflow.progress.Ticker`)."""

    def __init__(self, log: Path):
        self.log, self.offset, self.phase, self.last = log, 0, None, ""
        self.starts: dict[str, float] = {}
        self.order = [name for name, _ in PHASES]
        self.lock = threading.Lock()   # read by the progress thread and the flow's

    def _read(self) -> None:
        with self.lock:
            self._read_new_lines()

    def _read_new_lines(self) -> None:
        try:
            with open(self.log, "rb") as f:
                f.seek(self.offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return
        cut = text.rfind("\n") + 1   # whole lines only
        self.offset += len(text[:cut].encode())
        for line in text[:cut].splitlines():
            if line.strip():
                self.last = line.strip()
            for name, marker in PHASES:
                current = self.order.index(self.phase) if self.phase else -1
                if marker in line and self.order.index(name) > current:
                    self.phase = name
                    self.starts.setdefault(name, time.monotonic())

    def detail(self) -> str:
        self._read()
        if self.phase is None:
            return self.last
        return f"{self.phase} {time.monotonic() - self.starts[self.phase]:.0f} s: {self.last}"

    def seconds(self, end: float) -> dict[str, float]:
        self._read()
        names = list(self.starts)
        return {n: round((self.starts[names[k + 1]] if k + 1 < len(names) else end)
                         - self.starts[n], 1) for k, n in enumerate(names)}


class _Progress:
    """Runs the flow's tools with their progress on stderr (`imcflow.progress.Ticker`: the
    running tool, its elapsed time and its log's last line, or nextpnr's phase and its elapsed
    time, refreshed in place on a terminal, a plain line every `imcflow.progress.EVERY` seconds
    elsewhere)."""

    def __init__(self, stream=None, every: float | None = None):
        self.stream, self.every = stream, every
        self.cpu_seconds = 0.0   # of the last tool run (user + system, from its rusage)

    def line(self, text: str) -> None:
        note("fpga", text, self.stream)

    def run(self, tool: str, argv: list[str], cwd: Path, env: dict, *, label: str | None = None,
            detail=None) -> float:
        log = cwd / _LOGS[tool] if tool in _LOGS else None
        out = cwd / f"{tool}.out"
        detail = detail or ((lambda: _last_line(log)) if log else None)
        with open(out, "wb") as sink, Ticker("fpga", label or tool, detail, stream=self.stream,
                                             every=self.every) as ticker:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
            try:
                code = proc.wait()
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                self.cpu_seconds = (after.ru_utime - before.ru_utime
                                    + after.ru_stime - before.ru_stime)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            if code != 0:
                raise _tool_error(tool, code, time.monotonic() - ticker.start, out, log)
        return ticker.seconds


# --- reading the reports -------------------------------------------------------------------------

def _yosys_cells(rpt: Path) -> dict[str, int]:
    """Cell counts of the whole design from Yosys' final statistics."""
    text = rpt.read_text(errors="replace")
    text = text[text.rfind("=== design hierarchy ==="):]
    return {name: int(count) for count, name in re.findall(r"^\s+(\d+)\s+([A-Za-z_]\w*)\s*$",
                                                             text, re.M)}


def parse_utilization(report: dict, family: str, cells: dict[str, int] | None = None) -> dict:
    """``{luts, ffs, brams, dsps}``, each ``{used, available}``, from nextpnr's ``--report`` JSON
    (and, for iCE40 flip-flops, Yosys' cell counts ``cells``)."""
    util = report["utilization"]
    out = {}
    for name, bel in RESOURCES[family].items():
        entry = util.get(bel, {"used": 0, "available": 0})
        out[name] = {"used": int(entry["used"]), "available": int(entry["available"])}
    if family == "ice40":
        out["ffs"]["used"] = sum(n for c, n in (cells or {}).items() if c.startswith("SB_DFF"))
    return out


def _relative_source(source: str) -> str | None:
    """``hw/crossbar.py:285`` for a source location inside the imcflow package, else None."""
    path, _, line = source.partition(":")
    root = Path(__file__).resolve().parent.parent
    try:
        rel = Path(path).resolve().relative_to(root)
    except ValueError:
        return None
    return f"{rel.as_posix()}:{line.split('.')[0]}" if line else rel.as_posix()


def parse_timing(report: dict, target_hz: float) -> dict:
    """Fmax of each clock and the critical path of the slowest one, from nextpnr's report.

    Returns ``clocks`` (name -> ``{achieved_mhz, constraint_mhz}``), ``fmax_mhz`` (the slowest
    clock), ``target_mhz``, ``met`` and ``critical_path``: the delay split into logic, routing
    and the launching flop, the number of logic cells, its end points and the imcflow source
    lines its nets come from (what limits Fmax).
    """
    clocks = {name: {"achieved_mhz": round(v["achieved"], 2), "constraint_mhz": round(v["constraint"], 2)}
              for name, v in report.get("fmax", {}).items()}
    if not clocks:
        return {"clocks": {}, "fmax_mhz": None, "target_mhz": target_hz / 1e6, "met": None,
                "critical_path": None}
    slowest = min(clocks, key=lambda c: clocks[c]["achieved_mhz"])
    fmax = clocks[slowest]["achieved_mhz"]
    path = None
    for candidate in report.get("critical_paths", []):
        if candidate.get("from", "").endswith(slowest) and candidate.get("to", "").endswith(slowest):
            path = candidate["path"]
            break
    critical = None
    if path:
        delay = {kind: round(sum(step["delay"] for step in path if step["type"] == kind), 3)
                 for kind in ("clk-to-q", "logic", "routing", "setup")}
        sources = []
        for step in path:
            for source in step.get("sources", []):
                rel = _relative_source(source)
                if rel and rel not in sources:
                    sources.append(rel)
        critical = {
            "from": path[0]["from"]["cell"], "to": path[-1]["to"]["cell"],
            "total_ns": round(sum(delay.values()), 3), "delay_ns": delay,
            "logic_levels": sum(step["type"] == "logic" for step in path),
            "sources": sources,
        }
    return {"clocks": clocks, "fmax_mhz": fmax, "target_mhz": round(target_hz / 1e6, 3),
            "met": fmax >= target_hz / 1e6 - 1e-6, "critical_path": critical}


def binding_limits(utilization: dict, timing: dict) -> dict:
    """Which limit binds: the most used resource (fraction of the device) and, for timing, the
    slack against the target and where the critical path is."""
    fractions = {name: (r["used"] / r["available"] if r["available"] else 0.0)
                 for name, r in utilization.items()}
    resource = max(fractions, key=fractions.get)
    out = {"resource": resource, "utilization": round(fractions[resource], 4),
           "fractions": {k: round(v, 4) for k, v in fractions.items()}}
    if timing.get("fmax_mhz") is not None:
        out["timing_margin"] = round(timing["fmax_mhz"] / timing["target_mhz"] - 1, 4)
        out["binds"] = ("timing" if out["timing_margin"] < 0
                        else "area" if fractions[resource] > 1 else "none")
    return out


def render_markdown(report: dict) -> str:
    """``report.md``: the build in a few tables."""
    family, lines = report["family"], []
    arch = report.get("arch", {})
    lines += [f"# FPGA build: {report.get('network', '?')} on {report['board']}", ""]
    lines += [f"- device: {report['device']}; accelerator: {report.get('accelerator', '?')}",
              "- architecture: " + (", ".join(f"{k}={v}" for k, v in arch.items()
                                               if k in ("col_parallelism", "mvm_cycles", "buffer",
                                                        "rows", "cols", "clock_mhz")) or "?"),
              f"- host link: UART {report['baud']} baud (divisor {report['divisor']}), window "
              f"{report['window']} images, design id 0x{report['design_id']:08x}",
              f"- bitstream: `{report['bitstream']}`; build time {report['build_seconds']:.0f} s "
              f"(" + ", ".join(f"{t} {s:.0f} s" for t, s in report["tool_seconds"].items()) + ")",
              "- nextpnr " + " ".join(report.get("nextpnr_options", [])) + ": "
              + "; ".join(f"seed {r['seed']} {r['fmax_mhz']:.2f} MHz in {r['seconds']:.0f} s, "
                          f"{r['cpu_seconds']:.0f} s CPU ("
                          + ", ".join(f"{p} {s:.0f} s" for p, s in r["phases"].items()) + ")"
                          for r in report.get("nextpnr_runs", []))
              + f"; kept seed {report.get('seed')}",
              "", "## Utilisation", "", "| resource | used | available | % |",
              "| --- | ---: | ---: | ---: |"]
    for name in ("luts", "ffs", "brams", "dsps"):
        r = report[name]
        pct = 100 * r["used"] / r["available"] if r["available"] else 0
        lines.append(f"| {RESOURCE_NAMES[family][name]} | {r['used']} | {r['available']} | {pct:.1f} |")
    t = report["timing"]
    lines += ["", "## Timing", "", "| clock | Fmax (MHz) | constraint (MHz) |", "| --- | ---: | ---: |"]
    lines += [f"| `{c}` | {v['achieved_mhz']:.2f} | {v['constraint_mhz']:.2f} |"
              for c, v in t["clocks"].items()]
    verdict = "met" if t["met"] else "NOT met"
    lines += ["", f"Target {t['target_mhz']:g} MHz: {verdict} (Fmax {t['fmax_mhz']:.2f} MHz)."]
    cp = t.get("critical_path")
    if cp:
        d = cp["delay_ns"]
        lines += ["", f"Critical path {cp['total_ns']:.2f} ns from `{cp['from']}` to `{cp['to']}`: "
                      f"{d['logic']:.2f} ns in {cp['logic_levels']} logic cells, {d['routing']:.2f} ns "
                      f"routing, {d['clk-to-q'] + d['setup']:.2f} ns flop clock-to-out and setup."]
        if cp["sources"]:
            lines += ["Its nets come from: " + ", ".join(f"`{s}`" for s in cp["sources"][:12]) + "."]
    mem = report.get("memories")
    if mem and mem["placements"]:
        lines += ["", f"Multi-port memories (window buffers; {mem['brams']} of {mem['available']} "
                      f"block RAMs planned):", "",
                  "| memory | words x bits | read ports | placed in | block RAMs |",
                  "| --- | --- | ---: | --- | ---: |"]
        lines += [f"| `{p['path']}` | {p['depth']} x {p['width']} | {p['read_ports']} | "
                  f"{p['style']} | {p['brams']} |" for p in mem["placements"]]
    b = report["binding"]
    lines += ["", "## What binds", "",
              f"Most used resource: {b['resource']} at {100 * b['utilization']:.1f} % of the device "
              f"(" + ", ".join(f"{k} {100 * v:.1f} %" for k, v in b["fractions"].items()) + ")."]
    if "timing_margin" in b:
        lines.append(f"Timing margin: {100 * b['timing_margin']:+.1f} % of the target clock; "
                     f"binding limit: {b['binds']}.")
    if report.get("estimate"):
        lines += ["", "## Estimate before the build", "", report["estimate"]]
    return "\n".join(lines) + "\n"


# --- the flow ------------------------------------------------------------------------------------

def _failed_dir(name: str) -> Path:
    return cache_dir("fpga", "failed") / name


def _fmax(report: dict) -> float:
    """The slowest clock's Fmax in a nextpnr report (0 without one)."""
    return min((v["achieved"] for v in report.get("fmax", {}).values()), default=0.0)


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` a hard link to ``source``, or a copy where the file system has none."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _tool_error(tool: str, code: int, seconds: float, out: Path, log: Path | None) -> FlowError:
    text = out.read_text(errors="replace") + (log.read_text(errors="replace")
                                              if log and log.exists() else "")
    errors = [ln.strip() for ln in text.splitlines() if "ERROR" in ln]
    return FlowError(f"{tool} failed (exit {code}) after {seconds:.0f} s: "
                     f"{errors[0] if errors else 'see its log'}")


def _run_record(seed: int, cwd: Path, seconds: float, cpu_seconds: float,
                phases: dict[str, float]) -> dict:
    """A nextpnr run as ``BuildReport.nextpnr_runs`` lists it, its Fmax from the report it left
    in ``cwd``."""
    fmax = _fmax(json.loads((cwd / "top.report.json").read_text()))
    return {"seed": seed, "fmax_mhz": round(fmax, 2), "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1), "phases": phases}


def _place_and_route(progress: _Progress, tool: str, argv: list[str], work: Path, env: dict,
                     seeds: int, jobs: int | None = None) -> tuple[float, list[dict]]:
    """nextpnr with ``--seed 1 .. seeds``: one run in ``work``, or with several seeds each in
    ``work/seed<N>`` (its inputs hard-linked from ``work``), ``jobs`` at a time (default: one per
    core, at most ``seeds``; nextpnr places and routes on one core). The run with the highest
    Fmax (the first of equals) is copied into ``work``. Returns the wall seconds and, per seed,
    its Fmax, seconds, CPU seconds and phase seconds."""
    if seeds == 1:
        phases = Phases(work / _LOGS[tool])
        start = time.monotonic()
        seconds = progress.run(tool, [*argv, "--seed", "1"], work, env, detail=phases.detail)
        return seconds, [_run_record(1, work, seconds, progress.cpu_seconds,
                                     phases.seconds(start + seconds))]
    jobs = min(seeds, jobs or _cores())
    inputs = [f for f in work.iterdir() if f.is_file() and f.name not in _NEXTPNR_OUTPUTS]
    pending, running, runs = list(range(1, seeds + 1)), {}, {}

    def detail():
        return "; ".join(f"seed {seed}: {r['phases'].detail()[:40]}"
                         for seed, r in sorted(running.items()))

    label = f"{tool} seeds 1-{seeds}" + (f", {jobs} at a time" if jobs > 1 else "")
    with Ticker("fpga", label, detail, stream=progress.stream, every=progress.every) as ticker:
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    seed = pending.pop(0)
                    cwd = work / f"seed{seed}"
                    cwd.mkdir(exist_ok=True)
                    for f in inputs:   # (yowasp's tools open no path outside their directory)
                        if not (cwd / f.name).exists():
                            _link_or_copy(f, cwd / f.name)
                    (cwd / _LOGS[tool]).unlink(missing_ok=True)
                    out = cwd / f"{tool}.out"
                    with open(out, "wb") as sink:
                        proc = subprocess.Popen([*argv, "--seed", str(seed)], cwd=cwd, env=env,
                                                stdout=sink, stderr=subprocess.STDOUT)
                    running[seed] = {"proc": proc, "cwd": cwd, "out": out,
                                     "start": time.monotonic(),
                                     "phases": Phases(cwd / _LOGS[tool])}
                time.sleep(0.1)
                for seed, r in list(running.items()):
                    pid, status, usage = os.wait4(r["proc"].pid, os.WNOHANG)
                    if pid == 0:
                        continue
                    r["proc"].returncode = code = os.waitstatus_to_exitcode(status)
                    end = time.monotonic()
                    del running[seed]
                    if code != 0:
                        raise _tool_error(f"{tool} seed {seed}", code, end - r["start"], r["out"],
                                          r["cwd"] / _LOGS[tool])
                    runs[seed] = _run_record(seed, r["cwd"], end - r["start"],
                                             usage.ru_utime + usage.ru_stime,
                                             r["phases"].seconds(end))
                    progress.line(f"{tool} seed {seed}/{seeds} done in {end - r['start']:.1f} s: "
                                  f"Fmax {runs[seed]['fmax_mhz']:.2f} MHz")
        finally:
            for r in running.values():
                r["proc"].kill()
                r["proc"].wait()
    runs = [runs[seed] for seed in range(1, seeds + 1)]
    best = max(runs, key=lambda r: (r["fmax_mhz"], -r["seed"]))["seed"]
    progress.line(f"keeping seed {best} of {seeds} (Fmax " + ", ".join(
        f"{r['fmax_mhz']:.2f}" for r in runs) + " MHz)")
    for name in _NEXTPNR_OUTPUTS:
        if (work / f"seed{best}" / name).exists():
            shutil.copyfile(work / f"seed{best}" / name, work / name)
    return ticker.seconds, runs


@dataclass(frozen=True)
class BuildReport:
    """What `build_board` built: the board, each resource used (``luts``, ``ffs``, ``brams``,
    ``dsps``: ``{used, available}``), Fmax next to the target, ``timing`` (per clock, critical
    path), what binds, the clock, host link and PLL, the bitstream (absolute path) and
    constraint files, tool times, options and versions, the nextpnr runs (seed, Fmax, seconds,
    seconds per phase) and the kept seed, the ``details`` the caller gave (network, arch,
    accelerator, memory plan, estimate) and the build's seconds. `to_json` is ``report.json``
    (the details' keys at the top level), `render_markdown` of it ``report.md``."""

    board: str
    device: str
    family: str
    luts: dict[str, int]
    ffs: dict[str, int]
    brams: dict[str, int]
    dsps: dict[str, int]
    fmax_mhz: float | None
    target_mhz: float
    timing: dict
    binding: dict
    clock_hz: int
    baud: int
    divisor: int
    window: int
    design_id: int
    pll: dict | None
    bitstream: str
    constraints: list[str]
    tool_seconds: dict[str, float]
    tool_cpu_seconds: dict[str, float]
    synth_options: str
    nextpnr_options: list[str]
    nextpnr_runs: list[dict]
    nextpnr_phase_seconds: dict[str, float]
    seed: int
    tools: dict[str, str]
    details: dict
    build_seconds: float

    def to_json(self) -> dict:
        """``report.json``: every field in order, the details' keys in place of ``details``."""
        out = {}
        for f in fields(self):
            if f.name == "details":
                out.update(self.details)
            else:
                out[f.name] = getattr(self, f.name)
        return out


def _run_plan(progress: _Progress, work: Path, env: dict, seeds: int, output: Path):
    """``(seconds, CPU seconds, nextpnr runs)``: the commands of the build plan extracted into
    ``work``, one tool after the other (nextpnr once per seed, `_place_and_route`); a failed
    tool's tree is kept under `_failed_dir` and named in the `FlowError`."""
    commands = json.loads((work / "build_top.json").read_text())["commands"]
    tool_seconds, tool_cpu, runs = {}, {}, []
    try:
        for tool, *args in commands:
            argv = [toolchain.require(tool), *args]
            if tool.startswith("nextpnr"):
                seconds, runs = _place_and_route(progress, tool, argv, work, env, seeds)
                cpu = sum(r["cpu_seconds"] for r in runs)
            else:
                seconds, cpu = progress.run(tool, argv, work, env), progress.cpu_seconds
            tool_seconds[tool], tool_cpu[tool] = round(seconds, 1), round(cpu, 1)
    except FlowError as e:
        kept = _failed_dir(output.resolve().name)
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(work, kept)
        raise FlowError(f"{e}; build tree kept in {kept}") from None
    return tool_seconds, tool_cpu, runs


def check_nextpnr_options(options) -> None:
    """A `UserError` if ``options`` (nextpnr's, beyond the plan's) hold a ``--seed``: the flow
    passes one per run (``--seeds``), and nextpnr refuses a second one only after synthesis."""
    if any(o == "--seed" or o.startswith("--seed=") for o in options):
        raise UserError("--nextpnr-options: --seed is set by --seeds (seeds 1..N), not here")


def build_board(top, output: str | os.PathLike, *, details: dict | None = None,
                yosys_script: str = "", progress: _Progress | None = None,
                force: bool = False, seeds: int = SEEDS,
                nextpnr_options: tuple[str, ...] | None = None) -> BuildReport:
    """Build ``top`` (a `~imcflow.fpga.top.BoardTop`) into directory ``output``.

    Parameters
    ----------
    top : BoardTop
    output : path
        Written atomically: the bitstream (``top.bit`` for ECP5, ``top.bin`` for iCE40),
        ``report.json``, ``report.md`` and ``build/``. A new directory or one imcflow wrote,
        unless ``force`` (`imcflow.files.atomic_directory`).
    details : dict, optional
        Added to the report (network, arch, accelerator description, memory plan).
    yosys_script : str
        Yosys commands run after reading the design and before synthesis
        (`imcflow.fpga.resources.yosys_script`).
    seeds : int
        nextpnr runs with ``--seed 1`` to ``--seed seeds``, one per core at a time; the bitstream
        and the report are the run with the highest Fmax (``report["nextpnr_runs"]`` lists
        each).
    nextpnr_options : sequence of str, optional
        nextpnr's options beyond the plan's (default: `NEXTPNR_OPTIONS` of the family).

    Returns
    -------
    BuildReport

    Raises
    ------
    FlowError
        If a tool fails (the build tree is kept under ``$IMCFLOW_CACHE/fpga/failed/``).
    UserError
        If a tool is missing or ``output`` cannot be written.
    """
    board = top.board
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UserError(f"--seeds: must be a positive integer, not {seeds!r}")
    if nextpnr_options is None:
        nextpnr_options = NEXTPNR_OPTIONS[board.family]
    check_nextpnr_options(nextpnr_options)
    progress = progress or _Progress()
    tools_env = toolchain.environ()
    start = time.monotonic()
    output = Path(output)
    with atomic_directory(output, force=force) as tmp:
        work = Path(tmp) / "build"
        progress.line(f"elaborating the {board.name} top")
        platform = board.platform()
        overrides = {"script_after_read": yosys_script} if yosys_script else {}
        if SYNTH_OPTIONS[board.family]:
            overrides["synth_opts"] = SYNTH_OPTIONS[board.family]
        if SYNTH_AFTER[board.family]:
            overrides["script_after_synth"] = SYNTH_AFTER[board.family]
        plan = platform.build(top, name="top", do_build=False,
                              nextpnr_opts=" ".join(["--report top.report.json",
                                                     "--timing-allow-fail", *nextpnr_options]),
                              **overrides)
        plan.extract(str(work))
        tool_seconds, tool_cpu, runs = _run_plan(progress, work, tools_env, seeds, output)
        nextpnr = json.loads((work / "top.report.json").read_text())
        utilization = parse_utilization(nextpnr, board.family, _yosys_cells(work / "top.rpt"))
        timing = parse_timing(nextpnr, top.clock_hz)
        bitstream = Path(tmp) / BITSTREAMS[board.family]
        shutil.copyfile(work / BITSTREAMS[board.family], bitstream)
        constraints = [f"top.{ext}" for ext in CONSTRAINTS if (work / f"top.{ext}").exists()]
        for name in constraints:   # the board's pins and clocks, for the user's own flow
            shutil.copyfile(work / name, Path(tmp) / name)
        kept = max(runs, key=lambda r: r["fmax_mhz"])
        report = BuildReport(
            board=board.name, device=board.device, family=board.family, **utilization,
            fmax_mhz=timing["fmax_mhz"], target_mhz=timing["target_mhz"],
            timing=timing, binding=binding_limits(utilization, timing),
            clock_hz=top.clock_hz, baud=top.baud, divisor=top.divisor,
            window=top.system.link.info.window, design_id=top.system.link.info.design_id,
            pll=None if top.pll is None else {
                "input_div": top.pll.input_div, "feedback_div": top.pll.feedback_div,
                "output_div": top.pll.output_div, "vco_mhz": top.pll.vco_hz / 1e6},
            bitstream=str(output.resolve() / bitstream.name), constraints=constraints,
            tool_seconds=tool_seconds, tool_cpu_seconds=tool_cpu,
            synth_options="; ".join(filter(None, (SYNTH_OPTIONS[board.family],
                                                  SYNTH_AFTER[board.family]))),
            nextpnr_options=list(nextpnr_options), nextpnr_runs=runs,
            nextpnr_phase_seconds=kept["phases"], seed=kept["seed"],
            tools={t: toolchain.find(t).version for t in ("yosys", f"nextpnr-{board.family}")},
            details=details or {}, build_seconds=round(time.monotonic() - start, 1))
        (Path(tmp) / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
        (Path(tmp) / "report.md").write_text(render_markdown(report.to_json()))
    return report
