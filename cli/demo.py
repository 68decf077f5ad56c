"""``imcflow demo`` (``make demo``): the tool's main job on the built-in default, end to end.

Maps the digits network on the default architecture, generates its accelerator
(`imcflow.gen.project.generate`: Verilog, manifest, weights, FuseSoC core, mapping report) and
simulates it under Verilator on the held-out digits (`imcflow.verif.sim.simulate`), then prints
the accuracy, how many images were bit-exact with the golden model, cycles per image and latency
next to the performance model's predictions, and the memory. It composes two steps, the
generator and the simulator, so it lives in the command layer.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from imcflow.cli.map import table
from imcflow.cli.options import add_output
from imcflow.cli.output import add_json, print_json
from imcflow.cli.sim import failures
from imcflow.files import check_output_directory
from imcflow.gen.project import generate
from imcflow.verif.sim import SimResult, simulate

__all__ = ["NETWORK", "ARCH", "IMAGES", "OUTPUT", "Demo", "demo", "add_arguments", "run"]

#: the built-in default: network, architecture, held-out images, output directory
NETWORK, ARCH, IMAGES, OUTPUT = "digits", "default", 360, "out/demo"


@dataclass(frozen=True)
class Demo:
    """What `demo` did: the simulation's figures, the weights' memory, the mapper's summary (as
    ``report/mapping.json``) and the times."""

    sim: SimResult
    weight_memory_bits: int
    mapping: dict
    gen_seconds: float
    total_seconds: float

    def to_json(self) -> dict:
        """The simulation's figures with ``arch`` the preset's name, plus ``weight_memory_bits``,
        ``mapping``, ``gen_seconds`` and ``total_seconds``."""
        return {**self.sim.to_json(), "arch": ARCH, "weight_memory_bits": self.weight_memory_bits,
                "mapping": self.mapping, "gen_seconds": self.gen_seconds,
                "total_seconds": self.total_seconds}


def demo(images: int = IMAGES, output: str = OUTPUT, *, progress: bool = True,
         force: bool = False) -> Demo:
    """Generate and simulate the default accelerator (`run` prints what it did)."""
    start = time.monotonic()
    gen = generate(output, NETWORK, ARCH, progress=progress, force=force)
    gen_seconds = time.monotonic() - start
    result = simulate(output, images, progress=progress)   # the C++ engine, every layer
    weights = sum(l["rows"] * l["cols"] * l["replication"] for l in gen.manifest["layers"]
                  if l["role"] == "crossbar") * gen.qnet.arch.weight_bits
    summary = json.loads((Path(output) / gen.manifest["files"]["mapping"]).read_text())
    return Demo(result, weights, summary, round(gen_seconds, 1),
                round(time.monotonic() - start, 1))


def add_arguments(parser) -> None:
    parser.add_argument("--images", type=int, default=IMAGES,
                        help=f"held-out digits to simulate (default {IMAGES}, all of them)")
    add_output(parser, required=False, default=OUTPUT, what="where the accelerator is written")
    add_json(parser)


def _kbit(bits: int) -> str:
    return f"{bits / 1000:.1f} kbit"


def run(args) -> int:
    check_output_directory(args.output, args.force)
    d = demo(args.images, args.output, progress=not args.json, force=args.force)
    f = d.sim
    if args.json:
        print_json({k: v for k, v in d.to_json().items() if k != "mapping"})
        return 0 if f.passed else 1
    print(table(d.mapping))
    print()
    print(f"{f.network} on the {ARCH} arch: {f.crossbars} crossbars, activation memory "
          f"{_kbit(f.activation_memory_bits)}, weights {_kbit(d.weight_memory_bits)}")
    print(f"{f.images} held-out images: accuracy {f.accuracy:.3f} (golden model "
          f"{f.golden_accuracy:.3f}), {f.bit_exact} of {f.images} bit-exact at every layer")
    for line in failures(f):
        print(line)
    if f.cycles_per_image is not None:
        print(f"cycles per image {f.cycles_per_image:.1f} (model "
              f"{f.model_cycles_per_image:.1f}, ratio {f.cycles_per_image_ratio:.4f}); "
              f"latency {f.latency_cycles} cycles (model {f.model_latency_cycles}, ratio "
              f"{f.latency_ratio:.4f}); {f.throughput_ips:,.0f} images/s at "
              f"{f.clock_mhz:g} MHz")
    print(f"wrote {args.output}/ (Verilog, manifest, weights, FuseSoC core, report); gen "
          f"{d.gen_seconds} s, Verilator build {f.build_seconds} s, simulation "
          f"{f.sim_seconds} s ({f.cycles_per_second:,} cycles/s), total "
          f"{d.total_seconds} s", file=sys.stderr)
    return 0 if f.passed else 1
