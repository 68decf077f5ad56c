# amaranth: UnusedElaboratable=no
"""WindowSource under Verilator: cocotb testbench tests/cocotb/im2col_tb.py checks every window
against sw.golden.windows under random idle cycles and backpressure, then the cycle of every
handshake at full speed against window_schedule.

One Verilator build holds a bank of window sources (one per geometry), so the edge geometries
take one build and the 20 random ones two. Random geometries come from the test's seeds (each
seed gives one geometry, printed); ``IMCFLOW_SEED=<seed>`` builds and runs that one alone.
"""

import random
from pathlib import Path

import pytest

from imcflow.hw.im2col import WindowSource
from imcflow.sw.arith import act_range
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.golden import conv_output_size
from imcflow.verif import runner
from imcflow.verif.bank import Bank

TB = Path(__file__).parent / "cocotb" / "im2col_tb.py"
IMAGES = 3

# h, w, c, bits, kernel, stride, padding, strategy, signed, pad_value
EDGES = [
    (6, 5, 4, 8, 1, 1, 0, "line", False, 0),       # k = 1
    (5, 5, 3, 8, 5, 1, 0, "line", False, 0),       # k = W = H, no padding (dense after Flatten)
    (7, 7, 4, 8, 7, 1, 0, "frame", False, 0),      # the same, frame strategy
    (9, 7, 2, 8, 3, 2, 1, "line", False, 0),       # stride 2, odd sizes
    (11, 11, 1, 8, 5, 2, 0, "line", False, 0),     # stride 2, odd sizes, C = 1, unused last row
    (10, 8, 1, 8, 3, 1, 1, "line", False, 0),      # C = 1
    (6, 6, 64, 8, 3, 1, 1, "line", False, 0),      # large C
    (7, 6, 2, 8, 5, 1, 4, "line", False, 0),       # padding = k - 1
    (8, 8, 4, 8, 3, 2, 1, "frame", True, -128),    # signed max pooling: pad with the lowest code
    (8, 9, 3, 8, 7, 1, 3, "frame", False, 0),
]


def draw(seed):
    """A random geometry (and the seed of its pixels and stalls) from ``seed``."""
    rng = random.Random(seed)
    while True:
        h, w = rng.randint(1, 12), rng.randint(1, 12)
        kernel = rng.choice([1, 2, 3, 3, 3, 5, 7])
        stride = rng.choice([1, 1, 2, 3])
        padding = rng.randint(0, kernel - 1) if rng.random() < 0.7 else 0
        c, bits = rng.choice([1, 2, 3, 4, 8, 16]), rng.randint(1, 8)
        # Build time grows with the window's lanes: large windows are the edge cases' job.
        if (min(conv_output_size(h, kernel, stride, padding),
                conv_output_size(w, kernel, stride, padding)) >= 1 and kernel ** 2 * c <= 100):
            break
    signed = rng.random() < 0.3
    pad_value = rng.randint(*act_range(bits, signed)) if rng.random() < 0.3 else 0
    return (h, w, c, bits, kernel, stride, padding, rng.choice(["line", "line", "frame"]),
            signed, pad_value)


def run_bank(name, geometries, seeds):
    keys = ("h", "w", "c", "bits", "kernel", "stride", "padding", "strategy", "signed", "pad_value")
    # window source n is unit g<n>: ports g<n>_i -> g<n>_o
    bank = Bank({f"g{n}": WindowSource(WindowGeometry(*g[:3], *g[4:7]), g[3], strategy=g[7],
                                       signed=g[8], pad_value=g[9])
                 for n, g in enumerate(geometries)})
    params = [{"port": name, **dict(zip(keys, g)), "latency": source.latency, "seed": seed}
              for (name, source), g, seed in zip(bank.units.items(), geometries, seeds)]
    for p in params:
        print(p)
    sim = runner.build(bank, name=name, parameters={"geometries": params})
    report = runner.run(sim, TB, parameters={"images": IMAGES})
    for port, figures in report["full_rate"].items():
        print(port, figures)
    return report


def test_edge_geometries(seeds):
    base, = seeds(1)
    report = run_bank("im2col_edges", EDGES, [base + n for n in range(len(EDGES))])
    assert report["windows"] == sum(IMAGES * conv_output_size(g[0], g[4], g[5], g[6])
                                    * conv_output_size(g[1], g[4], g[5], g[6]) for g in EDGES)


@pytest.mark.parametrize("group", [0, 1])
def test_random_geometries(group, seeds):
    chosen = seeds(10)
    for seed in chosen:
        print(f"seed {seed}: geometry {draw(seed)}")
    report = run_bank("im2col_random", [draw(seed) for seed in chosen], chosen)
    assert report["windows"] > 0
