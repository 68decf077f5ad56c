"""Scaling of ``imcflow explore``: points per second with 1 and 2 local Dask workers.

Runs one sweep of >= 1,000 points (digits and resnet20; mapping, performance, energy, area and,
for digits, accuracy with programming noise averaged over 2 seeds) into a fresh directory with
``--workers 1`` and again with ``--workers 2``, and prints wall time, points/s, the scaling
efficiency ``(rate_2 / rate_1) / 2``, the per-point costs (mean seconds of the point tasks, and
the shared accuracy and event-model work), and the projection of a 1,000,000-point sweep onto a
64-worker cluster that docs/explore.md quotes.

    nice -n 10 python benchmarks/explore_scale.py            # the full sweep
    python benchmarks/explore_scale.py --quick               # 1/8 of it, to try the script
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = """
name = "explore-scale"
networks = ["digits", "resnet20"]
noise_seeds = 2
objectives = ["accuracy", "energy_per_image_j", "throughput_ips"]
plots = [["energy_per_image_j", "throughput_ips"]]
[params]
rows = [128, 256]
cols = [128, 256]
adc_bits = [4, 6, 8]
input_encoding = ["pwm", "bit_serial"]
mvm_cycles = [8, 16]
core_budget = ["none", "2x", "4x"]
buffer = ["line", "frame"]
weight_noise = [0.0, 0.02]
"""
QUICK = SWEEP.replace('core_budget = ["none", "2x", "4x"]', 'core_budget = ["none"]') \
    .replace('cols = [128, 256]', 'cols = [256]').replace('mvm_cycles = [8, 16]', 'mvm_cycles = [8]')



def _cpu() -> float:
    """CPU seconds (user + system) of finished child processes and their waited-for children:
    the explore client, its local cluster's scheduler and workers."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(sweep: Path, out: Path, workers: int) -> dict:
    start, cpu = time.monotonic(), _cpu()
    done = subprocess.run([sys.executable, "-m", "imcflow", "explore", str(sweep), "-o", str(out),
                           "--workers", str(workers), "--json"], capture_output=True, text=True)
    seconds, cpu = time.monotonic() - start, _cpu() - cpu
    if done.returncode != 0:
        sys.exit(f"explore failed:\n{done.stderr}")
    summary = json.loads(done.stdout)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {"workers": workers, "tasks_per_point": summary["tasks"] / summary["points"],
            "points": summary["points"], "completed": summary["completed"],
            "failed": summary["failed"], "wall_s": seconds, "cpu_s": cpu, "points_per_s": summary["points"] / seconds,
            "point_task_s": sum(r.get("seconds", 0) for r in rows) / len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a sweep 1/8 the size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imcflow-explore-scale-") as tmp:
        sweep = Path(tmp) / "sweep.toml"
        sweep.write_text(QUICK if args.quick else SWEEP)
        runs = [run(sweep, Path(tmp) / f"w{n}", n) for n in (1, 2)]
    one, two = runs
    efficiency = two["points_per_s"] / one["points_per_s"] / 2
    for r in runs:
        print(f"{r['workers']} worker(s): {r['points']} points ({r['failed']} failed) in "
              f"{r['wall_s']:.1f} s: {r['points_per_s']:.1f} points/s "
              f"(point tasks {1e3 * r['point_task_s']:.1f} ms each on average); "
              f"{r['cpu_s']:.1f} CPU s")
    load = os.getloadavg()[0]
    print(f"scaling efficiency with 2 workers: {efficiency:.0%} (wall clock; load average "
          f"{load:.1f} on {os.cpu_count()} cores at the end); CPU work with 2 workers is "
          f"{two['cpu_s'] / one['cpu_s']:.2f}x that with 1")
    # Projection onto 64 workers: the CPU work per point measured with one worker (shared
    # accuracy and event-model work, start-up, client and scheduler included), spread over 64
    # workers with the extra work measured when going from 1 to 2 workers; and, since the Dask
    # scheduler handles tasks one at a time, the scheduler's own time at its documented ~1 ms per
    # task (point batches plus shared tasks, in this sweep's proportion).
    per_point = one["cpu_s"] / one["points"]
    compute_h = 1_000_000 * per_point * (two["cpu_s"] / one["cpu_s"]) / 64 / 3600
    scheduler_h = 1_000_000 * one["tasks_per_point"] * 1e-3 / 3600
    hours = max(compute_h, scheduler_h)
    print(f"CPU per point on one worker: {1e3 * per_point:.1f} ms; 1,000,000 points on 64 "
          f"workers: {60 * compute_h:.0f} min of computation, {60 * scheduler_h:.0f} min of "
          f"scheduler time at ~1 ms per task: about {60 * hours:.0f} min")
    print(json.dumps({"runs": runs, "efficiency": efficiency, "cpu_per_point_s": per_point,
                      "cpu_ratio": two["cpu_s"] / one["cpu_s"], "load_average": load,
                      "projected_hours_1m_points_64_workers": hours}))


if __name__ == "__main__":
    main()
