"""The cocotb engine of `imcflow sim` (``--engine cocotb``): the top elaborated again, checked
equal to the directory's Verilog, built by `imcflow.verif.runner` and run under the cocotb
testbench `imcflow.verif.accelerator_tb`, which steps every cycle from Python.

`run` returns what the testbench recorded as `imcflow.verif.engine.Results` (the ports only: no
taps), so `imcflow.verif.sim` compares both engines' runs alike. Simulator output goes to stderr,
never to stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imcflow.errors import UserError
from imcflow.gen.project import verilog_body
from imcflow.progress import Ticker
from imcflow.verif import engine, runner

__all__ = ["BUILD_FLAGS", "FULL_WAVES_FLAGS", "run"]

#: Verilator flags of the cocotb engine's builds: only the top's ports public (cocotb's runner
#: makes every signal public, tens of thousands of VPI handles for a whole accelerator), an -O1
#: C++ build (compiles faster than the default -Os), waveforms of the top's ports and status
BUILD_FLAGS = ("--no-public-flat-rw", "--public-depth", "1", "-CFLAGS", "-O1", "--trace-depth", "1")
#: the same with waveforms of every signal (``imcflow sim --engine cocotb --full-waves``)
FULL_WAVES_FLAGS = BUILD_FLAGS[:-2]
#: the testbench
TESTBENCH = Path(__file__).with_name("accelerator_tb.py")


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send file descriptor 1 (the simulator's and cocotb's output) to stderr: stdout holds the
    command's results only."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _environment(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(gen, verilog, pixels, plan: dict, *, waves: bool, full_waves: bool, progress: bool):
    """``(results, build seconds, waveform path or None, failure)``: a run of the cocotb engine
    on the top elaborated again, as `imcflow.verif.engine.Results` (no taps)."""
    start = time.monotonic()
    with Ticker("sim", f"Verilator build of {gen.name} for cocotb", enabled=progress), \
            _stdout_to_stderr():
        build = runner.build(gen.top, name=gen.name, waves=waves or full_waves,
                             flags=FULL_WAVES_FLAGS if full_waves else BUILD_FLAGS)
    build_seconds = time.monotonic() - start
    if build.verilog.read_text() != verilog_body(verilog):
        raise UserError(f"directory: {gen.verilog_path} is not what this imcflow elaborates its "
                        f"configuration to (written by another version); regenerate it")
    lanes = gen.top.out_layout.lanes
    with tempfile.TemporaryDirectory(prefix="imcflow-sim-") as tmp:
        data, results = Path(tmp) / "images.npz", Path(tmp) / "results.json"
        np.savez(data, pixels=pixels.reshape(len(pixels), -1, pixels.shape[-1]).astype(np.uint8))
        parameters = {"data": str(data), "results": str(results),
                      "in_lanes": gen.top.in_layout.lanes, "out_lanes": lanes,
                      "out_signed": gen.top.out_layout.signed,
                      "out_beats": gen.qnet.output.shape.pixels,
                      "links": gen.manifest["status"]["links"], "progress": progress,
                      **{k: plan[k] for k in ("watchdog", "timeout", "seed", "idle",
                                              "backpressure")}}
        failure = None
        with _stdout_to_stderr(), \
                _environment(COCOTB_LOG_LEVEL="WARNING", GPI_LOG_LEVEL="WARNING"):
            try:
                runner.run(build, TESTBENCH, parameters=parameters,
                           test_id=runner.current_test_id(f"sim-{gen.name}"))
            except runner.SimulationError as e:
                failure = e
        if not results.exists():   # the testbench did not get to write them
            raise failure or runner.SimulationError(f"{TESTBENCH.name} wrote no results")
        r = json.loads(results.read_text())
    wave = str(failure).split("waveform: ")[1].splitlines()[0] if failure is not None and \
        "waveform: " in str(failure) else None
    deadlock = r["deadlock"]
    results = engine.Results(
        np.array(r["in_cycles"], np.int64), np.array(r["out_cycles"], np.int64),
        np.array(r["outputs"], np.int64).reshape(-1, lanes), np.array(r["last"], bool), {},
        r["cycles"], r["wall_seconds"],
        deadlock and {**deadlock, "idle_cycles": None}, None, bool(r["timeout"]),
        r["cpu_seconds"])
    return results, build_seconds, wave, failure
