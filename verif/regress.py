"""``imcflow regress``: the block regressions with fresh seeds, distributed on Dask.

A block's regressions are its Amaranth-simulator tests (``tests/test_<block>.py``) and its cocotb
tests under Verilator (``tests/test_<block>_cocotb.py``). Their randomized tests draw their seeds
from the ``seeds`` / ``rng`` fixtures (tests/conftest.py), which ``IMCFLOW_SEED=<n>`` replaces. A
regression job is one (block, seed): pytest in a subprocess with ``IMCFLOW_SEED`` set, running
only the tests that take a seed (this module is also the pytest plugin, ``-p
imcflow.verif.regress``, that deselects the others and records each test's outcome). Jobs are
Dask tasks on a local cluster or on ``--scheduler``; Verilator builds are shared through the
build cache (keyed by configuration hash, under a file lock). Every failure is printed with the
one command that replays it::

    IMCFLOW_SEED=1234 python -m pytest -n 0 'tests/test_fifo.py::test_matches_model_cycle_by_cycle[fifo-d4]'
"""

from __future__ import annotations

import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imcflow.errors import UserError
from imcflow.sw.explore import _client

__all__ = ["KINDS", "TESTS", "blocks", "replay_command", "run_job", "regress"]

#: the environment variable naming the file the plugin writes outcomes to
REPORT_ENV = "IMCFLOW_REGRESS_REPORT"
#: default test directory: the repository's
TESTS = Path(__file__).resolve().parents[1] / "tests"
KINDS = ("all", "amaranth", "cocotb")


# --- the pytest plugin (loaded in the job's pytest with -p imcflow.verif.regress) ----------------

def pytest_collection_modifyitems(config, items):
    """Keep only the tests that take a seed: the others would repeat themselves."""
    if REPORT_ENV not in os.environ:
        return
    seeded = [i for i in items if {"seeds", "rng"} & set(getattr(i, "fixturenames", ()))]
    dropped = [i for i in items if i not in seeded]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = seeded


def pytest_runtest_logreport(report):
    """Append each test's failure or pass (call phase, or a failed setup/teardown)."""
    path = os.environ.get(REPORT_ENV)
    if not path or not (report.when == "call" or report.failed):
        return
    message = ""
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message.splitlines()[0] if crash is not None else str(report.longrepr).splitlines()[-1]
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"nodeid": report.nodeid, "outcome": report.outcome,
                            "when": report.when, "message": message[:500]}) + "\n")


# --- jobs ---------------------------------------------------------------------------------------

def blocks(tests: Path = TESTS, kind: str = "all", named=()) -> dict[str, list[str]]:
    """Block name -> its regression files (relative to ``tests``' parent), for ``kind``.

    The blocks are those with a cocotb regression or an ``imcflow.hw`` module of their name,
    and any name in ``named`` that has a ``test_<name>.py`` or ``test_<name>_cocotb.py``.
    """
    hw = {p.stem for p in (Path(__file__).resolve().parents[1] / "hw").glob("*.py")}
    cocotb_blocks = {p.stem[len("test_"):-len("_cocotb")] for p in tests.glob("test_*_cocotb.py")}
    found: dict[str, list[str]] = {}
    for block in sorted((hw | cocotb_blocks | set(named)) - {"__init__"}):
        for path, cocotb in ((tests / f"test_{block}.py", False),
                             (tests / f"test_{block}_cocotb.py", True)):
            if path.is_file() and (kind == "all" or (kind == "cocotb") == cocotb):
                found.setdefault(block, []).append(path.relative_to(tests.parent).as_posix())
    return found


def replay_command(nodeid: str, seed: int, root: Path) -> str:
    """The one command that reruns test ``nodeid`` with ``seed``, from any directory."""
    return (f"cd {shlex.quote(str(root))} && IMCFLOW_SEED={seed} {shlex.quote(sys.executable)} "
            f"-m pytest -n 0 {shlex.quote(nodeid)}")


