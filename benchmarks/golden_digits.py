"""Speed of the golden model: classify the held-out digits with the quantized digits network.

``python benchmarks/golden_digits.py [--arch default] [--repeat 3]`` prints images/s and the
total seconds of the best of ``--repeat`` runs of `imcflow.sw.inference.run` (target: under 2 s
at the default arch), plus the accuracy as a check that the work was done.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from imcflow.sw import zoo
from imcflow.sw.inference import run
from imcflow.sw.networks import load_qnetwork


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="default", help="architecture preset or TOML file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = zoo.dataset("digits")
    start = time.perf_counter()
    qnet = load_qnetwork("digits", args.arch)
    quantize_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        logits = run(qnet, data.test_images)
        best = min(best, time.perf_counter() - start)
    n = len(data.test_images)
    acc = np.mean(logits.argmax(axis=1) == data.test_labels)
    print(f"golden digits ({args.arch}): {n} images in {best:.3f} s (best of {args.repeat}), "
          f"{n / best:.0f} images/s, accuracy {acc:.4f}; quantization {quantize_s:.3f} s")


if __name__ == "__main__":
    main()
