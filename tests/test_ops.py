# amaranth: UnusedElaboratable=no
"""The op registry (`imcflow.sw.ops`): every layer kind is one module whose `Op` the IR, the
quantizer, the golden model, the mapper, the TOML and ONNX importers and the generator dispatch
through; the software stack never loads Amaranth; `LaneMap`, the wiring a crossbar kind with its
own row layout reads its window through."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.lanes import LaneMap
from imcflow.hw.streams import VectorLayout
from imcflow.sw.ir import LAYER_KINDS
from imcflow.sw.ops import ROLES, Layer, Op, QLayer, op_for, register, registry
from imcflow.sw.ops.crossbar import gather_lanes
from imcflow.sw.toml_net import LAYER_KEYS
from imcflow.verif.amaranth_sim import run_streams
from test_residual import beats


def test_every_kind_is_complete():
    # Each kind's op names its classes, role and schema; the IR and quantized classes point back.
    assert list(registry())[:9] == ["input", "conv", "dense", "relu", "maxpool", "avgpool",
                                    "global_avg_pool", "add", "flatten"]
    for kind, op in registry().items():
        assert op.kind == kind == op.layer.kind == op.qlayer.kind
        assert op.layer.op is op and op.qlayer.op is op and op_for(kind) is op
        assert issubclass(op.layer, Layer) and issubclass(op.qlayer, QLayer)
        assert op.role in ROLES
        assert LAYER_KINDS[kind] is op.layer and LAYER_KEYS[kind] is op.toml_keys
        # a stage of its own needs an RTL block, and the factory it names exists
        assert (op.rtl is None) == (op.role in ("source", "fused")), kind
        if op.rtl is not None:
            assert callable(op.rtl_factory())


def test_a_kind_is_registered_once_with_a_known_role():
    class Twice(Op):
        kind = "conv"

    class Odd(Op):
        kind = "odd"
        role = "systolic"

    with pytest.raises(ValueError, match="kind 'conv' is registered twice"):
        register(Twice)
    with pytest.raises(ValueError, match="role must be one of source, crossbar, pool, gap, join, "
                                         "fused, not 'systolic'"):
        register(Odd)
    assert "odd" not in registry()


def test_a_kind_without_rtl_says_so():
    with pytest.raises(ValueError, match="Layer kind 'relu' has no RTL block of its own"):
        op_for("relu").rtl_factory()


def test_software_stack_does_not_load_amaranth():
    code = ("import sys, imcflow.sw.ops, imcflow.sw.ir, imcflow.sw.quant, imcflow.sw.inference, "
            "imcflow.sw.mapper, imcflow.sw.toml_net, imcflow.sw.perf, imcflow.sw.networks\n"
            "from imcflow.sw.networks import load_qnetwork\n"
            "load_qnetwork('digits')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'amaranth'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- lanes: the golden model and the RTL ----------------------------------------------------------

def test_gather_lanes_selects_and_zeroes():
    win = np.arange(1, 7).reshape(2, 3)
    assert gather_lanes(win, None) is win
    assert gather_lanes(win, np.array([2, -1, 0, 0])).tolist() == [[3, 0, 1, 1], [6, 0, 4, 4]]


class Clocked(wiring.Component):
    """A combinational block with a clock domain for the simulator's stream drivers."""

    def __init__(self, dut):
        self.dut = dut
        super().__init__({"i": In(dut.i.signature.flip()), "o": Out(dut.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        m.submodules.dut = self.dut
        wiring.connect(m, wiring.flipped(self.i), self.dut.i)
        wiring.connect(m, self.dut.o, wiring.flipped(self.o))
        return m


def test_lane_map_matches_gather_lanes(seeds):
    for seed in seeds(4):
        rng = np.random.default_rng(seed)
        layout = VectorLayout(int(rng.integers(1, 6)), int(rng.integers(1, 9)), bool(rng.integers(2)))
        lanes = rng.integers(-1, layout.lanes, size=int(rng.integers(1, 9)))
        lo, hi = (-(1 << layout.bits - 1), (1 << layout.bits - 1) - 1) if layout.signed \
            else (0, (1 << layout.bits) - 1)
        x = rng.integers(lo, hi + 1, size=(3, 5, layout.lanes))
        dut = Clocked(LaneMap(layout, lanes))
        edges = run_streams(dut, {"i": (dut.i, beats(dut.i, x))},
                            {"o": (dut.o, beats(dut.o, gather_lanes(x, lanes)))}, seed=seed,
                            idle=rng.uniform(0, 0.5), backpressure=rng.uniform(0, 0.6))
        assert edges["i"] == edges["o"]  # combinational: latency 0, a beat per cycle
    assert LaneMap.latency == 0


@pytest.mark.parametrize("layout, lanes, error, message", [
    ("x", [0], TypeError, "Layout must be a VectorLayout, not 'x'"),
    (VectorLayout(2, 4), [], ValueError, "Lanes must not be empty"),
    (VectorLayout(2, 4), [0, 2], ValueError, r"Lane 2 is out of range -1\.\.1"),
    (VectorLayout(2, 4), [-2], ValueError, r"Lane -2 is out of range -1\.\.1"),
])
def test_lane_map_checks_parameters(layout, lanes, error, message):
    with pytest.raises(error, match=message):
        LaneMap(layout, lanes)
