"""Simulation speed of the digits accelerator, and the whole digits data set through its RTL.

    python benchmarks/sim_speed.py [--images 1797] [--cocotb-images 20] [-o DIR]

Generates the digits accelerator on the default arch (or reuses DIR when it holds it), builds it
with Verilator (cached) and streams ``--images`` images back to back at full rate with the C++
engine of `imcflow sim` (default 1797: the 360 held-out digits, then the 1437 training digits,
the whole data set). Prints whether every image was bit-exact at every layer, the largest
difference from the performance model (image completions and every stage's handshakes), and the
engine's speed as `imcflow sim --json` reports it: simulated cycles and images per wall-clock
second of the simulation loop (``cycles_per_second``; targets: 1,000,000 cycles/s and 2,000
images/s) and per CPU second of the simulator's process over the same loop
(``cycles_per_cpu_second``: the fair figure on a shared machine), next to the accelerator's own
throughput at its clock. 1797 images (920,000 cycles) take the ``run`` build profile, the
fastest model (`imcflow.verif.engine.PROFILES`).
With ``--cocotb-images N`` it also runs N images on the cocotb engine for comparison.
"""

import argparse
import json
import tempfile
from pathlib import Path

from imcflow.gen.project import generate
from imcflow.verif.sim import SimResult, simulate


def report(result: SimResult) -> None:
    f = result.to_json()
    build = "cached" if f["cached"] else (f"{f['build_seconds']} s"
                                          + (f" (CPU {f['build_cpu_seconds']} s)"
                                             if f["build_cpu_seconds"] is not None else ""))
    print(f"{f['engine']} engine: {f['images']} images, {f['simulated_cycles']:,} cycles "
          f"({f['cycles_per_image']:.1f} per image); build {build}"
          + (f", profile {f['build_profile']}" if f.get("build_profile") else ""))
    print(f"  bit-exact: {f['bit_exact']}/{f['images']} images at {f['layers_checked']} tapped "
          f"layers and the output; model error: {f['model_completion_error_cycles']} cycles "
          f"(image completions), {f['model_handshake_error_cycles']} (stage handshakes); "
          f"{'passed' if result.passed else 'FAILED'}")
    cpu = f["sim_cpu_seconds"]
    print(f"  speed: {f['cycles_per_second']:,} cycles/s, {f['images_per_second']:,.1f} images/s "
          f"({f['sim_seconds']} s wall); per CPU second: {f['cycles_per_cpu_second']:,} cycles, "
          f"{f['images'] / cpu:,.1f} images ({cpu} s); the RTL at {f['clock_mhz']:g} MHz: "
          f"{f['throughput_ips']:,.0f} images/s", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1797,
                        help="digits to stream (360 held out, 1797 in all)")
    parser.add_argument("--cocotb-images", type=int, default=0,
                        help="also run this many images on the cocotb engine")
    parser.add_argument("-o", "--output", help="accelerator directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.output or Path(tmp) / "digits")
        manifest = out / "manifest.json"
        if not (manifest.exists() and json.loads(manifest.read_text()).get("network") == "digits"):
            generate(out, "digits", "default")
        report(simulate(out, args.images))
        if args.cocotb_images:
            report(simulate(out, args.cocotb_images, engine="cocotb"))


if __name__ == "__main__":
    main()
