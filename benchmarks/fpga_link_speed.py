"""The host link at 3,000,000 baud: digits images per second of simulated time through the board.

    python benchmarks/fpga_link_speed.py [--images 100]

Simulates the digits board top without its PLL (`imcflow.fpga.top.SerialAccelerator`: UART pins,
host link, accelerator) under Verilator at 100 MHz with the UART divisor and in-flight window
`BoardTop` derives, bridges its pins to a pseudo-terminal and runs ``imcflow fpga run`` on it, as
tests/test_fpga_cocotb.py does with fewer images. Prints the images answered bit-exact, the
images per second of simulated time (first image byte to last answer), the fraction of that time
the host's line carried characters, and the link's bound: baud / 10 bits per character / bytes
per image frame. The first run builds the simulation (minutes); later runs take it from the cache.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_fpga_cocotb import BAUD, DIVISOR, host_through_pty, serial_board  # noqa: E402

from imcflow.fpga.design import prepare_design  # noqa: E402
from imcflow.fpga.host import link_bound  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()

    design = prepare_design("digits")
    start = time.monotonic()
    build = serial_board(design)
    print(f"simulation build: {time.monotonic() - start:.0f} s", flush=True)
    start = time.monotonic()
    result = host_through_pty(build, args.images, deadline_s=60 * args.images)
    host = result["host"]
    image_bytes = design.height * design.width * design.channels
    line_baud = result["baud"]
    print(f"{host['bit_exact']}/{host['images']} images bit-exact, {host['resent']} sent again, "
          f"errors {host['errors'] or 'none'}, window {host['info']['window']} images")
    print(f"link: host {BAUD} baud, board divisor {DIVISOR} at 100 MHz = {line_baud:.0f} baud "
          f"({(line_baud - BAUD) / BAUD:+.1%})")
    print(f"simulated: {result['answered']} answers in {result['sim_seconds'] * 1e3:.3f} ms = "
          f"{result['images_per_s']:.0f} images/s; host line busy {result['rx_busy']:.1%}")
    print(f"bound: {BAUD} / 10 / {image_bytes + 6} bytes = {link_bound(BAUD, image_bytes):.0f} "
          f"images/s ({link_bound(line_baud, image_bytes):.0f} at the simulated line's "
          f"{line_baud:.0f} baud)")
    print(f"wall: {time.monotonic() - start:.0f} s")
    return 0 if host["bit_exact"] == host["images"] == args.images else 1


if __name__ == "__main__":
    sys.exit(main())
