"""Verilator simulation speed of the digits accelerator: cycles and images per second.

    python benchmarks/sim_speed.py [--images 360] [-o DIR]

Generates the digits accelerator on the default arch (or reuses DIR when it holds it), builds it
with Verilator (cached by the Verilog's hash) and streams held-out images through it at full rate
with the cocotb testbench of `imcflow sim`. Prints the build time, the simulated cycles, and the
speed of the run after reset: cycles per second and images per second of wall-clock time (the
testbench's Python per-cycle loop included), next to the accelerator's own throughput at its clock.
"""

import argparse
import json
import tempfile
from pathlib import Path

from imcflow.gen.project import generate
from imcflow.verif.sim import passed, simulate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=360, help="held-out digits to stream")
    parser.add_argument("-o", "--output", help="accelerator directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.output or Path(tmp) / "digits")
        manifest = out / "manifest.json"
        if not (manifest.exists() and json.loads(manifest.read_text()).get("network") == "digits"):
            generate(out, "digits", "default")
        f = simulate(out, args.images)
    assert passed(f), f"not bit-exact: {f['first_mismatch'] or f['deadlock']}"
    print(f"digits accelerator: {f['images']} images, {f['simulated_cycles']} cycles "
          f"({f['cycles_per_image']:.1f} per image), Verilator build {f['build_seconds']} s")
    print(f"simulation speed: {f['sim_cycles_per_second']:,} cycles/s, "
          f"{f['sim_images_per_second']:,.1f} images/s "
          f"(the RTL at {f['clock_mhz']:g} MHz: {f['throughput_ips']:,.0f} images/s)")


if __name__ == "__main__":
    main()
