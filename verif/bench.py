"""cocotb side of a regression: parameters from the runner, a clocked bench, figures for the runner.

`Bench` owns the clock, the reset and one coroutine that steps every registered component each
clock period: first ``drive(cycle)`` right after the rising edge (set the inputs for this
period), then ``sample(cycle)`` in the ``ReadOnly`` phase (read settled values; a stream handshake
seen here completes at the next rising edge). Two triggers per cycle, whatever the number of
drivers, monitors and checkers. Cycle 0 is the first period after reset is released.
``await bench.reset(cycles)`` resets the design again in the middle of a run: every component's
``reset()`` is called (drivers drop what they queued and offered, monitors forget what they
saw), and components are not stepped while ``rst`` is high, except the checkers that declare
``watches_reset = True`` (`imcflow.verif.protocol.AxiStreamChecker`), whose ``sample`` also
sees the reset cycles::

    @cocotb.test()
    async def traffic(dut):
        p = parameters()
        bench = Bench(dut)
        source = bench.add(StreamDriver(dut, "i", idle=0.3, rng=random.Random(p["seed"])))
        sink = bench.add(StreamMonitor(dut, "o", backpressure=0.5, rng=random.Random(p["seed"] + 1)))
        await bench.start()
        source.send(beats)
        await bench.wait_until(lambda: len(sink.beats) == len(beats), timeout=100_000)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from collections.abc import Callable

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, ReadOnly, RisingEdge

from imcflow.verif.runner import PARAMS_ENV, REPORT_ENV

__all__ = ["parameters", "report", "Bench"]


def parameters() -> dict:
    """The parameters `imcflow.verif.runner.run` passed to this testbench."""
    return json.loads(os.environ.get(PARAMS_ENV, "{}"))


def report(**figures) -> None:
    """Add JSON-serializable ``figures`` to what `imcflow.verif.runner.run` returns."""
    path = os.environ.get(REPORT_ENV)
    if path is None:
        return
    data = json.loads(Path(path).read_text()) if os.path.exists(path) else {}
    data.update(figures)
    with open(path, "w") as f:
        json.dump(data, f)


class Bench:
    """A clock, a synchronous reset and the per-cycle loop of its components.

    Parameters
    ----------
    dut : cocotb handle
        Toplevel with ports ``clk`` and ``rst`` (Amaranth's names).
    period_ns : int
        Clock period.

    Attributes
    ----------
    cycle : int
        Current clock period, counted from 0 after reset.
    resets : list of int
        The cycles in which `reset` asserted ``rst``.
    """

    def __init__(self, dut, *, period_ns: int = 10):
        self.dut, self.period_ns = dut, period_ns
        self.cycle = 0
        self.resets: list[int] = []
        self._components: list = []
        self._waiters: list[tuple[Callable[[], bool], int, Event]] = []
        self._reset_left = 0
        self._reset_done: Event | None = None

    def add(self, component):
        """Register a component (anything with ``drive(cycle)`` and ``sample(cycle)``); returns it."""
        self._components.append(component)
        return component

    async def start(self, reset_cycles: int = 2) -> None:
        """Start the clock, hold reset for ``reset_cycles`` edges, then start stepping components."""
        Clock(self.dut.clk, self.period_ns, unit="ns").start()
        if hasattr(self.dut, "mutsel"):  # a design of mutants (imcflow mutate): run this one
            self.dut.mutsel.value = parameters().get("mutsel", 0)
        self.dut.rst.value = 1
        watch = cocotb.start_soon(self._watch_reset())
        await ClockCycles(self.dut.clk, reset_cycles)
        watch.cancel()
        self.dut.rst.value = 0
        cocotb.start_soon(self._loop())

    async def _watch_reset(self) -> None:
        """Sample the ``watches_reset`` components in the cycles of the initial reset."""
        watchers = [c for c in self._components if getattr(c, "watches_reset", False)]
        edge, settled = RisingEdge(self.dut.clk), ReadOnly()
        while watchers:
            await settled
            for component in watchers:
                component.sample(None)
            await edge

    async def reset(self, cycles: int = 2) -> None:
        """Hold ``rst`` high for ``cycles`` clock edges from the next cycle on, in the middle of
        a run; returns in the first cycle after it (``rst`` low again, components stepping).

        Components with a ``reset()`` method have it called when ``rst`` rises; only those with
        ``watches_reset = True`` are sampled while it is high.
        """
        if cycles < 1:
            raise ValueError(f"Reset cycles must be a positive integer, not {cycles!r}")
        self._reset_left, self._reset_done = cycles, Event()
        await self._reset_done.wait()

    async def _hold_reset(self, edge, settled) -> None:
        """The reset cycles requested by `reset`: ``rst`` high, components reset and not stepped."""
        self.dut.rst.value = 1
        self.resets.append(self.cycle)
        for component in self._components:
            if hasattr(component, "reset"):
                component.reset()
        watchers = [c for c in self._components if getattr(c, "watches_reset", False)]
        while self._reset_left:
            self._reset_left -= 1
            await settled
            for component in watchers:
                component.sample(self.cycle)
            await edge
            self.cycle += 1
        self.dut.rst.value = 0
        self._reset_done.set()

    async def _loop(self) -> None:
        edge, settled = RisingEdge(self.dut.clk), ReadOnly()
        while True:
            if self._reset_left:
                await self._hold_reset(edge, settled)
            for component in self._components:
                component.drive(self.cycle)
            await settled
            for component in self._components:
                component.sample(self.cycle)
            for waiter in list(self._waiters):
                condition, deadline, event = waiter
                if condition() or self.cycle >= deadline:
                    self._waiters.remove(waiter)
                    event.set()
            await edge
            self.cycle += 1

    async def wait_until(self, condition: Callable[[], bool], *, timeout: int, what: str = "") -> None:
        """Wait for the cycle at whose sampling ``condition()`` holds; fail after ``timeout`` cycles.

        Returns in that cycle's ``ReadOnly`` phase: act through components, not direct writes.
        """
        if not condition():
            await self._wait(condition, timeout)
            assert condition(), f"timeout after {timeout} cycles waiting for {what or condition}"

    async def wait(self, cycles: int) -> None:
        """Let ``cycles`` clock periods pass (returns in the ``ReadOnly`` phase)."""
        await self._wait(lambda: False, cycles)

    async def _wait(self, condition: Callable[[], bool], cycles: int) -> None:
        event = Event()
        self._waiters.append((condition, self.cycle + cycles, event))
        await event.wait()
