"""The full FPGA build of a network on a board: utilisation, Fmax and build time.

    python benchmarks/fpga_build.py [--board ulx3s-85f] [--network digits] [--arch fpga]
                                    [--clock-mhz F] [--seeds N] [--nextpnr-options OPTS] [-o DIR]

Runs ``imcflow fpga build`` (the whole-network accelerator of `imcflow.gen` behind the UART host
link, on the board's top with its PLL) and prints the figures of its report: LUTs, flip-flops,
block RAMs and multipliers used of those available, Fmax against the target clock, the critical
path and what it comes from, the binding limit, the time of each tool (wall and CPU) and of each
nextpnr phase per seed (`imcflow fpga build --seeds`). The output directory
(default: a temporary one) keeps the bitstream and report.md. Expect minutes: Yosys and
nextpnr run as WebAssembly, single-threaded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="ulx3s-85f")
    parser.add_argument("--network", default="digits")
    parser.add_argument("--arch", default=None)
    parser.add_argument("--clock-mhz", default=None)
    parser.add_argument("--seeds", default=None, help="nextpnr seeds, the best kept")
    parser.add_argument("--nextpnr-options", default=None,
                        help='nextpnr options instead of the flow\'s, e.g. --nextpnr-options="--router router2"')
    parser.add_argument("-o", "--output", default=None, help="keep the build here")
    args = parser.parse_args()

    output = args.output or tempfile.mkdtemp(prefix="imcflow-fpga-")
    command = [sys.executable, "-m", "imcflow", "fpga", "build", "--board", args.board,
               "--network", args.network, "-o", output, "--json"]
    command += ["--arch", args.arch] if args.arch else []
    command += ["--clock-mhz", args.clock_mhz] if args.clock_mhz else []
    command += ["--seeds", args.seeds] if args.seeds else []
    command += [f"--nextpnr-options={args.nextpnr_options}"] if args.nextpnr_options else []
    start = time.monotonic()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)   # progress: stderr
    if done.returncode != 0:
        print(f"imcflow fpga build failed (exit {done.returncode})", file=sys.stderr)
        return done.returncode
    r = json.loads(done.stdout)
    print(f"{r['network']} on {r['board']} ({r['device']}), accelerator {r['accelerator']}")
    for name in ("luts", "ffs", "brams", "dsps"):
        used, available = r[name]["used"], r[name]["available"]
        print(f"{name:>6}: {used:7d} / {available:<7d} {100 * used / available:5.1f} %")
    t, b = r["timing"], r["binding"]
    print(f"  Fmax: {r['fmax_mhz']:.2f} MHz for a {r['target_mhz']:g} MHz target "
          f"({'met' if t['met'] else 'NOT met'}, margin {100 * b['timing_margin']:+.1f} %)")
    cp = t["critical_path"]
    if cp:
        print(f"  critical path: {cp['total_ns']:.2f} ns, {cp['logic_levels']} logic cells, "
              f"{cp['delay_ns']['routing']:.2f} ns routing; from {', '.join(cp['sources'][:6]) or '?'}")
    print(f"  binding limit: {b['binds']}; most used resource: {b['resource']} "
          f"{100 * b['utilization']:.1f} %")
    cpu = r.get("tool_cpu_seconds", {})
    print("  build time: " + ", ".join(f"{k} {v:.0f} s ({cpu.get(k, 0):.0f} s CPU)"
                                       for k, v in r["tool_seconds"].items())
          + f"; total {time.monotonic() - start:.0f} s")
    print(f"  nextpnr {' '.join(r.get('nextpnr_options', []))}:")
    for run in r.get("nextpnr_runs", []):
        print(f"    seed {run['seed']}: {run['fmax_mhz']:.2f} MHz, {run['seconds']:.0f} s "
              f"({run['cpu_seconds']:.0f} s CPU): "
              + ", ".join(f"{p} {s:.0f} s" for p, s in run["phases"].items()))
    print(f"  bitstream and report: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
