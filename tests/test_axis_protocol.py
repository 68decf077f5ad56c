# amaranth: UnusedElaboratable=no
"""AXI4-Stream rules on a generated top's ports: `imcflow.verif.protocol.AxiStreamChecker`
caught breaking each rule (cycle by cycle, without a simulator), cocotbext-axi's AxiStreamSource
and AxiStreamSink driving the generated top under pause generators with the checker on both
ports (tests/cocotb/axis_top_tb.py), and a broken driver tripping it.

The top is ``small_net`` with line buffers, built as the cocotb engine of ``imcflow sim`` builds
it (same Verilog and flags), so the Verilator build is shared through the cache.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from imcflow.gen.project import generate
from imcflow.sw.inference import run as golden_run
from imcflow.verif import runner
from imcflow.verif.cocotb_engine import BUILD_FLAGS
from imcflow.verif.protocol import AxiStreamChecker, ProtocolError
from small_networks import small_net

TB = Path(__file__).parent / "cocotb" / "axis_top_tb.py"
IMAGES = 3


# --- the rules, cycle by cycle --------------------------------------------------------------

def checker():
    ports = {f"p_{name}": SimpleNamespace(value=0) for name in ("tvalid", "tready", "tdata", "tlast")}
    return AxiStreamChecker(SimpleNamespace(rst=SimpleNamespace(value=0), **ports), "p")


def steps(cycles):
    """Run ``(rst, valid, ready, data, last)`` cycles through a checker; returns it."""
    c = checker()
    for cycle in cycles:
        c.step(*cycle)
    return c


RESET = [(1, 0, 0, 0, 0)] * 2


def test_a_compliant_port_passes_and_its_beats_are_counted():
    c = steps([(1, 1, 1, 5, 0),                  # pre-reset state in a reset's first cycle
               *RESET, (0, 1, 0, 7, 0), (0, 1, 0, 7, 0), (0, 1, 1, 7, 0), (0, 1, 1, 8, 1),
               (0, 0, 0, 9, 0), (0, 1, 0, 3, 1),
               (1, 1, 0, 3, 1), (1, 0, 0, 0, 0),   # a reset releases a stalled beat
               (0, 1, 1, 4, 0)])
    assert (c.beats, c.resets) == (3, 2)


@pytest.mark.parametrize("cycles, message", [
    ([*RESET, (0, 1, 0, 7, 0), (0, 0, 1, 7, 0)], "p: cycle 3: TVALID dropped before TREADY"),
    ([*RESET, (0, 1, 0, 7, 0), (0, 1, 1, 6, 0)],
     "p: cycle 3: TDATA changed while stalled: (tdata, tlast) 0x7, 0 -> 0x6, 0"),
    ([*RESET, (0, 1, 0, 7, 0), (0, 1, 0, 7, 1)],
     "p: cycle 3: TLAST changed while stalled: (tdata, tlast) 0x7, 0 -> 0x7, 1"),
    ([*RESET, (0, 0, 0, 0, 0), (1, 0, 0, 0, 0), (1, 1, 0, 0, 0)],
     "p: cycle 4: TVALID high during reset"),
    ([(0, 1, 1, 1, 0)], "p: cycle 0: a beat before the first reset"),
])
def test_each_broken_rule_is_named_with_its_cycle(cycles, message):
    with pytest.raises(ProtocolError) as error:
        steps(cycles)
    assert str(error.value) == message


# --- the generated top ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_top(tmp_path_factory):
    """``(build, data)``: small_net's top under Verilator and an ``.npz`` of images and golden
    outputs for tests/cocotb/axis_top_tb.py."""
    out = tmp_path_factory.mktemp("small") / "line"
    gen = generate(out, small_net(), "default", buffer="line", progress=False)
    build = runner.build(gen.top, name=gen.name, flags=BUILD_FLAGS)
    shape = gen.qnet.network.shapes[gen.qnet.input.name]
    images = np.random.default_rng(5).integers(0, 256, (IMAGES, shape.h, shape.w, shape.c))
    out_shape = gen.qnet.output.shape
    outputs = golden_run(gen.qnet, images).reshape(IMAGES, out_shape.pixels, out_shape.c)
    data = out / "axis.npz"
    np.savez(data, pixels=images.reshape(IMAGES, -1, images.shape[-1]).astype(np.uint8),
             outputs=outputs)
    return build, {"data": str(data), "in_lanes": gen.top.in_layout.lanes,
                   "out_lanes": gen.top.out_layout.lanes,
                   "out_signed": gen.top.out_layout.signed, "timeout": 50_000}


def test_cocotbext_axi_source_and_sink_with_pauses_are_bit_exact(small_top, seeds):
    build, parameters = small_top
    seed, = seeds(1)
    result = runner.run(build, TB, testcase="axis_models", parameters={**parameters, "seed": seed})
    pixels = np.load(parameters["data"])["pixels"]
    outputs = np.load(parameters["data"])["outputs"]
    assert result["frames"] == IMAGES
    assert result["beats"] == [pixels.shape[0] * pixels.shape[1], outputs.shape[0] * outputs.shape[1]]


def test_a_driver_that_drops_tvalid_trips_the_checker(small_top, seeds):
    build, parameters = small_top
    seed, = seeds(1)
    result = runner.run(build, TB, testcase="broken_driver", parameters={**parameters, "seed": seed})
    assert result["error"].startswith("s_axis: cycle ")
    assert result["error"].endswith(": TVALID dropped before TREADY")
