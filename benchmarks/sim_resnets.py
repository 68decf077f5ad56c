"""The CIFAR ResNets (32x32x3) through their RTL: generated, built and simulated end to end.

    python benchmarks/sim_resnets.py [--networks resnet8 resnet20 resnet32]
                                     [--configs line frame 2x] [--images 2] [--warm]

For each network and configuration (line buffers, frame buffers, line buffers with a core budget
of twice the minimum) runs `imcflow gen --network N` and `imcflow sim DIR --images 2` (the C++
engine) and prints: bit-exactness at every layer, the largest differences from the performance
model (image completions and every stage's handshakes, both must be 0), cycles per image and
latency, and the seconds (wall and CPU) of generation, Verilator build and simulation, and their
total (targets: ResNet-8 build <= 60 s, ResNet-32 gen + build + 2 images <= 5 min on 2 cores).
Builds are cold (a fresh build cache) unless ``--warm``. tests/test_sim_resnets.py runs the same
(ResNet-8 line in the regression, the rest marked ``benchmark``); docs/verification.md
("Network-scale runs") records the figures.
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from imcflow.gen.project import generate
from imcflow.verif.sim import simulate

#: configuration name -> (buffer strategy, core budget)
CONFIGS = {"line": ("line", None), "frame": ("frame", None), "2x": ("line", "2x")}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (Verilator, the compilers)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def run(network: str, config: str, images: int, directory: Path) -> dict:
    buffer, budget = CONFIGS[config]
    start, cpu = time.monotonic(), _cpu()
    generate(directory, network, "default", buffer=buffer, core_budget=budget, progress=False)
    gen_seconds, gen_cpu = time.monotonic() - start, _cpu() - cpu
    f = simulate(directory, images, progress=False)
    return {**f.to_json(), "gen_seconds": round(gen_seconds, 1), "gen_cpu_seconds": round(gen_cpu, 1),
            "total_seconds": round(time.monotonic() - start, 1),
            "total_cpu_seconds": round(_cpu() - cpu, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["resnet8", "resnet20", "resnet32"],
                        choices=["resnet8", "resnet20", "resnet32"])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--warm", action="store_true", help="reuse the build cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.warm:
            os.environ["IMCFLOW_CACHE"] = str(Path(tmp) / "cache")
        for network in args.networks:
            for config in args.configs:
                f = run(network, config, args.images, Path(tmp) / f"{network}-{config}")
                print(f"{network} {config}: {f['bit_exact']}/{f['images']} images bit-exact at "
                      f"{f['layers_checked']} layers and the output; model error "
                      f"{f['model_completion_error_cycles']} cycles (completions), "
                      f"{f['model_handshake_error_cycles']} (handshakes); cycles per image "
                      f"{f['cycles_per_image']} (model {f['model_cycles_per_image']}), latency "
                      f"{f['latency_cycles']} (model {f['model_latency_cycles']}); gen "
                      f"{f['gen_seconds']} s (CPU {f['gen_cpu_seconds']} s), build "
                      f"{f['build_seconds']} s (CPU {f['build_cpu_seconds']} s), simulation "
                      f"{f['sim_seconds']} s ({f['cycles_per_second']:,} cycles/s); total "
                      f"{f['total_seconds']} s (CPU {f['total_cpu_seconds']} s)", flush=True)


if __name__ == "__main__":
    main()
