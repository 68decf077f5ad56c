"""The verification backbone itself: scoreboard reports, pause patterns, the Amaranth-simulator
stream harness, the build cache under concurrent workers, and lint."""

import gc
import itertools
import os
import random
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from imcflow import rtl
from imcflow.hw.fifo import PipelineFifo, SkidBuffer
from imcflow.hw.streams import VectorLayout
from imcflow.verif import runner
from imcflow.verif.amaranth_sim import run_streams
from imcflow.verif.patterns import pauses
from imcflow.verif.scoreboard import Scoreboard, ScoreboardError
from imcflow.verif.streams import StreamDriver, StreamMonitor

# --- scoreboard ------------------------------------------------------------------------------


def test_scoreboard_reports_first_mismatch_with_index_and_values():
    board = Scoreboard([1, 2, 3, 4], name="o")
    board.actual(1)
    with pytest.raises(ScoreboardError, match=r"^o: beat 1: expected 2, got 5$"):
        board.actual(5)


def test_scoreboard_compares_as_soon_as_both_sides_exist():
    # Actual beats may run ahead of the golden model; the comparison waits for the golden beat.
    board = Scoreboard(name="o")
    board.actual((1, False))
    board.actual((2, True))
    board.expect((1, False))
    assert board.matched == 1
    with pytest.raises(ScoreboardError, match=r"beat 1: expected \(2, False\), got \(2, True\)"):
        board.expect((2, False))


def test_scoreboard_detects_missing_and_extra_beats():
    with pytest.raises(ScoreboardError, match=r"^o: 2 beat\(s\) missing of 3: first missing is beat 1, expected 'b'$"):
        Scoreboard.check("abc", "a", name="o")
    with pytest.raises(ScoreboardError, match=r"^o: 1 extra beat\(s\) after 2: first extra is beat 2, got 'c'$"):
        Scoreboard.check("ab", "abc", name="o")
    Scoreboard.check("abc", "abc")


def test_scoreboard_compares_numpy_vectors_lane_by_lane():
    Scoreboard.check([np.array([1, 2])], [np.array([1, 2])])
    with pytest.raises(ScoreboardError, match="beat 0"):
        Scoreboard.check([np.array([1, 2])], [np.array([1, 3])])


@pytest.mark.parametrize("expected, actual, why", [
    (np.array([1]), np.array([[[1]]]), r"shape \(1,\) int64 expected, got shape \(1, 1, 1\) int64"),
    (np.array([7, 7]), np.array([7]), r"shape \(2,\) int64 expected, got shape \(1,\) int64"),
    (np.array([1, 2]), np.array([1, 2], np.int32), r"shape \(2,\) int64 expected, got shape \(2,\) int32"),
    (np.array([1, 2]), [1, 2], "an array against a non-array"),
])
def test_scoreboard_compares_shape_and_dtype_never_broadcasting(expected, actual, why):
    with pytest.raises(ScoreboardError, match=f"^o: beat 0: .*\\({why}\\)$"):
        Scoreboard.check([expected], [actual], name="o")


# --- pause patterns --------------------------------------------------------------------------

def test_pause_probability_is_seeded():
    first = list(itertools.islice(pauses(0.3, random.Random(7)), 1000))
    again = list(itertools.islice(pauses(0.3, random.Random(7)), 1000))
    assert first == again and 250 < sum(first) < 350


def test_pause_pattern_is_used_as_given_then_never_pauses():
    assert list(itertools.islice(pauses([1, 1, 0]), 5)) == [True, True, False, False, False]
    assert list(itertools.islice(pauses(itertools.cycle([1, 0])), 4)) == [True, False, True, False]
    assert not any(itertools.islice(pauses(None), 100))


@pytest.mark.parametrize("spec, rng, message", [
    (1.0, random.Random(), r"^Pause probability must be in \[0, 1\), not 1.0$"),
    (-0.1, random.Random(), r"^Pause probability must be in \[0, 1\), not -0.1$"),
    (0.5, None, r"^A pause probability needs a seeded random.Random$"),
])
def test_pause_spec_checks(spec, rng, message):
    with pytest.raises(ValueError, match=message):
        pauses(spec, rng)


# --- stream driver and monitor, stepped by hand on stand-in signal handles ---------------------

class Handle:
    def __init__(self):
        self.value = 0


class Ports:
    """Stands in for a cocotb toplevel with the Verilog ports of one Amaranth stream."""

    def __init__(self, port):
        for signal in ("valid", "ready", "payload"):
            setattr(self, f"{port}__{signal}", Handle())


