"""Mapping and performance-model time per network: the zoo and an ImageNet ResNet-50 topology.

Prints, for each network, its size and the wall-clock time of `map_network` (tiling, buffers,
replication, skip FIFO depths; target: under 2 s), of the event model for one image (the
latency) and for three images back to back (the steady state), without and with a doubled core
budget. Run: ``python benchmarks/map_speed.py [--skip-resnet50]``.
"""

from __future__ import annotations

import argparse
import time

from imcflow.sw.ir import Add, Conv2d, Dense, GlobalAvgPool, Input, MaxPool, Network, ReLU, Shape
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_network
from imcflow.sw.perf import simulate


def resnet50() -> Network:
    """He et al. (2016) ResNet-50 for 224x224 images: bottleneck blocks (3, 4, 6, 3), topology only."""
    layers = [Input("input", Shape(224, 224, 3)), Conv2d("conv1", "input", 64, kernel=7, stride=2, padding=3),
              ReLU("relu1", "conv1"), MaxPool("pool1", "relu1", kernel=3, stride=2, padding=1)]
    x = "pool1"
    for stage, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=1):
        for block in range(1, blocks + 1):
            p, stride = f"s{stage}b{block}", 2 if block == 1 and stage > 1 else 1
            layers += [Conv2d(f"{p}_a", x, width, kernel=1), ReLU(f"{p}_ra", f"{p}_a"),
                       Conv2d(f"{p}_b", f"{p}_ra", width, kernel=3, stride=stride, padding=1),
                       ReLU(f"{p}_rb", f"{p}_b"), Conv2d(f"{p}_c", f"{p}_rb", 4 * width, kernel=1)]
            skip = x
            if block == 1:
                layers.append(Conv2d(f"{p}_proj", x, 4 * width, kernel=1, stride=stride))
                skip = f"{p}_proj"
            layers += [Add(f"{p}_add", f"{p}_c", skip), ReLU(f"{p}_out", f"{p}_add")]
            x = f"{p}_out"
    layers += [GlobalAvgPool("gap", x), Dense("fc", "gap", 1000)]
    return Network("resnet50", layers)


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-resnet50", action="store_true", help="only the zoo networks")
    args = parser.parse_args()
    nets = [load_network(name) for name in ("digits", "resnet8", "resnet20", "resnet32")]
    if not args.skip_resnet50:
        nets.append(resnet50())
    print(f"{'network':10} {'budget':6} {'layers':>6} {'xbars':>6} {'map s':>7} {'1 image s':>9} "
          f"{'3 images s':>10} {'latency':>8} {'cyc/img':>8} {'bound':>8}")
    for net in nets:
        for budget in (None, "2x"):
            mapping, t_map = _timed(lambda: map_network(net, "default", core_budget=budget))
            one, t_one = _timed(lambda: simulate(mapping, 1))
            three, t_three = _timed(lambda: simulate(mapping, 3))
            print(f"{net.name:10} {budget or '-':6} {len(net):6d} {mapping.crossbars:6d} {t_map:7.3f} "
                  f"{t_one:9.3f} {t_three:10.3f} {one.latency:8d} {three.cycles_per_image:8d} "
                  f"{mapping.cycles_per_image:8d}", flush=True)


if __name__ == "__main__":
    main()
