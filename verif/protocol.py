"""AXI4-Stream protocol checker for the ports of a generated top (cocotb side).

`AxiStreamChecker` watches one AXI4-Stream port (``<prefix>_tvalid``, ``_tready``, ``_tdata``,
``_tlast``) and the synchronous, active-high ``rst`` of the same clock, and fails at the first
broken rule (AMBA AXI4-Stream, sections 2.2 and 2.7):

- **Stall**: once ``TVALID`` is high in a cycle without ``TREADY``, it stays high, with ``TDATA``
  and ``TLAST`` unchanged, until the cycle of the handshake.
- **Reset**: ``TVALID`` is low in every cycle in which ``rst`` is high, except the first cycle of
  a reset (a synchronous reset takes effect at its first clock edge), and a beat offered before
  reset asserts does not oblige anyone after it.
- **Window**: no handshake happens before the first reset or while ``rst`` is high: every beat
  falls in the reset-released window.

It checks whoever drives the port, the testbench (``s_axis``) or the design (``m_axis``). It is a
`~imcflow.verif.bench.Bench` component (``bench.add(checker)``: ``sample`` in every cycle's
``ReadOnly`` phase, including reset cycles) or a coroutine of its own (``checker.start(clk)``)
for testbenches without a `Bench`, such as those driven by cocotbext-axi::

    checker = AxiStreamChecker(dut, "m_axis")
    bench.add(checker)                 # or: checker.start(dut.clk)
    ...
    assert checker.beats == expected   # handshakes inside the window
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["ProtocolError", "AxiStreamChecker"]


class ProtocolError(AssertionError):
    """An AXI4-Stream rule was broken; the message names the port, the rule and the cycle."""


class AxiStreamChecker:
    """Checks the AXI4-Stream rules on port ``prefix`` of ``dut``.

    Parameters
    ----------
    dut : cocotb handle
        Toplevel with ``<prefix>_tvalid``, ``<prefix>_tready``, ``<prefix>_tdata``, optionally
        ``<prefix>_tlast``, and ``rst``.
    prefix : str
        Port name, ``"s_axis"`` or ``"m_axis"``.

    Attributes
    ----------
    beats : int
        Handshakes seen inside the reset-released window.
    resets : int
        Resets seen (rising edges of ``rst``).
    """

    watches_reset = True

    def __init__(self, dut, prefix: str):
        self.name = prefix
        self._valid = getattr(dut, f"{prefix}_tvalid")
        self._ready = getattr(dut, f"{prefix}_tready")
        self._data = getattr(dut, f"{prefix}_tdata")
        self._last = getattr(dut, f"{prefix}_tlast", None)
        self._rst = dut.rst
        self.beats = self.resets = 0
        self._cycle = 0
        self._in_reset = False     # rst was high in the previous cycle
        self._released = False     # a reset has come and gone
        self._held = None          # (data, last) offered without a handshake in the previous cycle

    def drive(self, cycle: int) -> None:
        pass

    def sample(self, cycle: int | None = None) -> None:
        """Check the values of the current cycle (call in its ``ReadOnly`` phase)."""
        last = int(self._last.value) if self._last is not None else 0
        self.step(int(self._rst.value), int(self._valid.value), int(self._ready.value),
                  int(self._data.value), last)

    def step(self, rst: int, valid: int, ready: int, data: int, last: int) -> None:
        """One cycle of the port: the rules' state machine (`sample` reads the handles).

        Raises
        ------
        ProtocolError
            At the first broken rule.
        """
        cycle, self._cycle = self._cycle, self._cycle + 1
        where = f"{self.name}: cycle {cycle}"
        if rst:
            if not self._in_reset:
                self.resets += 1
            elif valid:
                raise ProtocolError(f"{where}: TVALID high during reset")
            self._in_reset, self._held = True, None
            return
        if self._in_reset:
            self._in_reset, self._released = False, True
        if not self._released:
            if valid and ready:
                raise ProtocolError(f"{where}: a beat before the first reset")
            return
        if self._held is not None:
            if not valid:
                raise ProtocolError(f"{where}: TVALID dropped before TREADY")
            if (data, last) != self._held:
                raise ProtocolError(
                    f"{where}: {'TDATA' if data != self._held[0] else 'TLAST'} changed while "
                    f"stalled: (tdata, tlast) 0x{self._held[0]:x}, {self._held[1]} -> "
                    f"0x{data:x}, {last}")
        if valid and ready:
            self.beats += 1
        self._held = (data, last) if valid and not ready else None

    def start(self, clk) -> AxiStreamChecker:
        """Check every cycle of ``clk`` in a coroutine of its own (without a `Bench`)."""
        self._task = cocotb.start_soon(self._run(clk))
        return self

    async def _run(self, clk) -> None:
        edge, settled = RisingEdge(clk), ReadOnly()
        while True:
            await settled
            self.sample()
            await edge
