"""The C++ harness of `imcflow sim` (`imcflow.verif.engine`) on its own: its stall masks are
`imcflow.verif.patterns.stall_mask` bit for bit, and its AXI4-Stream checks on ``m_axis`` catch a
top that drops ``tvalid``, changes ``tdata`` while stalled or offers a beat in reset, naming the
cycle. The tops here are a few registers with the accelerator's port names, so each build is
small; whole accelerators run in tests/test_sim.py.
"""

import subprocess
import sys

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from imcflow.gen.blocks import ports
from imcflow.verif import engine, runner
from imcflow.verif.patterns import STREAM_BACKPRESSURE, STREAM_IDLE, stall_mask


class CountingTop(wiring.Component):
    """A top with the accelerator's ports that takes every input and offers a counter on
    ``m_axis``, breaking the stream rules as ``fault`` says:

    - ``drop``: ``tvalid`` high in odd cycles only, whether or not the beat was taken;
    - ``change``: ``tvalid`` high from cycle 1 on, ``tdata`` the cycle count, taken or not;
    - ``reset``: ``tvalid`` high always, in reset too;
    - ``unreset``: ``tvalid`` from a register that reset does not set (initial value 0).
    """

    s_axis_tdata: In(8)
    s_axis_tvalid: In(1)
    s_axis_tready: Out(1)
    s_axis_tlast: In(1)
    m_axis_tdata: Out(8)
    m_axis_tvalid: Out(1)
    m_axis_tready: In(1)
    m_axis_tlast: Out(1)
    status: Out(4)

    def __init__(self, fault: str):
        self.fault = fault
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        count = Signal(8)
        m.d.sync += count.eq(count + 1)
        unreset = Signal(init=0, reset_less=True)
        m.d.sync += unreset.eq(unreset)
        valid = {"drop": count[0], "change": count != 0, "reset": 1,
                 "unreset": unreset}[self.fault]
        m.d.comb += [self.s_axis_tready.eq(1), self.m_axis_tvalid.eq(valid),
                     self.m_axis_tdata.eq(count)]
        return m


def harness(fault: str, random_init: bool = True, optimize: str = "run") -> engine.Harness:
    top = CountingTop(fault)
    name = f"counting_{fault}"
    widths = {p["name"]: p["width"] for p in ports(top)}
    return engine.build(runner.verilog(top, name),
                        engine.Ports(name, widths, engine.Stream(1, 8, False), {}),
                        random_init=random_init, optimize=optimize, progress=False)


@pytest.fixture(scope="module")
def dropping():
    return harness("drop")


def test_the_harness_stall_masks_are_the_python_ones(dropping, seeds):
    for seed in [0, 2**64 - 1, *seeds(2)]:
        for idle, backpressure in [(0.3, 0.5), (0.01, 0.99), (0.0, 0.7)]:
            got = engine.stall_masks(dropping, seed, idle, backpressure, 50_000)
            assert np.array_equal(got[0], stall_mask(seed, STREAM_IDLE, idle, 50_000))
            assert np.array_equal(got[1], stall_mask(seed, STREAM_BACKPRESSURE, backpressure,
                                                     50_000))


def run(h, seed=5, backpressure=0.5):
    pixels = np.zeros((1, 4, 1), np.uint8)
    return engine.run(h, pixels, out_beats=1000, seed=seed, backpressure=backpressure,
                      watchdog=100, timeout=10_000, progress=False)


def test_the_run_measures_its_loop_in_wall_and_cpu_seconds(dropping):
    # no backpressure: every odd cycle's beat is taken, so nothing breaks the stream rules
    r = engine.run(dropping, np.zeros((1, 4, 1), np.uint8), out_beats=200_000, watchdog=100,
                   timeout=10**6, progress=False)
    assert r.violation is None and r.cycles == 400_000 + engine.DRAIN
    assert r.out_cycles.tolist() == list(range(1, r.cycles, 2))   # the drain's beats too
    assert 0 < r.cpu_seconds <= r.wall_seconds   # a single-threaded loop, inside the wall time


def test_short_runs_build_quickly_long_runs_run_fast(dropping):
    assert (engine.profile(engine.SHORT_RUN), engine.profile(engine.SHORT_RUN + 1)) == (
        "build", "run")
    quick = harness("drop", optimize="build")
    assert quick.optimize == "build" and quick.executable != dropping.executable
    for h, flags in [(quick, ["--output-split-cfuncs 1000", "OPT_FAST=-O1 "]),
                     (dropping, ["OPT_FAST=-O3 -march=native"])]:
        log = h.executable.with_name("build.log").read_text()
        assert all(flag in log for flag in flags), log[:2000]
    # the same run on both: the same records
    a, b = run(quick, backpressure=0.02), run(dropping, backpressure=0.02)
    assert a.violation == b.violation and a.out_cycles.tolist() == b.out_cycles.tolist()