def test_driver_holds_each_beat_until_accepted_and_idles_between_beats():
    layout = VectorLayout(2, 4)
    dut = Ports("i")
    driver = StreamDriver(dut, "i", layout=layout, idle=[0, 1])    # no idle, then one idle cycle
    driver.send([([1, 2], False), ([3, 4], True)])
    trace = []
    for cycle, ready in enumerate([0, 1, 1, 0, 1, 1]):
        driver.drive(cycle)
        dut.i__ready.value = ready
        trace.append((dut.i__valid.value, dut.i__payload.value if dut.i__valid.value else None))
        driver.sample(cycle)
    first, second = layout.pack([1, 2], False), layout.pack([3, 4], True)
    assert trace == [(1, first), (1, first), (0, None), (1, second), (1, second), (0, None)]
    assert driver.sent == [([1, 2], False), ([3, 4], True)] and driver.cycles == [1, 4]


def test_monitor_records_beats_with_their_cycles_under_backpressure():
    dut, board = Ports("o"), Scoreboard([5, 6], name="o")
    monitor = StreamMonitor(dut, "o", backpressure=[1, 0, 0], on_beat=board.actual)
    for cycle, (valid, payload) in enumerate([(1, 5), (1, 5), (1, 6), (0, 0)]):
        monitor.drive(cycle)
        dut.o__valid.value, dut.o__payload.value = valid, payload
        monitor.sample(cycle)
    assert monitor.beats == [5, 6] and monitor.cycles == [1, 2]
    board.finish()


@pytest.mark.parametrize("second, message", [
    ((0, 5), "o: valid dropped before the handshake in cycle 1"),
    ((1, 6), "o: payload changed before the handshake in cycle 1: 5 -> 6"),
])
def test_monitor_catches_a_producer_breaking_the_stream_rules(second, message):
    dut = Ports("o")
    monitor = StreamMonitor(dut, "o", backpressure=[1, 1])          # not ready for two cycles
    with pytest.raises(AssertionError, match=f"^{re.escape(message)}$"):
        for cycle, (valid, payload) in enumerate([(1, 5), second]):
            monitor.drive(cycle)
            dut.o__valid.value, dut.o__payload.value = valid, payload
            monitor.sample(cycle)


# --- run_streams: the Amaranth-simulator harness, on a FIFO with right and wrong expectations ---

def _fifo_run(expected, **kwargs):
    layout = VectorLayout(2, 4)
    dut = PipelineFifo(layout, 3)
    words = [layout.pack([n % 16, 15 - n % 16], last=n % 5 == 4) for n in range(40)]
    return dut, words, run_streams(dut, {"i": (dut.i, words)}, {"o": (dut.o, expected(words))},
                                   seed=3, **kwargs)


def test_run_streams_returns_the_handshake_edges_of_every_port():
    dut, words, edges = _fifo_run(lambda words: words, idle=0.3, backpressure=0.5)
    assert len(edges["i"]) == len(edges["o"]) == len(words)
    assert all(o >= i + dut.latency for i, o in zip(edges["i"], edges["o"]))
    _, _, again = _fifo_run(lambda words: words, idle=0.3, backpressure=0.5)
    assert again == edges                                           # the seed fixes the run


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("expected, message", [
    # a wrong beat: its index, expected and actual lanes and last
    (lambda w: w[:7] + [VectorLayout(2, 4).pack([1, 2])] + w[8:],
     r"^PipelineFifo\.o: beat 7: expected \(\[1, 2\], False\), got \(\[7, 8\], False\)$"),
    # a beat more than expected arrives within the tail
    (lambda w: w[:-1], r"^PipelineFifo\.o: 1 extra beat\(s\) after 39: first extra is beat 39, "
                       r"got \(\[7, 8\], True\)$"),
    # a beat that never comes: the run stalls
    (lambda w: w + w[:1], r"^stalled: not finished after 500 cycles; beats per port: i 40/40, "
                          r"o 40/41$"),
])
def test_run_streams_fails_on_wrong_extra_and_missing_beats(expected, message):
    with pytest.raises(AssertionError, match=message):
        _fifo_run(expected, max_cycles=500)
    gc.collect()  # close the aborted simulation's testbenches under this test's warning filter


# --- build cache -----------------------------------------------------------------------------

class FakeVerilator:
    """Stands in for cocotb's Verilator runner: counts builds, takes a while, writes the model."""

    builds = 0
    fail = False

    def build(self, *, build_dir, hdl_toplevel, **kwargs):
        FakeVerilator.builds += 1
        threading.Event().wait(0.3)
        if FakeVerilator.fail:
            raise RuntimeError("Command failed with return code: 2")
        (build_dir / hdl_toplevel).write_text("model")


@pytest.fixture
def fake_verilator(tmp_path, monkeypatch):
    monkeypatch.setenv("IMCFLOW_CACHE", str(tmp_path))
    monkeypatch.setattr("cocotb_tools.runner.get_runner", lambda name: FakeVerilator())
    FakeVerilator.builds, FakeVerilator.fail = 0, False
    return tmp_path / "verilator"


