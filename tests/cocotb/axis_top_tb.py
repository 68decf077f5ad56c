"""cocotb tests of a generated accelerator top's AXI4-Stream ports, run by
tests/test_axis_protocol.py and tests/test_reset.py.

Parameters: ``data`` (``.npz`` with ``pixels`` ``(images, pixels_per_image, C)`` and the golden
``outputs`` ``(images, out_beats, out_lanes)``), ``in_lanes``, ``out_lanes``, ``out_signed``,
``seed``, ``timeout`` (cycles). Every testcase checks the AXI4-Stream rules on both ports with
`imcflow.verif.protocol.AxiStreamChecker` and reports what it saw.

- ``axis_models``: cocotbext-axi's AxiStreamSource and AxiStreamSink (the ecosystem's standard
  models) with pause generators on both sides; one frame per image; every output frame equals
  the golden model's.
- ``reset_in_traffic``: `StreamDriver` / `StreamMonitor` with random idle cycles and
  backpressure; after a random number of input beats (and a random delay) the top is reset for
  1 to 3 cycles with `Bench.reset`, then all images are sent again and every output beat must
  equal the golden model's from the first (before the reset, the outputs must be a prefix).
- ``broken_driver``: a driver that drops ``TVALID`` while stalled: the ``s_axis`` checker must
  trip (its message is reported, so the test passes on the expected failure).
"""

import itertools
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout

from imcflow.hw.streams import VectorLayout
from imcflow.verif.accelerator_tb import axis
from imcflow.verif.bench import Bench, parameters, report
from imcflow.verif.protocol import AxiStreamChecker, ProtocolError
from imcflow.verif.scoreboard import Scoreboard
from imcflow.verif.streams import StreamDriver, StreamMonitor


def load():
    p = parameters()
    data = np.load(p["data"])
    pixels, outputs = data["pixels"], data["outputs"]
    in_layout = VectorLayout(p["in_lanes"], 8)
    out_layout = VectorLayout(p["out_lanes"], 8, p["out_signed"])
    beats_in = [(px.tolist(), n == pixels.shape[1] - 1) for image in pixels
                for n, px in enumerate(image)]
    beats_out = [(px.tolist(), n == outputs.shape[1] - 1) for image in outputs
                 for n, px in enumerate(image)]
    return p, pixels, outputs, in_layout, out_layout, beats_in, beats_out


@cocotb.test()
async def axis_models(dut):
    """cocotbext-axi source and sink with pause generators; checkers on both ports."""
    from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

    p, pixels, outputs, *_ = load()
    checkers = [AxiStreamChecker(dut, port).start(dut.clk) for port in ("s_axis", "m_axis")]
    Clock(dut.clk, 10, unit="ns").start()
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
    rng = random.Random(p["seed"])
    source.set_pause_generator(itertools.cycle([1, 1, 0, 1, 0, 0, 0]))
    sink.set_pause_generator(rng.random() < 0.4 for _ in itertools.count())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 1)
    for image in pixels:
        await source.send(AxiStreamFrame(image.astype(np.uint8).tobytes()))
    dtype = np.int8 if p["out_signed"] else np.uint8
    for n, expected in enumerate(outputs):
        frame = await with_timeout(sink.recv(), p["timeout"] * 10, "ns")
        got = np.frombuffer(bytes(frame.tdata), dtype=dtype).reshape(expected.shape)
        assert np.array_equal(got, expected), f"image {n}: {got.tolist()} != {expected.tolist()}"
    await ClockCycles(dut.clk, 50)
    assert sink.empty(), "an output frame more than the images sent"
    report(frames=len(outputs), beats=[c.beats for c in checkers])


@cocotb.test()
async def reset_in_traffic(dut):
    """A reset at a random cycle in the middle of the stream; then every image again, bit-exact."""
    p, pixels, _, in_layout, out_layout, beats_in, beats_out = load()
    rng = random.Random(p["seed"])
    bench = Bench(dut)
    checkers = [bench.add(AxiStreamChecker(dut, port)) for port in ("s_axis", "m_axis")]
    source = bench.add(StreamDriver(axis(dut, "s_axis", 8 * p["in_lanes"]), "axis",
                                    layout=in_layout, idle=0.2, rng=random.Random(rng.random())))
    board = Scoreboard(beats_out, name="m_axis before the reset")
    sink = bench.add(StreamMonitor(axis(dut, "m_axis", 8 * p["out_lanes"]), "axis",
                                   layout=out_layout, backpressure=0.3,
                                   rng=random.Random(rng.random()),
                                   on_beat=lambda beat: board.actual(beat)))
    await bench.start()
    source.send(beats_in)
    after = rng.randrange(1, len(beats_in))
    await bench.wait_until(lambda: len(source.sent) >= after, timeout=p["timeout"],
                           what=f"{after} input beats")
    await bench.wait(rng.randrange(0, 50))
    before = (len(source.sent), len(sink.beats))
    await bench.reset(rng.randint(1, 3))
    board = Scoreboard(beats_out, name="m_axis after the reset")
    source.send(beats_in)
    await bench.wait_until(lambda: len(sink.beats) == len(beats_out), timeout=p["timeout"],
                           what=f"{len(beats_out)} output beats after the reset")
    await bench.wait(200)
    board.finish()
    assert [c.resets for c in checkers] == [2, 2]   # the first reset and this one
    report(reset_cycle=bench.resets[0], before=list(before), beats=[c.beats for c in checkers])


class DroppingDriver(StreamDriver):
    """Breaks the stream rule: withdraws its beat after the first cycle without ``ready``."""

    def drive(self, cycle):
        if self._offering and not self.ready.value:
            self._offering = False
            self._queue.appendleft(self._current)
            self._set_valid(False)
            return
        super().drive(cycle)


class Catching:
    """Steps ``checker`` and records its first `ProtocolError` instead of failing the test."""

    watches_reset = True

    def __init__(self, checker):
        self.checker, self.error = checker, None

    def drive(self, cycle):
        pass

    def sample(self, cycle):
        if self.error is None:
            try:
                self.checker.sample(cycle)
            except ProtocolError as e:
                self.error = str(e)


@cocotb.test()
async def broken_driver(dut):
    """A driver that drops TVALID before TREADY trips the s_axis checker."""
    p, _, _, in_layout, out_layout, beats_in, _ = load()
    bench = Bench(dut)
    catching = bench.add(Catching(AxiStreamChecker(dut, "s_axis")))
    bench.add(DroppingDriver(axis(dut, "s_axis", 8 * p["in_lanes"]), "axis",
                             layout=in_layout)).send(beats_in)
    bench.add(StreamMonitor(axis(dut, "m_axis", 8 * p["out_lanes"]), "axis", layout=out_layout,
                            backpressure=0.9, rng=random.Random(p["seed"])))
    await bench.start()
    await bench.wait_until(lambda: catching.error is not None, timeout=p["timeout"],
                           what="the checker to trip")
    report(error=catching.error)