def test_a_dropped_tvalid_fails_the_run_in_its_cycle(dropping):
    # tvalid is high in odd cycles: the first odd cycle with tready low is a beat not taken,
    # and tvalid falls in the next cycle (cycle 153 here: 76 beats recorded before it).
    stalled = stall_mask(5, STREAM_BACKPRESSURE, 0.02, 1000)
    c = next(c for c in range(1, 1000, 2) if stalled[c])
    r = run(dropping, backpressure=0.02)
    assert r.violation == {"cycle": c + 1,
                           "message": "m_axis_tvalid dropped before the handshake"}
    # every beat before it was taken when tready was high, in an odd cycle
    assert r.out_cycles.tolist() == [k for k in range(1, c, 2) if not stalled[k]]


def test_tdata_changing_while_stalled_fails_the_run_in_its_cycle():
    stalled = stall_mask(5, STREAM_BACKPRESSURE, 0.02, 1000)
    c = next(c for c in range(1, 1000) if stalled[c])   # 28
    r = run(harness("change"), backpressure=0.02)
    assert r.violation == {"cycle": c + 1,
                           "message": "m_axis_tdata or m_axis_tlast changed while stalled"}
    assert r.out_values[:, 0].tolist() == list(range(1, c))   # the counter, cycle by cycle


def test_a_beat_offered_in_reset_fails_the_run():
    r = run(harness("reset"), backpressure=0.0)
    assert r.violation == {"cycle": -1, "message": "m_axis_tvalid high in reset"}
    assert len(r.out_cycles) == 0


def test_a_register_that_reset_does_not_set_shows_with_random_initial_values():
    # Its Verilog initial value (0) hides it; random initial values, drawn from the run's seed,
    # make it high in reset for some seeds.
    def violations(h):
        return [run(h, seed=seed, backpressure=0.0).violation for seed in range(8)]

    assert violations(harness("unreset", random_init=False)) == [None] * 8
    found = violations(harness("unreset"))
    assert {"cycle": -1, "message": "m_axis_tvalid high in reset"} in found and None in found


# --- Verilator's run-time objects, compiled once (verif/objcache.py) -------------------------------

FAKE_COMPILER = """import sys, pathlib
out = pathlib.Path(sys.argv[sys.argv.index("-o") + 1])
with open(pathlib.Path(sys.argv[0]).with_name("calls"), "a") as calls:
    calls.write(sys.argv[-1] + "\\n")
out.write_text(" ".join(sys.argv[1:]) + pathlib.Path(sys.argv[-1]).read_text())
"""


@pytest.fixture
def fake_verilator(tmp_path, monkeypatch):
    """A Verilator root with a run-time source and header, a compiler that logs its calls, and
    an empty cache: ``(root, compile)``, where ``compile(source, *flags)`` runs the launcher
    as make would and returns the object's text."""
    root = tmp_path / "verilator"
    (root / "include").mkdir(parents=True)
    (root / "include" / "verilated.cpp").write_text("runtime\n")
    (root / "include" / "verilated.h").write_text("header 1\n")
    (tmp_path / "design.cpp").write_text("design\n")
    compiler = tmp_path / "bin" / "cc"
    compiler.parent.mkdir()
    compiler.write_text(f"#!{sys.executable}\n{FAKE_COMPILER}")
    compiler.chmod(0o755)
    monkeypatch.setenv("VERILATOR_ROOT", str(root))
    monkeypatch.setenv("IMCFLOW_CACHE", str(tmp_path / "cache"))
    launcher = engine.HARNESS.with_name("objcache.py")

    def compile(source, *flags):
        out = tmp_path / "obj" / "out.o"
        out.parent.mkdir(exist_ok=True)
        out.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-S", str(launcher), str(compiler), *flags, "-c", "-o",
                        str(out), str(source)], check=True)
        return out.read_text()

    return root, compile, compiler.with_name("calls")


def test_runtime_objects_are_compiled_once_per_command_and_headers(fake_verilator, tmp_path):
    root, compile, calls = fake_verilator
    runtime = root / "include" / "verilated.cpp"
    first = compile(runtime, "-Os", "-DVM_TRACE=0")
    assert compile(runtime, "-Os", "-DVM_TRACE=0") == first   # from the cache
    assert calls.read_text().count("verilated.cpp") == 1
    assert len(list((tmp_path / "cache" / "verilator" / "runtime").glob("*.o"))) == 1
    compile(runtime, "-Os", "-DVM_TRACE=1")                        # another define
    assert calls.read_text().count("verilated.cpp") == 2
    (root / "include" / "verilated.h").write_text("header 2\n")    # another Verilator
    compile(runtime, "-Os", "-DVM_TRACE=1")
    assert calls.read_text().count("verilated.cpp") == 3
    # the design's own files always compile
    assert compile(tmp_path / "design.cpp", "-O3") == compile(tmp_path / "design.cpp", "-O3")
    assert calls.read_text().count("design.cpp") == 2
