"""``imcflow explore``: sweep files, points, Pareto fronts, and a sweep on a real Dask cluster on
localhost (a ``dask scheduler`` and two ``dask worker`` processes) that loses a worker mid-sweep,
a client killed mid-sweep and resumed, and a failing point recorded with its error."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imcflow.cli import main
from imcflow.errors import UserError
from imcflow.sw.explore import batches, load_sweep, pareto, points

ROOT = Path(__file__).resolve().parents[1]
IMCFLOW = [sys.executable, "-m", "imcflow"]

# 24 resnet20 points (no labelled images: mapping, performance, energy, area), ~0.3 s each
RESNET_SWEEP = """
networks = ["resnet20"]
plots = [["energy_per_image_j", "throughput_ips"]]
objectives = ["energy_per_image_j", "throughput_ips", "area_mm2"]
[params]
rows = [128, 256]
cols = [128, 256]
mvm_cycles = [8, 16, 32]
buffer = ["line", "frame"]
"""


def _sweep(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _table(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dask_cluster(log_dir: Path, workers: int = 2):
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes (one thread each, no
    nanny, so a killed worker stays dead) on 127.0.0.1; always torn down."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []

    def start(*args, name):
        log = open(log_dir / f"{name}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))
        return procs[-1]

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
              name="scheduler")
        worker_procs = [start("worker", address, "--nthreads", "1", "--no-nanny",
                              "--no-dashboard", "--name", f"w{i}", "--host", "127.0.0.1",
                              name=f"worker{i}") for i in range(workers)]
        from distributed import Client
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=60)
        yield address, worker_procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _wait_for_lines(out: Path, count: int, proc, timeout: float = 120, workers: int = 1) -> int:
    """Wait until ``count`` results from ``workers`` distinct workers are in the journal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = out / "results.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        done = [json.loads(line) for line in lines if line.endswith("}")]
        if len(done) >= count and len({r["worker"] for r in done}) >= workers:
            return len(done)
        assert proc.poll() is None, "the sweep ended before the kill"
        time.sleep(0.05)
    raise AssertionError(f"no {count} results within {timeout} s")


# --- sweep files and points ----------------------------------------------------------------------

def test_example_sweep_has_a_few_dozen_digits_points():
    sweep = load_sweep(ROOT / "docs" / "examples" / "sweep-digits.toml")
    pts = points(sweep)
    assert sweep.networks == ("digits",) and 24 <= len(pts) == sweep.size <= 60
    assert len({p["id"] for p in pts}) == len(pts)


def test_grid_and_seeded_random_points(tmp_path):
    grid = load_sweep(_sweep(tmp_path, RESNET_SWEEP))
    pts = points(grid)
    assert len(pts) == 24 and [p["index"] for p in pts] == list(range(24))
    assert {(p["arch"]["rows"], p["arch"]["cols"], p["arch"]["mvm_cycles"], p["arch"]["buffer"])
            for p in pts} == {(r, c, m, b) for r in (128, 256) for c in (128, 256)
                              for m in (8, 16, 32) for b in ("line", "frame")}
    sample = RESNET_SWEEP.replace('networks', 'mode = "random"\nsamples = 7\nseed = 3\nnetworks')
    a = points(load_sweep(_sweep(tmp_path, sample, "a.toml")))
    b = points(load_sweep(_sweep(tmp_path, sample, "b.toml")))
    other = points(load_sweep(_sweep(tmp_path, sample.replace("seed = 3", "seed = 4"), "c.toml")))
    assert a == b and len(a) == 7 and len({p["id"] for p in a}) == 7
    assert {p["id"] for p in a} <= {p["id"] for p in pts}
    assert [p["id"] for p in a] != [p["id"] for p in other]


