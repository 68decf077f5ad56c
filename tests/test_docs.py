"""Docs that cannot go stale: every figure README and docs/ quote from a cheap command is
recomputed here from that command and must appear, formatted as the doc writes it, in the doc.

Each claim is (doc, text with ``{}`` fields, the figures that fill them). A changed figure or a
reworded sentence fails the test, which names the doc and the sentence as it should read. The
figures of expensive runs come from benchmarks/docs_figures.py (ResNet-50's cycles, the deadlock
report, the ONNX digits accuracy under simulation), the other benchmarks/ scripts (FPGA builds)
and the tests that assert them (test_demo.py for the demo's cycles and latency).
"""

from __future__ import annotations

import contextlib
import io
import json
from functools import lru_cache
from pathlib import Path

import pytest

from imcflow import cli
from imcflow.fpga import resources
from imcflow.fpga.boards import BOARDS
from imcflow.gen.project import with_skip_depths
from imcflow.sw.arch import load_arch
from imcflow.sw.ir import Conv2d, Input, Network, Shape
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_network, load_qnetwork
from imcflow.sw.perf import analyze

ROOT = Path(__file__).parents[1]


@lru_cache(maxsize=None)
def _cli_json(*argv) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main([*argv, "--json"]) == 0
    return json.loads(out.getvalue())


def _cli_error(*argv) -> str:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert cli.main(list(argv)) == 2
    return err.getvalue().strip()


def _join(summary: dict, name: str) -> dict:
    return next(l for l in summary["layers"] if l["name"] == name)


def mapper_skip_words():
    line = _join(_cli_json("map", "--network", "resnet32"), "s1b1_add")
    frame = _join(_cli_json("map", "--network", "resnet32", "--buffer", "frame"), "s1b1_add")
    return line["buffer_words"], line["skip_min_words"], frame["buffer_words"]


def mapper_replication():
    runs = [_cli_json("map", "--network", n, "--core-budget", "2x")
            for n in ("resnet8", "resnet20", "resnet32")]
    cycles = {r["cycles_per_image"] for r in runs}
    bounds = {r["cycles_per_image_bound"] for r in runs}
    base = {r["unreplicated"]["cycles_per_image"] for r in runs}
    assert len(cycles) == len(bounds) == len(base) == 1     # "resnet8/20/32 ... reach"
    c, b, u = cycles.pop(), bounds.pop(), base.pop()
    return c, b, f"{u / c:.2f}", u


def mapper_margin_cost():
    m = map_network(load_network("resnet8"), "default", core_budget="2x")
    sized = analyze(m).cycles_per_image
    unbounded = analyze(with_skip_depths(m, {l.name: 10 ** 6 for l in m.layers
                                             if l.role == "join"})).cycles_per_image
    return f"{100 * (sized - unbounded) / unbounded:.1f}", sized, unbounded


def readme_accuracy():
    r = _cli_json("accuracy", "--network", "digits")
    return f"{r['float_accuracy']:.4f}", f"{r['imc_accuracy']:.4f}", r["images"]


def readme_demo_model():
    s = _cli_json("map", "--network", "digits")
    return s["cycles_per_image"], s["latency_cycles"]


def generator_resnet8_model():
    frame = _cli_json("map", "--network", "resnet8", "--buffer", "frame")
    budget = _cli_json("map", "--network", "resnet8", "--core-budget", "2x")
    return (frame["cycles_per_image"], frame["latency_cycles"], budget["cycles_per_image"],
            budget["latency_cycles"])


def generator_mac_array():
    a, out = load_arch(), []
    for name in ("resnet8", "digits"):
        m = map_network(load_network(name), a)
        out.append(sum(min(a.rows, l.rows - t * a.rows)
                       * a.columns_per_cycle(min(a.cols, l.cols - u * a.cols))
                       for l in m.crossbar_layers for t in range(l.row_tiles)
                       for u in range(l.col_tiles)))
        out.append(sum(l.rows * l.cols for l in m.crossbar_layers))
    return tuple(f"{n:,}".replace(",", " ") for n in out)


def readme_error():
    return (_cli_error("gen", "fifo", "--width", "24", "--depth", "0", "-o", "/nonexistent/out"),)


def fpga_fit_error():
    return (_cli_error("fpga", "build", "--board", "icebreaker", "--network", "resnet8",
                       "-o", "/nonexistent/r8"),)


