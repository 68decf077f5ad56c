"""cocotb testbench of PipelineFifo and SkidBuffer, run by tests/test_fifo_cocotb.py.

Parameters (from the runner): ``depth``, ``latency``, ``interval`` (the component's own numbers),
``lanes``/``bits``/``signed`` for a VectorLayout payload or ``width`` for an integer one,
``beats``, ``seed``, and ``corrupt`` (test the checkers: one golden beat is altered on purpose).
"""

import itertools
import random

import cocotb

from imcflow.hw.fifo import FifoModel
from imcflow.hw.streams import VectorLayout
from imcflow.verif.bench import Bench, parameters, report
from imcflow.verif.patterns import pauses
from imcflow.verif.scoreboard import Scoreboard
from imcflow.verif.streams import StreamDriver, StreamMonitor

# (producer idle, consumer backpressure) of the successive phases of the random-traffic test
PHASES = [(None, None), (0.5, None), (None, 0.5), (0.3, 0.3), (0.1, 0.8), (0.8, 0.1),
          ([1, 1, 1, 0], [0, 1]), (0.05, 0.05)]
PHASE_DECISIONS = 400


class ModelChecker:
    """Compares i.ready, o.valid, o.payload and level with FifoModel in every cycle, and counts
    the cycles spent full and those with a beat in and a beat out (coverage of the traffic)."""

    def __init__(self, dut, depth):
        self.dut, self.model = dut, FifoModel(depth)
        self.full_cycles = self.in_and_out_cycles = 0

    def drive(self, cycle):
        pass

    def sample(self, cycle):
        dut, model = self.dut, self.model
        got = (bool(dut.i__ready.value), bool(dut.o__valid.value), int(dut.level.value))
        want = (model.i_ready, model.o_valid, model.level)
        assert got == want, f"cycle {cycle}: (i.ready, o.valid, level) = {got}, model says {want}"
        if model.o_valid:
            assert int(dut.o__payload.value) == model.o_payload, f"cycle {cycle}: o.payload"
        i_valid = bool(dut.i__valid.value)
        self.full_cycles += model.level == model.depth
        accepted, emitted = model.step(i_valid, int(dut.i__payload.value) if i_valid else None,
                                       bool(dut.o__ready.value))
        self.in_and_out_cycles += accepted and emitted


def geometry(p):
    """The payload layout (or None for integers) and a random beat generator."""
    if "lanes" in p:
        layout = VectorLayout(p["lanes"], p["bits"], p["signed"])
        lo, hi = (-(1 << (p["bits"] - 1)), (1 << (p["bits"] - 1)) - 1) if p["signed"] else (0, (1 << p["bits"]) - 1)
        return layout, lambda rng: ([rng.randint(lo, hi) for _ in range(p["lanes"])], rng.random() < 0.125)
    return None, lambda rng: rng.getrandbits(p["width"])


def phased(rng, column):
    """Pause flags that move through PHASES[...][column], PHASE_DECISIONS decisions per phase."""
    for phase in itertools.cycle(PHASES):
        spec = phase[column]
        spec = itertools.cycle(spec) if isinstance(spec, list) else spec
        yield from itertools.islice(pauses(spec, rng), PHASE_DECISIONS)


@cocotb.test()
async def random_traffic(dut):
    """Random beats under changing idle/backpressure: in order, none lost or duplicated, and
    cycle-exact agreement with FifoModel."""
    p = parameters()
    layout, beat = geometry(p)
    rng = random.Random(p["seed"])
    beats = [beat(rng) for _ in range(p["beats"])]
    golden = list(beats)
    if p.get("corrupt"):
        golden[len(golden) // 2] = beat(random.Random(-1))
    board = Scoreboard(golden, name="o")

    bench = Bench(dut)
    source = bench.add(StreamDriver(dut, "i", layout=layout, idle=phased(random.Random(p["seed"] + 1), 0)))
    sink = bench.add(StreamMonitor(dut, "o", layout=layout, on_beat=board.actual,
                                   backpressure=phased(random.Random(p["seed"] + 2), 1)))
    checker = bench.add(ModelChecker(dut, p["depth"]))
    await bench.start()
    source.send(beats)
    await bench.wait_until(lambda: len(sink.beats) == len(beats), timeout=40 * len(beats) + 100,
                           what=f"{len(beats)} beats on o")
    await bench.wait(2 * p["depth"] + 4)   # nothing extra may follow
    board.finish()
    report(beats=len(sink.beats), cycles=bench.cycle, full_cycles=checker.full_cycles,
           in_and_out_cycles=checker.in_and_out_cycles)


@cocotb.test()
async def full_rate(dut):
    """No idle cycles, no backpressure: every beat comes out `latency` cycles after it went in,
    one every `interval` cycles."""
    p = parameters()
    layout, beat = geometry(p)
    rng = random.Random(p["seed"])
    beats = [beat(rng) for _ in range(200)]

    bench = Bench(dut)
    source = bench.add(StreamDriver(dut, "i", layout=layout))
    sink = bench.add(StreamMonitor(dut, "o", layout=layout))
    await bench.start()
    source.send(beats)
    await bench.wait_until(lambda: len(sink.beats) == len(beats), timeout=3 * len(beats))
    Scoreboard.check(beats, sink.beats, name="o")
    latencies = {o - i for i, o in zip(source.cycles, sink.cycles)}
    gaps = {b - a for a, b in zip(sink.cycles, sink.cycles[1:])}
    assert latencies == {p["latency"]}, f"latencies {latencies}, documented {p['latency']}"
    assert gaps == {p["interval"]}, f"output intervals {gaps}, documented {p['interval']}"
    report(full_rate_cycles_per_beat=(sink.cycles[-1] - sink.cycles[0]) / (len(beats) - 1))
