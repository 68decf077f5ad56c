"""cocotb stream driver and monitor for Amaranth stream ports in generated Verilog.

An Amaranth stream port ``p`` appears in Verilog as ``p__valid``, ``p__ready`` and ``p__payload``.
Both classes are components of a `~imcflow.verif.bench.Bench`, which calls ``drive(cycle)`` after
each rising edge and ``sample(cycle)`` in the ``ReadOnly`` phase. Payloads are integers, or with a
`~imcflow.hw.streams.VectorLayout` ``(values, last)`` pairs converted with ``layout.pack/unpack``.

- `StreamDriver` offers queued beats, inserting idle cycles between beats from a seeded
  `~imcflow.verif.patterns.pauses` pattern; once ``valid`` is high it stays high with the same
  payload until the handshake.
- `StreamMonitor` drives ``ready`` from a seeded backpressure pattern (or watches passively),
  records every handshake's beat and cycle, and checks the producer's side of the stream rules:
  ``valid`` never drops and the payload never changes before the handshake.

Both record ``cycles``, the clock period of each handshake, so tests can measure latency
(output cycle minus input cycle of the same beat) and rate. `Bench.reset
<imcflow.verif.bench.Bench.reset>` calls their ``reset()``: a driver drops its queue and its
offer (``valid`` low), a monitor forgets an offer it was holding, and both start their records
afresh, so a test resends the stream and expects all of it again.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

from imcflow.verif.patterns import pauses

__all__ = ["StreamDriver", "StreamMonitor"]


class _Port:
    def __init__(self, dut, port: str, layout):
        self.name, self.layout = port, layout
        self.valid = getattr(dut, f"{port}__valid")
        self.ready = getattr(dut, f"{port}__ready")
        self.payload = getattr(dut, f"{port}__payload")

    def encode(self, beat) -> int:
        return self.layout.pack(*beat) if self.layout is not None else int(beat)

    def decode(self, word: int):
        return self.layout.unpack(word) if self.layout is not None else word


class StreamDriver(_Port):
    """Drives stream input ``port`` of ``dut`` with queued beats.

    Parameters
    ----------
    dut : cocotb handle
    port : str
        Amaranth port name (``"i"`` drives ``i__valid``, ``i__payload``; reads ``i__ready``).
    layout : VectorLayout, optional
        Beats are ``(values, last)`` pairs packed with this layout; default: integers.
    idle : pause spec
        Idle cycles before a beat: probability (with ``rng``), pattern, or None.
    rng : random.Random, optional

    Attributes
    ----------
    sent : list
        Beats accepted by the DUT since the last reset, in order.
    cycles : list of int
        Cycle of each accepted beat's handshake.
    """

    def __init__(self, dut, port: str, *, layout=None, idle=None, rng: random.Random | None = None):
        super().__init__(dut, port, layout)
        self._pauses = pauses(idle, rng)
        self._queue: deque = deque()
        self._current = None
        self._offering = False
        self._valid = False
        self.sent: list = []
        self.cycles: list[int] = []
        self.valid.value = 0

    def send(self, beats: Iterable) -> None:
        """Queue ``beats`` to be sent after those already queued."""
        self._queue.extend(beats)

    def reset(self) -> None:
        """The design is being reset: drop the queue and the beat on offer, ``valid`` low."""
        self._queue.clear()
        self._offering = False
        self._set_valid(False)
        self.sent, self.cycles = [], []

    def drive(self, cycle: int) -> None:
        if self._offering:
            return
        if self._queue and not next(self._pauses):
            self._current = self._queue.popleft()
            self.payload.value = self.encode(self._current)
            self._set_valid(True)
            self._offering = True
        else:
            self._set_valid(False)

    def _set_valid(self, valid: bool) -> None:
        if valid != self._valid:
            self.valid.value = self._valid = valid

    def sample(self, cycle: int) -> None:
        if self._offering and self.ready.value:
            self.sent.append(self._current)
            self.cycles.append(cycle)
            self._offering = False


class StreamMonitor(_Port):
    """Accepts (or watches) stream output ``port`` of ``dut`` and records its beats.

    Parameters
    ----------
    dut : cocotb handle
    port : str
        Amaranth port name (``"o"`` reads ``o__valid``, ``o__payload``; drives ``o__ready``).
    layout : VectorLayout, optional
        Decode payloads into ``(values, last)`` pairs; default: integers.
    backpressure : pause spec
        Cycles with ``ready`` low: probability (with ``rng``), pattern, or None (always ready).
    rng : random.Random, optional
    passive : bool
        Do not drive ``ready``; record the handshakes another agent makes.
    on_beat : callable, optional
        Called with each beat as it is accepted (e.g. `Scoreboard.actual`), so a test fails at
        the first wrong beat.

    Attributes
    ----------
    beats : list
        Accepted beats since the last reset, in order.
    cycles : list of int
        Cycle of each beat's handshake.

    Raises
    ------
    AssertionError
        From ``sample``, if ``valid`` drops or the payload changes before the handshake.
    """

    def __init__(self, dut, port: str, *, layout=None, backpressure=None,
                 rng: random.Random | None = None, passive: bool = False,
                 on_beat: Callable[[object], None] | None = None):
        super().__init__(dut, port, layout)
        self._pauses = None if passive else pauses(backpressure, rng)
        self._on_beat = on_beat
        self._held = None      # payload offered but not accepted in the previous cycle
        self._ready = False
        self.beats: list = []
        self.cycles: list[int] = []
        if not passive:
            self.ready.value = 0

    def reset(self) -> None:
        """The design is being reset: no offer is pending; the records start afresh."""
        self._held = None
        self.beats, self.cycles = [], []

    def drive(self, cycle: int) -> None:
        if self._pauses is not None:
            ready = not next(self._pauses)
            if ready != self._ready:
                self.ready.value = self._ready = ready

    def sample(self, cycle: int) -> None:
        valid = bool(self.valid.value)
        word = int(self.payload.value) if valid or self._held is not None else None
        if self._held is not None:
            assert valid, f"{self.name}: valid dropped before the handshake in cycle {cycle}"
            assert word == self._held, (f"{self.name}: payload changed before the handshake in "
                                        f"cycle {cycle}: {self.decode(self._held)!r} -> {self.decode(word)!r}")
        if not valid:
            return
        if self._ready if self._pauses is not None else self.ready.value:
            beat = self.decode(word)
            self.beats.append(beat)
            self.cycles.append(cycle)
            self._held = None
            if self._on_beat is not None:
                self._on_beat(beat)
        else:
            self._held = word
