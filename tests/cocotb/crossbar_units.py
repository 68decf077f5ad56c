"""cocotb side shared by crossbar_tb.py, accumulator_tb.py and core_tb.py.

Their toplevels are banks (`imcflow.verif.bank.Bank`, built by ``run_bundle`` in
tests/test_crossbar_cocotb.py): several independent DUTs side by side, DUT ``k``'s ports prefixed
``u<k>_``, so one Verilator build checks many geometries. A `Unit`
is the verification of one of them inside a shared `~imcflow.verif.bench.Bench`: a
`~imcflow.verif.streams.StreamDriver` per input, a `~imcflow.verif.streams.StreamMonitor` on the
output feeding an in-order `~imcflow.verif.scoreboard.Scoreboard`, and pause patterns that a test
switches between phases (`Regime`). The golden beats are computed on the pytest side from
`imcflow.sw` and read here from an ``.npz`` file.
"""

from __future__ import annotations

import random

from imcflow.hw.streams import VectorLayout
from imcflow.verif.patterns import pauses
from imcflow.verif.scoreboard import Scoreboard
from imcflow.verif.streams import StreamDriver, StreamMonitor

__all__ = ["Regime", "Unit", "vectors"]


class Regime:
    """A pause pattern (see `imcflow.verif.patterns.pauses`) that can be changed between phases."""

    def __init__(self, spec=None, rng: random.Random | None = None):
        self.set(spec, rng)

    def set(self, spec, rng: random.Random | None = None) -> None:
        self._pauses = pauses(spec, rng)

    def __iter__(self):
        return self

    def __next__(self) -> bool:
        return next(self._pauses)


def vectors(array, image: int):
    """``(values, last)`` beats of the rows of ``array``, ``last`` on every ``image``-th one."""
    return [(row.tolist(), (n + 1) % image == 0) for n, row in enumerate(array)]


class Unit:
    """Drivers, monitor and scoreboard of DUT ``prefix`` of a bundle.

    Parameters
    ----------
    bench : Bench
    dut : cocotb handle of the bundle toplevel
    prefix : str
        Port prefix of this DUT (``"u3_"``).
    inputs : dict of str to VectorLayout or None
        Input ports (without prefix) and their payload layouts (None: integer beats).
    output : str, VectorLayout
        The output port and its layout.
    seed : int
        Seeds the idle and backpressure patterns.
    """

    def __init__(self, bench, dut, prefix: str, inputs: dict, output: tuple[str, VectorLayout],
                 seed: int):
        self.bench, self.prefix = bench, prefix
        self.rng = random.Random(seed)
        self.idle = {port: Regime() for port in inputs}
        self.stall = Regime()
        name, layout = output
        self.board = Scoreboard(name=prefix + name, fmt=repr)
        self.expected = 0
        self.drivers = {port: bench.add(StreamDriver(dut, prefix + port, layout=lay,
                                                     idle=self.idle[port]))
                        for port, lay in inputs.items()}
        self.monitor = bench.add(StreamMonitor(dut, prefix + name, layout=layout,
                                               backpressure=self.stall,
                                               on_beat=self.board.actual))

    def randomize(self, idle: float, stall: float) -> None:
        """Random idle cycles on every input (independently) and backpressure on the output."""
        for regime in self.idle.values():
            regime.set(idle, random.Random(self.rng.getrandbits(32)))
        self.stall.set(stall, random.Random(self.rng.getrandbits(32)))

    def full_speed(self) -> None:
        """No idle cycles, no backpressure."""
        for regime in [*self.idle.values(), self.stall]:
            regime.set(None)

    def expect(self, beats: list) -> None:
        """Golden output beats, in order after those expected before."""
        for beat in beats:
            self.board.expect(beat)
        self.expected += len(beats)

    async def sent(self, port: str, beats: list, *, timeout: int) -> None:
        """Send ``beats`` on ``port`` and wait until the DUT has taken them all."""
        driver = self.drivers[port]
        taken = len(driver.sent) + len(beats)
        driver.send(beats)
        await self.bench.wait_until(lambda: len(driver.sent) == taken, timeout=timeout,
                                    what=f"{len(beats)} beats taken on {self.prefix}{port}")

    async def drained(self, *, timeout: int) -> None:
        """Wait until every expected output beat has arrived."""
        await self.bench.wait_until(lambda: len(self.monitor.beats) == self.expected,
                                    timeout=timeout,
                                    what=f"{self.expected} beats on {self.monitor.name}")

    async def transfer(self, beats: dict[str, list], expected: list, *, timeout: int) -> dict:
        """Send ``beats`` on the inputs, wait for the ``expected`` output beats, and return the
        handshake cycles of this transfer: ``{input: [cycle, ...], "o": [cycle, ...]}``."""
        first = {port: len(self.drivers[port].cycles) for port in beats}
        out = self.expected
        self.expect(expected)
        for port, port_beats in beats.items():
            self.drivers[port].send(port_beats)
        await self.drained(timeout=timeout)
        cycles = {port: self.drivers[port].cycles[first[port]:] for port in beats}
        cycles["o"] = self.monitor.cycles[out:]
        return cycles

    def check_rate(self, cycles: dict, port: str, latency: int, interval: int) -> None:
        """Assert that the beats of a full-speed transfer on ``port`` were taken every
        ``interval`` cycles and that each output followed its input ``latency`` cycles later."""
        taken, out = cycles[port], cycles["o"]
        gaps = {b - a for a, b in zip(taken, taken[1:])}
        latencies = {o - i for i, o in zip(taken, out)}
        assert gaps == {interval}, f"{self.prefix}{port}: input gaps {gaps}, interval {interval}"
        assert latencies == {latency}, f"{self.prefix}o: latencies {latencies}, latency {latency}"

    async def finish(self, tail: int) -> None:
        """Let ``tail`` cycles pass (no further beat may come), then check nothing is missing."""
        await self.bench.wait(tail)
        self.board.finish()