@pytest.mark.parametrize("text, message", [
    ('networks = ["digits"]\nrowz = 3', r"^sweep.rowz: unknown key; allowed: "),
    ('networks = []', r"^sweep.networks: must be a non-empty list"),
    ('networks = ["digits"]\n[params]\nadc_bits = [4, 99]', r"^arch.adc_bits: must be an integer in 2..16, not 99$"),
    ('networks = ["digits"]\n[params]\nsize = [4]', r"^sweep.params.size: not an arch field"),
    ('networks = ["digits"]\n[params]\ncore_budget = ["lots"]', r"^sweep.params.core_budget: must be 'none'"),
    ('networks = ["digits"]\nobjectives = ["speed"]', r"^sweep.objectives: must be one of accuracy, "),
    ('networks = ["digits"]\nmode = "all"', r"^sweep.mode: must be 'grid' or 'random', not 'all'$"),
])
def test_bad_sweep_files_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        load_sweep(_sweep(tmp_path, text))


def test_pareto_front():
    rows = [{"id": "a", "energy_per_image_j": 1.0, "throughput_ips": 10.0},
            {"id": "b", "energy_per_image_j": 2.0, "throughput_ips": 30.0},
            {"id": "c", "energy_per_image_j": 2.0, "throughput_ips": 20.0},   # dominated by b
            {"id": "d", "energy_per_image_j": 3.0, "throughput_ips": 30.0},   # dominated by b
            {"id": "e", "energy_per_image_j": None, "throughput_ips": 99.0},  # not comparable
            {"id": "f", "energy_per_image_j": 1.0, "throughput_ips": 10.0}]   # ties a: both stay
    front = pareto(rows, ("energy_per_image_j", "throughput_ips"))
    assert [r["id"] for r in front] == ["a", "b", "f"]


def test_batches_group_points_by_their_event_model_and_cover_each_point_once():
    todo = [{"id": f"p{i}", "perf": i % 3} for i in range(50)]
    got = batches(todo, lambda p: p["perf"], size=4)
    assert sorted(p["id"] for b in got for p in b) == sorted(p["id"] for p in todo)
    assert all(1 <= len(b) <= 4 and len({p["perf"] for p in b}) == 1 for b in got)
    # 3 groups of 17, 17 and 16 points: 5 + 5 + 4 batches, not 50 tasks
    assert len(got) == 14
    assert [p["id"] for p in got[0]] == ["p0", "p3", "p6", "p9"]


# --- sweeps on Dask ------------------------------------------------------------------------------

