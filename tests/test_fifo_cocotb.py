"""PipelineFifo and SkidBuffer under Verilator: cocotb testbench tests/cocotb/fifo_tb.py checks
random traffic (changing idle cycles and backpressure) against FifoModel cycle by cycle and with
an in-order scoreboard, then latency and rate at full speed. The configurations below send
100 000 random beats in all."""

# amaranth: UnusedElaboratable=no

from pathlib import Path

import pytest

from imcflow.hw.fifo import PipelineFifo, SkidBuffer
from imcflow.hw.streams import VectorLayout
from imcflow.verif import runner

TB = Path(__file__).parent / "cocotb" / "fifo_tb.py"

# name, component, payload parameters, random beats
CONFIGS = [
    ("fifo_w8_d1", lambda: PipelineFifo(8, 1), {"width": 8}, 15_000),
    ("fifo_w8_d2", lambda: PipelineFifo(8, 2), {"width": 8}, 15_000),
    ("fifo_w32_d5", lambda: PipelineFifo(32, 5), {"width": 32}, 20_000),
    ("fifo_v4x8s_d16", lambda: PipelineFifo(VectorLayout(4, 8, signed_=True), 16),
     {"lanes": 4, "bits": 8, "signed": True}, 25_000),
    ("skid_v3x6", lambda: SkidBuffer(VectorLayout(3, 6)), {"lanes": 3, "bits": 6, "signed": False}, 25_000),
]


def build(name, make, payload):
    dut = make()
    return runner.build(dut, name=name, parameters={
        **payload, "depth": dut.depth, "latency": dut.latency, "interval": dut.interval})


@pytest.mark.parametrize("name, make, payload, beats", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_fifo_under_verilator(name, make, payload, beats, seeds):
    sim = build(name, make, payload)
    seed, = seeds(1)
    report = runner.run(sim, TB, parameters={"seed": seed, "beats": beats})
    assert report["beats"] == beats
    print(f"{name}: {beats} beats in {report['cycles']} cycles, "
          f"full rate {report['full_rate_cycles_per_beat']:.2f} cycles/beat")
