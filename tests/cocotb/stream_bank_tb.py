"""cocotb testbench of a bank of independent stream blocks, run by tests/test_pool_cocotb.py and
tests/test_residual_cocotb.py.

The toplevel (an `imcflow.verif.bank.Bank`) holds several units, each a block with
its stream ports renamed ``<unit>_<port>``. Every unit runs at the same time with its own seeded
idle cycles on each input and its own independent backpressure on each output; every output beat
is compared in order with the golden beats computed by the pytest side from `imcflow.sw.golden`.

Parameters (from the runner): ``units``, a list of ``{"name", "seed", "idle", "backpressure",
"inputs": {port: [words]}, "outputs": {port: [words]}, "layouts": {port: [lanes, bits,
signed]}}``, where ``idle`` and ``backpressure`` are a pause probability, a list of phases
``[[probability, cycles], ...]`` repeated (e.g. long stalls that fill a buffer) or a string of
pause flags (``"0011"``); ``timeout``
(cycles) and ``tail`` (cycles after the last expected beat in which nothing more may arrive).
Reports ``cycles``: ``{"<unit>.<port>": [handshake cycle of each beat]}``, for latency and rate
checks, and for a unit with ``"record": true``, ``flags``: ``{"<unit>.<port>": "0110..."}``, the
value of ``valid`` (inputs) or ``ready`` (outputs) in each cycle, for models replayed cycle by
cycle under the same stalls.
"""

import itertools
import random

import cocotb

from imcflow.hw.streams import VectorLayout
from imcflow.verif.bench import Bench, parameters, report
from imcflow.verif.patterns import pauses
from imcflow.verif.scoreboard import Scoreboard
from imcflow.verif.streams import StreamDriver, StreamMonitor


def phases(spec, rng):
    """Pause flags of a probability, of phases ``[[probability, cycles], ...]`` repeated, or of a
    string of ``0`` and ``1`` (``1``: pause), then no pause."""
    if isinstance(spec, str):
        return pauses([flag == "1" for flag in spec])
    if not isinstance(spec, list):
        return pauses(spec, rng)
    return (flag for probability, cycles in itertools.cycle(spec)
            for flag in itertools.islice(pauses(probability, rng), cycles))


class Flags:
    """The value of one signal in each cycle, as a string of 0 and 1."""

    def __init__(self, signal):
        self.signal, self.bits = signal, []

    def drive(self, cycle):
        pass

    def sample(self, cycle):
        self.bits.append("1" if self.signal.value else "0")


@cocotb.test()
async def streams(dut):
    """All units at once under their idle and backpressure patterns; every beat checked."""
    p = parameters()
    bench = Bench(dut)
    agents, boards, flags = {}, [], {}
    for unit in p["units"]:
        rng = random.Random(unit["seed"])
        for port, words in unit["inputs"].items():
            driver = StreamDriver(dut, f"{unit['name']}_{port}",
                                  idle=phases(unit["idle"], random.Random(rng.getrandbits(32))))
            driver.send(words)
            agents[f"{unit['name']}.{port}"] = bench.add(driver)
            if unit.get("record"):
                flags[f"{unit['name']}.{port}"] = bench.add(Flags(driver.valid))
        for port, words in unit["outputs"].items():
            layout = VectorLayout(*unit["layouts"][port])
            board = Scoreboard(words, name=f"{unit['name']}.{port}",
                               fmt=lambda word, layout=layout: repr(layout.unpack(word)))
            boards.append((board, len(words)))
            monitor = agents[f"{unit['name']}.{port}"] = bench.add(StreamMonitor(
                dut, f"{unit['name']}_{port}",
                backpressure=phases(unit["backpressure"], random.Random(rng.getrandbits(32))),
                on_beat=board.actual))
            if unit.get("record"):
                flags[f"{unit['name']}.{port}"] = bench.add(Flags(monitor.ready))
    await bench.start()
    await bench.wait_until(lambda: all(board.matched == n for board, n in boards),
                           timeout=p["timeout"], what="every golden beat")
    await bench.wait(p["tail"])
    for board, _ in boards:
        board.finish()
    report(cycles={name: agent.cycles for name, agent in agents.items()},
           flags={name: "".join(f.bits) for name, f in flags.items()})