def test_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    # bit_serial needs mvm_cycles >= act_bits: the (bit_serial, 4) point fails, the others run.
    sweep = _sweep(tmp_path, f"""
networks = ["{ROOT / 'docs' / 'examples' / 'tiny_cnn.toml'}"]
objectives = ["energy_per_image_j", "throughput_ips"]
[params]
input_encoding = ["pwm", "bit_serial"]
mvm_cycles = [4, 8]
""")
    out = tmp_path / "out"
    assert main(["explore", str(sweep), "-o", str(out), "--workers", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["points"], summary["completed"], summary["failed"]) == (4, 3, 1)
    rows = _table(out)
    assert Path(summary["results"]) == out / "results.csv" and len(rows) == 4
    failed, = [r for r in rows if r["status"] == "failed"]
    assert (failed["input_encoding"], failed["mvm_cycles"]) == ("bit_serial", "4")
    assert failed["error"].startswith("UserError: arch.mvm_cycles: bit_serial input needs")
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(float(r["energy_per_image_j"]) > 0 and int(r["cycles_per_image"]) > 0 for r in ok)
    assert (out / "report.md").read_text().count(failed["id"]) >= 1
    assert (out / "pareto-energy_per_image_j-throughput_ips.png").stat().st_size > 0
    # the same directory again without --resume is refused, with it nothing is recomputed
    assert main(["explore", str(sweep), "-o", str(out), "--json"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["explore", str(sweep), "-o", str(out), "--workers", "1", "--resume", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["resumed"], again["completed"], again["failed"]) == (4, 3, 1)
    assert len(_journal(out)) == 4


def test_worker_killed_mid_sweep_loses_no_point(tmp_path):
    sweep = _sweep(tmp_path, RESNET_SWEEP)
    out = tmp_path / "out"
    with dask_cluster(tmp_path) as (address, workers):
        client = subprocess.Popen([*IMCFLOW, "explore", str(sweep), "-o", str(out), "--scheduler",
                                   address, "--json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        try:
            before = _wait_for_lines(out, 3, client, workers=2)
            workers[0].kill()  # mid-sweep: its running and queued points go to the other worker
            stdout, stderr = client.communicate(timeout=180)
        finally:
            if client.poll() is None:
                client.kill()
        assert client.returncode == 0, stderr
    summary = json.loads(stdout)
    assert (summary["points"], summary["completed"], summary["failed"]) == (24, 24, 0)
    ids = [r["id"] for r in _journal(out)]
    assert sorted(ids) == sorted(p["id"] for p in points(load_sweep(sweep)))  # each exactly once
    assert [r["id"] for r in _table(out)] == [p["id"] for p in points(load_sweep(sweep))]
    # both workers finished points before the kill; after it, the survivor finished the rest
    assert len({r["worker"] for r in _journal(out)[:before]}) == 2
    assert before < 24 and len({r["worker"] for r in _journal(out)[before + 2:]}) == 1


def test_client_killed_mid_sweep_resumes_without_recomputing(tmp_path):
    sweep = _sweep(tmp_path, RESNET_SWEEP)
    out = tmp_path / "out"
    with dask_cluster(tmp_path) as (address, _):
        command = [*IMCFLOW, "explore", str(sweep), "-o", str(out), "--scheduler", address,
                   "--json"]
        client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  cwd=tmp_path)
        try:
            _wait_for_lines(out, 4, client)
            client.send_signal(signal.SIGKILL)
            client.wait(timeout=30)
        finally:
            if client.poll() is None:
                client.kill()
        before = (out / "results.jsonl").read_text()
        finished = {json.loads(line)["id"] for line in before.splitlines() if line.endswith("}")}
        assert 4 <= len(finished) < 24
        done = subprocess.run(command + ["--resume"], capture_output=True, text=True, cwd=tmp_path,
                              timeout=180)
        assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["resumed"] == len(finished)
    assert (summary["points"], summary["completed"], summary["failed"]) == (24, 24, 0)
    after = (out / "results.jsonl").read_text()
    assert after.startswith(before.rsplit("\n", 1)[0])  # nothing rewritten
    complete = [json.loads(line) for line in after.splitlines() if line.endswith("}")]
    ids = [r["id"] for r in complete]
    assert len(ids) == len(set(ids)) == 24  # nothing recomputed, nothing duplicated


@pytest.mark.slow
def test_verify_simulates_a_pareto_point_in_rtl(tmp_path, capsys):
    # digits on the default arch (the build other tests cache): generated, simulated under
    # Verilator, bit-exact on 4 images and on the performance model's cycles
    sweep = _sweep(tmp_path, """
networks = ["digits"]
verify = 1
verify_images = 4
objectives = ["energy_per_image_j", "throughput_ips"]
[params]
adc_bits = [8]
""")
    out = tmp_path / "out"
    assert main(["explore", str(sweep), "-o", str(out), "--workers", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    (point, ok), = summary["verified"].items()
    assert ok and summary["pareto"] == [point]
    row, = _table(out)
    assert (row["verify_passed"], row["verify_bit_exact"], row["verify_images"]) == ("True", "4", "4")
    assert float(row["verify_cycles_ratio"]) == 1.0 and float(row["verify_cycles_per_image"]) > 0
    assert (out / "verify" / point / "manifest.json").is_file()
    lines = len(_journal(out))
    assert main(["explore", str(sweep), "-o", str(out), "--workers", "1", "--resume", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] == {point: True}
    assert len(_journal(out)) == lines  # neither the point nor its simulation redone