def run_job(block: str, files: list[str], seed: int, root: str, timeout: float) -> dict:
    """Run ``block``'s seeded tests in ``files`` with ``IMCFLOW_SEED=seed`` (on a worker)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="imcflow-regress-") as tmp:
        report = Path(tmp) / "outcomes.jsonl"
        env = {**os.environ, "IMCFLOW_SEED": str(seed), REPORT_ENV: str(report)}
        command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "imcflow.verif.regress",
                   "-p", "no:cacheprovider", *files]
        try:
            done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                                  timeout=timeout)
            code, tail = done.returncode, (done.stdout + done.stderr).strip().splitlines()[-3:]
        except subprocess.TimeoutExpired:
            code, tail = None, [f"timed out after {timeout:g} s"]
        outcomes = [json.loads(line) for line in report.read_text().splitlines()] \
            if report.exists() else []
    failures = [{"nodeid": o["nodeid"], "message": o["message"],
                 "replay": replay_command(o["nodeid"], seed, Path(root))}
                for o in outcomes if o["outcome"] == "failed"]
    if code not in (0, 1, 5) or (code == 1 and not failures):  # a crash, a timeout, a collection error
        failures.append({"nodeid": " ".join(files), "message": " | ".join(tail),
                         "replay": (f"cd {shlex.quote(root)} && IMCFLOW_SEED={seed} "
                                    f"{shlex.quote(sys.executable)} -m pytest -n 0 "
                                    + " ".join(map(shlex.quote, files)))})
    return {"block": block, "seed": seed, "tests": len(outcomes),
            "passed": sum(o["outcome"] == "passed" for o in outcomes), "failures": failures,
            "seconds": round(time.monotonic() - start, 2)}


def regress(block_names: list[str] | None, seeds: int, *, first_seed: int | None = None,
            kind: str = "all", tests: Path = TESTS, scheduler: str | None = None,
            workers: int | None = None, timeout: float = 1800, progress: bool = True) -> dict:
    """Run every chosen block's seeded regressions with ``seeds`` seeds each on Dask.

    Seeds are ``first_seed, first_seed + 1, ...`` or, without it, fresh random ones. Returns the
    summary ``--json`` prints: ``jobs``, ``tests``, ``failed`` (jobs), ``failures`` (each with its
    ``replay`` command) and the seeds.
    """
    from distributed import as_completed   # Dask: imported by the commands that use it

    tests = Path(tests).resolve()
    available = blocks(tests, kind, block_names or ())
    names = block_names or sorted(available)
    unknown = [b for b in names if b not in available]
    if unknown:
        what = "" if kind == "all" else f"{kind} "
        raise UserError(f"--block: no {what}regression of {unknown[0]!r} in {tests} "
                        f"(test_{unknown[0]}.py or test_{unknown[0]}_cocotb.py); blocks: "
                        f"{', '.join(sorted(blocks(tests, kind)))}")
    if first_seed is None:
        seed_list = random.SystemRandom().sample(range(2**31), seeds)
    else:
        seed_list = [first_seed + i for i in range(seeds)]
    root = str(tests.parent)
    client, cluster = _client(scheduler, workers)
    results, start = [], time.monotonic()
    try:
        futures = [client.submit(run_job, b, available[b], s, root, timeout, pure=False,
                                 key=f"regress-{b}-{s}", retries=1)
                   for b in names for s in seed_list]
        for n, future in enumerate(as_completed(futures), 1):
            r = future.result()
            results.append(r)
            for f in r["failures"]:
                print(f"FAILED {f['nodeid']} (seed {r['seed']}): {f['message']}\n"
                      f"  replay: {f['replay']}", file=sys.stderr, flush=True)
            if progress:
                bad = sum(bool(x["failures"]) for x in results)
                print(f"imcflow regress: {n}/{len(futures)} jobs done, {bad} failed",
                      file=sys.stderr, flush=True)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    results.sort(key=lambda r: (r["block"], seed_list.index(r["seed"])))
    failures = [{**f, "block": r["block"], "seed": r["seed"]} for r in results for f in r["failures"]]
    return {"blocks": names, "kind": kind, "seeds": seed_list, "jobs": len(results),
            "tests": sum(r["tests"] for r in results),
            "passed": sum(r["passed"] for r in results),
            "failed": sum(bool(r["failures"]) for r in results), "failures": failures,
            "seconds": round(time.monotonic() - start, 2)}
