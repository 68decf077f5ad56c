"""Simulation speed and Verilator build time of the two crossbar flavours (docs/crossbar.md).

For each network and each target (``sim``: the behavioral crossbar, integer arithmetic once per
MVM; ``fpga``: the multiplier-free MAC array), the script generates the accelerator
(`imcflow.gen.project.generate` with ``target``) and builds it as `imcflow sim` does
(`imcflow.verif.engine.build`: the C++ harness, its flags, random initial values) with an empty
cache, so the build is cold: Verilator's run-time library is compiled too, unless
``--warm-runtime`` first builds a small top to put it in the cache (as it is after the first
build on a machine; `imcflow.verif.objcache`). Then the harness streams random images back to back at full rate
(`imcflow.verif.engine.run`: no idle cycles, no backpressure, every tap recorded) for about
``--cycles`` cycles. It prints per flavour the generation time, the build's wall and CPU time
(and the CPU time of Verilator alone: the rest is the C++ compiler and the link), and the
simulated cycles per second of the harness's loop, per CPU second (``cycles/cpu s``, the figure
a busy machine distorts least) and per wall second.

Run: ``python benchmarks/crossbar_flavours.py [--networks digits resnet8] [--cycles N]
[--targets sim fpga] [--warm-runtime] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imcflow.gen.project import generate
from imcflow.verif import engine


#: a top with the accelerator's ports that passes the input through: to compile Verilator's
#: run-time library into the cache (``--warm-runtime``)
PASS_THROUGH = """module pass_through(input clk, input rst, input [7:0] s_axis_tdata, input s_axis_tvalid,
    output s_axis_tready, input s_axis_tlast, output [7:0] m_axis_tdata, output m_axis_tvalid,
    input m_axis_tready, output m_axis_tlast, output [3:0] status);
  assign {s_axis_tready, m_axis_tdata, m_axis_tvalid, m_axis_tlast, status} =
      {m_axis_tready, s_axis_tdata, s_axis_tvalid, s_axis_tlast, 4'd0};
endmodule
"""


def build(gen_dir: Path, cache: Path, warm_runtime: bool) -> engine.Harness:
    """The harness of ``gen_dir``, built with ``cache`` as the cache, emptied first (but for
    Verilator's run-time objects with ``warm_runtime``)."""
    os.environ["IMCFLOW_CACHE"] = str(cache)
    for entry in (cache / "verilator").glob("*"):
        if not (warm_runtime and entry.name == "runtime"):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    if warm_runtime:
        widths = {"clk": 1, "rst": 1, "s_axis_tdata": 8, "s_axis_tvalid": 1, "s_axis_tready": 1,
                  "s_axis_tlast": 1, "m_axis_tdata": 8, "m_axis_tvalid": 1, "m_axis_tready": 1,
                  "m_axis_tlast": 1, "status": 4}
        engine.build(PASS_THROUGH, engine.Ports("pass_through", widths,
                                                engine.Stream(1, 8, False), {}), progress=False)
    manifest = json.loads((gen_dir / "manifest.json").read_text())
    return engine.build((gen_dir / manifest["verilog"]).read_text(),
                        engine.Ports.from_manifest(manifest), progress=False)


def run(harness: engine.Harness, manifest: dict, cycles: int) -> engine.Results:
    """Random images back to back, enough for about ``cycles`` cycles."""
    period = manifest["model"]["cycles_per_image"]
    images = max(2, cycles // period)
    stream = manifest["streams"]["input"]
    pixels = np.random.default_rng(1).integers(
        0, 256, (images, stream["beats_per_image"], stream["lanes"]), dtype=np.uint8)
    out_beats = images * manifest["streams"]["output"]["beats_per_image"]
    return engine.run(harness, pixels, out_beats=out_beats, watchdog=100 * period,
                      timeout=10 * images * period + 100_000, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["digits", "resnet8"])
    parser.add_argument("--targets", nargs="+", default=["sim", "fpga"], choices=["sim", "fpga"])
    parser.add_argument("--cycles", type=int, default=2_000_000,
                        help="simulated cycles per run (about; whole images)")
    parser.add_argument("--warm-runtime", action="store_true",
                        help="Verilator's run-time library already compiled (in the cache)")
    parser.add_argument("--keep", metavar="DIR", help="keep the generated and built files here")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="crossbar_flavours-"))
    cache = root / "cache"
    print(f"{'network':9} {'target':6} {'gen s':>6} {'build s':>8} {'build cpu s':>11} "
          f"{'verilator cpu s':>15} {'cycles/cpu s':>12} {'cycles/s':>10} {'images':>7} "
          f"{'cyc/img':>8}", flush=True)
    for network in args.networks:
        for target in args.targets:
            gen_dir = root / f"{network}-{target}"
            start = time.perf_counter()
            if not (gen_dir / "manifest.json").exists():   # reuse a kept generation
                generate(gen_dir, network, "default", target=target, progress=False)
            t_gen = time.perf_counter() - start
            manifest = json.loads((gen_dir / "manifest.json").read_text())
            harness = build(gen_dir, cache, args.warm_runtime)
            r = run(harness, manifest, args.cycles)
            images = len(r.out_cycles) // manifest["streams"]["output"]["beats_per_image"]
            print(f"{network:9} {target:6} {t_gen:6.1f} {harness.seconds:8.1f} "
                  f"{harness.cpu_seconds:11.1f} {harness.verilate_cpu_seconds:15.1f} "
                  f"{round(r.cycles / r.cpu_seconds):12,} {round(r.cycles / r.wall_seconds):10,} "
                  f"{images:7} {manifest['model']['cycles_per_image']:>8}", flush=True)
    if not args.keep:
        print(f"(built in {root}; pass --keep DIR to keep the files)", file=sys.stderr)


if __name__ == "__main__":
    main()
