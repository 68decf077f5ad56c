"""How fast the verification backbone is: Verilator build (cold and cached), cocotb simulation
throughput on the FIFO testbench, and one k-induction proof.

    python benchmarks/verif_speed.py [--beats 20000]

Prints one line per figure. The cold build uses a fresh temporary cache, so it measures
Verilator plus the C++ compile of the model and the runtime; the cached build measures hashing
the Verilog and finding the cache entry.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from imcflow.hw.fifo import PipelineFifo
from imcflow.verif import runner
from imcflow.verif.formal import check

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_fifo_formal import QueueSpec  # noqa: E402  (the FIFO's formal contract)

TB = ROOT / "tests" / "cocotb" / "fifo_tb.py"


def timed(what, action):
    start = time.monotonic()
    result = action()
    print(f"{what}: {time.monotonic() - start:.1f} s", flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beats", type=int, default=20_000, help="random beats to simulate")
    args = parser.parse_args()
    fifo = lambda: PipelineFifo(8, 4)                                   # noqa: E731
    parameters = {"width": 8, "depth": 4, "latency": 1, "interval": 1}

    with tempfile.TemporaryDirectory() as cache:
        os.environ["IMCFLOW_CACHE"] = cache
        timed("Verilator build, cold cache", lambda: runner.build(fifo(), name="fifo_w8_d4", parameters=parameters))
        sim = timed("Verilator build, cached", lambda: runner.build(fifo(), name="fifo_w8_d4", parameters=parameters))
        start = time.monotonic()
        report = runner.run(sim, TB, parameters={"seed": 1, "beats": args.beats}, test_id="bench")
        elapsed = time.monotonic() - start
        print(f"cocotb random traffic: {report['beats']} beats, {report['cycles']} cycles in "
              f"{elapsed:.1f} s: {report['beats'] / elapsed:.0f} beats/s, "
              f"{report['cycles'] / elapsed:.0f} cycles/s (incl. simulator start-up and full_rate)")
        timed("k-induction proof of PipelineFifo(4, 4)", lambda: check(QueueSpec(PipelineFifo(4, 4)), depth=7, name="bench"))


if __name__ == "__main__":
    main()
