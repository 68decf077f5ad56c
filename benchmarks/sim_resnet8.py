"""ResNet-8 (32x32x3) accelerators under Verilator against the golden and performance models.

    python benchmarks/sim_resnet8.py [--images 2] [--configs line frame 2x]

For each configuration (line buffers, frame buffers, line buffers with a core budget of twice the
minimum), runs ``imcflow gen --network resnet8 --arch default`` and ``imcflow sim --images N``
and prints bit-exactness, cycles per image and latency next to the model's with their ratios, and
the generation, Verilator build and simulation times. tests/test_sim_resnet8.py (marked
``benchmark``) runs the same and asserts the acceptance ratios.
"""

import argparse
import tempfile
import time
from pathlib import Path

from imcflow.gen.project import generate
from imcflow.verif.sim import simulate

#: configuration name -> (buffer strategy, core budget)
CONFIGS = {"line": ("line", None), "frame": ("frame", None), "2x": ("line", "2x")}


def run(config: str, images: int, directory: Path) -> dict:
    buffer, budget = CONFIGS[config]
    start = time.monotonic()
    generate(directory, "resnet8", "default", buffer=buffer, core_budget=budget)
    gen_seconds = time.monotonic() - start
    return {**simulate(directory, images), "gen_seconds": round(gen_seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args()
    for config in args.configs:
        with tempfile.TemporaryDirectory() as tmp:
            f = run(config, args.images, Path(tmp) / config)
        print(f"resnet8 {config}: {f['bit_exact']}/{f['images']} bit-exact; cycles per image "
              f"{f['cycles_per_image']} (model {f['model_cycles_per_image']}, ratio "
              f"{f['cycles_per_image_ratio']:.4f}); latency {f['latency_cycles']} (model "
              f"{f['model_latency_cycles']}, ratio {f['latency_ratio']:.4f}); gen "
              f"{f['gen_seconds']} s, build {f['build_seconds']} s, simulation "
              f"{f['sim_seconds']} s ({f['sim_cycles_per_second']:,} cycles/s)", flush=True)


if __name__ == "__main__":
    main()