def fpga_fit_figures():
    # the tile model: the crossbar LUT4 of one 144 x 16 conv at 1, 2, 4 and 8 row folds
    net = Network("tile", [Input("x", Shape(8, 8, 16)), Conv2d("c", "x", 16, kernel=3, padding=1)])
    tiles = [resources.estimate(map_network(net, load_arch("fpga", row_folds=f, mac_stages=3,
                                                           slack_folds=False)),
                                BOARDS["ulx3s-85f"]).crossbar_luts for f in (1, 2, 4, 8)]
    errors = [100 * (t / m - 1) for t, m in zip(tiles, (13_422, 7_274, 4_140, 2_551))]
    # the digits build was measured before the fpga preset folded rows, shared multipliers and
    # read windows through one port
    q = load_qnetwork("digits", "fpga")
    e = resources.estimate(map_network(q.network, q.arch.replace(
        row_folds=1, mac_stages=3, slack_folds=False, requant_lanes=0, window_ports=0)),
        BOARDS["ulx3s-85f"])
    return (*(f"{t:,}" for t in tiles), *(f"{d:+.1f}" for d in errors), e.dsps, e.brams,
            f"{e.luts:,}", f"{100 * (e.luts / 59_701 - 1):.1f}",
            f"{e.ffs:,}", f"{100 * (e.ffs / 21_168 - 1):.1f}")


def ice40_accuracy():
    r = _cli_json("accuracy", "--network", "digits_ice40", "--arch", "ice40")
    return f"{100 * r['float_accuracy']:.1f}", f"{100 * r['imc_accuracy']:.1f}"


CLAIMS = [
    ("docs/mapper.md", "With line buffers `lag = 0`: {} words for the 32x32 identity skips of "
                       "resnet32 (minimum {}). With frame buffers an\nidentity skip around two "
                       "convs holds two images ({} words at 32x32)", mapper_skip_words),
    ("docs/mapper.md", "resnet8/20/32 with a 2x budget reach\n{} cycles per image against a bound "
                       "of {} ({}x the unreplicated throughput of {} cycles", mapper_replication),
    ("docs/mapper.md", "({}% on resnet8\nwith a 2x budget: {} cycles per image against {} with "
                       "unbounded skip FIFOs)", mapper_margin_cost),
    ("README.md", '"float_accuracy": {}, "imc_accuracy": {}, "images": {},', readme_accuracy),
    ("README.md", "360 images bit-exact at all 7 stages, {} cycles per image and\n"
                  "{} cycles latency, difference 0)", readme_demo_model),
    ("docs/generator.md", "the model predicts {} cycles per image and {} cycles\nlatency with "
                          "frame buffers, {} and {} with the 2x budget.", generator_resnet8_model),
    ("docs/generator.md", "(ResNet-8: {}\nmultipliers instead of {}; digits: {} instead of {})",
     generator_mac_array),
    ("README.md", "$ imcflow gen fifo --width 24 --depth 0 -o out/\n{}\n", readme_error),
    ("docs/fpga.md", "$ imcflow fpga build --board icebreaker --network resnet8 -o build/r8\n{}\n",
     fpga_fit_error),
    ("docs/fpga.md", "| accuracy, 360 held-out digits | float {} %, IMC {} %", ice40_accuracy),
    ("docs/fpga.md", "For one 144 x 16 tile the model gives\n  {}, {}, {} and {} LUT4 at `F = 1`, "
                     "2, 4 and 8 against the 13,422, 7,274, 4,140 and\n  2,551 measured (table "
                     "below): {} %, {} %, {} % and {} %", fpga_fit_figures),
]


@pytest.mark.parametrize("doc, text, figures", CLAIMS,
                         ids=[f"{d}:{f.__name__}" for d, _, f in CLAIMS])
def test_doc_figures_are_the_commands(doc, text, figures):
    values = figures()
    if figures is fpga_fit_figures:   # one function, two sentences
        values, (dsps, brams, luts, lut_error, ffs, ff_error) = values[:8], values[8:]
        rest = (f"DSPs {dsps} estimated, 122 measured; block RAMs {brams} and 117; LUT4 {luts} "
                f"against 59,701\n({lut_error} %); flip-flops {ffs} against 21,168 ({ff_error} %)")
        assert rest in (ROOT / doc).read_text(), f"{doc} should read: {rest!r}"
    expected = text.format(*values)
    assert expected in (ROOT / doc).read_text(), f"{doc} should read: {expected!r}"