def test_concurrent_builds_of_one_design_build_once(fake_verilator):
    # Two workers asking for the same design at once: one builds, the other waits and reuses it.
    results = []
    workers = [threading.Thread(target=lambda: results.append(
        runner.build(SkidBuffer(8), name="skid8", parameters={"width": 8}))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert FakeVerilator.builds == 1
    assert results[0] == results[1] and (results[0].directory / "skid8").is_file()
    assert results[0].verilog.read_text().startswith("/* Generated by Amaranth")
    assert [p.name for p in fake_verilator.iterdir() if p.is_dir()] == [results[0].directory.name]


def test_cache_key_covers_design_parameters_and_flags(fake_verilator):
    base = runner.build(SkidBuffer(8), name="skid", parameters={"a": 1})
    assert runner.build(SkidBuffer(8), name="skid", parameters={"a": 1}) == base
    others = {runner.build(SkidBuffer(9), name="skid", parameters={"a": 1}).directory,
              runner.build(SkidBuffer(8), name="skid", parameters={"a": 2}).directory,
              runner.build(SkidBuffer(8), name="skid", parameters={"a": 1}, flags=["-O3"]).directory}
    assert len(others) == 3 and base.directory not in others
    assert FakeVerilator.builds == 4


def test_failed_build_leaves_nothing_cached(fake_verilator):
    FakeVerilator.fail = True
    with pytest.raises(runner.BuildError, match="Verilator build of skid failed"):
        runner.build(SkidBuffer(8), name="skid")
    assert [p.suffix for p in fake_verilator.iterdir() if p.is_dir()] == [".building"]
    FakeVerilator.fail = False
    assert (runner.build(SkidBuffer(8), name="skid").directory / "skid").is_file()
    assert FakeVerilator.builds == 2


# --- lint ------------------------------------------------------------------------------------

def test_lint_reports_warnings_beyond_the_waivers(tmp_path):
    source = tmp_path / "undriven.v"
    source.write_text("module undriven(input wire a, output wire b);\nendmodule\n")
    with pytest.raises(rtl.LintError, match="UNDRIVEN"):
        rtl.lint(source)


def test_test_id_is_the_pytest_node_id_as_a_file_name():
    assert runner.current_test_id() == "test_verif.test_test_id_is_the_pytest_node_id_as_a_file_name"


def test_runs_of_one_test_in_two_processes_never_share_a_directory(tmp_path, monkeypatch):
    # imcflow regress runs a test with several seeds at once: one shared runs/<test-id> made the
    # second run's mkdir fail (FileExistsError) or wipe the first run's results.
    monkeypatch.setenv("IMCFLOW_CACHE", str(tmp_path))
    parent = tmp_path / "runs" / "t"
    other = os.getppid()  # a live process's run (pytest's parent)
    (parent / str(other) / "results.xml").parent.mkdir(parents=True)
    (parent / str(other) / "results.xml").write_text("theirs")
    dead = _dead_pid()
    (parent / str(dead)).mkdir()
    mine = runner._run_directory("t")
    assert mine == parent / str(os.getpid()) and list(mine.iterdir()) == []
    assert (parent / str(other) / "results.xml").read_text() == "theirs"
    assert not (parent / str(dead)).exists()  # an ended process's run is cleaned up


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_where_no_testcase_ran_fails():
    # A testcase filter that matches nothing used to pass silently with an empty report.
    sim = runner.build(PipelineFifo(4, 2), name="fifo_w4_d2", parameters={"width": 4, "depth": 2})
    tb = Path(__file__).parent / "cocotb" / "fifo_tb.py"
    with pytest.raises(runner.SimulationError, match="no testcase ran .the testcase filter "
                                                     "'no_such_testcase' matched none"):
        runner.run(sim, tb, parameters={"seed": 1, "beats": 10}, testcase="no_such_testcase")


def test_seeds_are_fixed_by_default_and_explore_with_imcflow_seed_random(seeds, monkeypatch, capsys):
    monkeypatch.delenv("IMCFLOW_SEED", raising=False)
    fixed = seeds(3)
    assert seeds(3) == fixed and len(set(fixed)) == 3           # CI replays the same runs
    monkeypatch.setenv("IMCFLOW_SEED", "random")
    explored = [tuple(seeds(3)) for _ in range(3)]
    assert len(set(explored)) == 3 and tuple(fixed) not in explored
    monkeypatch.setenv("IMCFLOW_SEED", str(explored[0][1]))
    assert seeds(3) == [explored[0][1]]                         # one printed seed replays alone
    printed = capsys.readouterr().out
    assert all(f"{s}" in printed for s in explored[2]) and "replay one with IMCFLOW_SEED=" in printed
    monkeypatch.setenv("IMCFLOW_SEED", "soon")
    with pytest.raises(pytest.UsageError, match="IMCFLOW_SEED: must be 'random' or an integer"):
        seeds(1)
