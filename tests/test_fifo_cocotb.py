"""PipelineFifo and SkidBuffer under Verilator: cocotb testbench tests/cocotb/fifo_tb.py checks
random traffic (changing idle cycles and backpressure) against FifoModel cycle by cycle and with
an in-order scoreboard, then latency and rate at full speed. The configurations below send
100 000 random beats in all."""

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
    # the traffic filled the queue, and (where the rate allows it) streamed through it
    assert report["full_cycles"] > 0
    assert (report["in_and_out_cycles"] > 0) == (sim.parameters["interval"] == 1)
    print(f"{name}: {beats} beats in {report['cycles']} cycles ({report['full_cycles']} full, "
          f"{report['in_and_out_cycles']} with a beat in and out), "
          f"full rate {report['full_rate_cycles_per_beat']:.2f} cycles/beat")


def test_failures_name_the_testcase_and_keep_the_waveform(seeds):
    # The testbench's checkers must catch a wrong beat (here one golden beat is altered on
    # purpose) and the runner must name the failing testcase, the beat and the kept waveform.
    name, make, payload, _ = CONFIGS[1]
    sim = build(name, make, payload)
    seed, = seeds(1)
    with pytest.raises(runner.SimulationError) as failure:
        runner.run(sim, TB, parameters={"seed": seed, "beats": 500, "corrupt": True},
                   testcase="random_traffic")
    message = str(failure.value)
    assert message.startswith("fifo_tb.py on fifo_w8_d2: random_traffic: ")
    assert "o: beat 250: expected" in message and "(sim time " in message
    wave = Path(message.split("waveform: ")[1].splitlines()[0])
    assert wave.suffix == ".vcd" and wave.stat().st_size > 0
    wave.unlink()
