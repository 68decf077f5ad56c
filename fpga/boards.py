"""The boards the FPGA flow targets, their clocking and status LEDs.

- ``ulx3s-85f`` (default): Radiona ULX3S with a Lattice ECP5 LFE5U-85F (84k LUT4s, 208 18-kbit
  block RAMs, 156 18x18 multipliers). A 25 MHz oscillator feeds an EHXPLLL that makes the
  system clock (the ``fpga`` architecture preset's ``clock_mhz``, 100 MHz, or ``--clock-mhz``).
  The FTDI FT231X USB-serial chip is the host link.
- ``icebreaker``: 1BitSquared iCEBreaker with a Lattice iCE40 UP5K (5280 LUT4s, 30 4-kbit block
  RAMs, 8 16x16 multipliers, 4 x 256-kbit SPRAM). It runs from its 12 MHz oscillator without a
  PLL, for small configurations. The FT2232H's second channel is the host link.

The platforms are the amaranth-boards ones with ``openFPGALoader`` removed from their required
tools: building needs only the yowasp tools; programming is a separate step (docs/fpga.md).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

from imcflow.errors import UserError

__all__ = ["Board", "BOARDS", "board", "Ecp5PllParameters", "ecp5_pll"]


@dataclass(frozen=True)
class Board:
    """One supported board.

    Attributes
    ----------
    name : str, the ``--board`` value
    description : str
    family : str, ``"ecp5"`` or ``"ice40"``
    device : str, the FPGA
    oscillator_hz : float, the board's clock input
    default_clock_hz : float, the system clock when none is asked for
    pll : bool, whether the system clock comes from a PLL (else it is the oscillator)
    dsps : int, hard multipliers (ECP5 MULT18X18D, iCE40 SB_MAC16)
    brams : int, block RAMs (ECP5 DP16KD of 18 kbit, iCE40 SB_RAM40_4K of 4 kbit)
    bram_width, bram_depth : int, the widest configuration of one block RAM (bits x words)
    lutram : bool, whether LUTs can be RAM (ECP5 yes, iCE40 no)
    leds : dict, status role (``heartbeat``, ``locked``, ``busy``, ``error``) -> LED number
    """

    name: str
    description: str
    family: str
    device: str
    oscillator_hz: float
    default_clock_hz: float
    pll: bool
    dsps: int
    brams: int
    bram_width: int
    bram_depth: int
    lutram: bool
    leds: dict = field(default_factory=dict)
    _platform: str = ""

    def platform(self):
        """A fresh amaranth-boards platform instance that does not require openFPGALoader."""
        module, name = self._platform.rsplit(".", 1)
        base = getattr(importlib.import_module(module), name)

        class Platform(base):
            @property
            def required_tools(self):
                return [tool for tool in super().required_tools if tool != "openFPGALoader"]

        Platform.__name__ = Platform.__qualname__ = f"{name}_Build"
        return Platform()

    def clock_hz(self, requested_mhz: float | None = None) -> float:
        """The system clock for ``requested_mhz`` (None: the default); boards without a PLL
        run at their oscillator."""
        if not self.pll or requested_mhz is None:
            return self.default_clock_hz
        return ecp5_pll(self.oscillator_hz, requested_mhz * 1e6).output_hz


BOARDS: dict[str, Board] = {
    "ulx3s-85f": Board(
        "ulx3s-85f", "Radiona ULX3S, Lattice ECP5 LFE5U-85F, 25 MHz oscillator, FTDI UART",
        "ecp5", "LFE5U-85F", 25e6, 100e6, True, 156, 208, 36, 512, True,
        {"heartbeat": 0, "locked": 1, "busy": 2, "error": 3},
        "amaranth_boards.ulx3s.ULX3S_85F_Platform"),
    "icebreaker": Board(
        "icebreaker", "1BitSquared iCEBreaker, Lattice iCE40 UP5K, 12 MHz oscillator, FTDI UART",
        "ice40", "iCE40UP5K", 12e6, 12e6, False, 8, 30, 16, 256, False,
        {"heartbeat": 1, "error": 0},          # LED 1 is green, LED 0 red
        "amaranth_boards.icebreaker.ICEBreakerPlatform"),
}


def board(name: str) -> Board:
    """The board called ``name``; `UserError` naming the choices otherwise."""
    if name not in BOARDS:
        raise UserError(f"--board: must be one of {', '.join(BOARDS)}, not {name!r}")
    return BOARDS[name]


# --- ECP5 PLL ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ecp5PllParameters:
    """EHXPLLL dividers for one output on CLKOP, fed back from CLKOP.

    ``output_hz = input_hz * feedback_div / input_div``; the VCO runs at
    ``output_hz * output_div``.
    """

    input_hz: float
    input_div: int
    feedback_div: int
    output_div: int

    @property
    def output_hz(self) -> float:
        return self.input_hz * self.feedback_div / self.input_div

    @property
    def vco_hz(self) -> float:
        return self.output_hz * self.output_div

    @property
    def phase(self) -> int:
        """``CLKOP_CPHASE`` for a zero phase shift, as Project Trellis' ecppll sets it."""
        return (self.output_div - 1) // 2


#: ECP5 PLL limits (Lattice FPGA-TN-02200 / Project Trellis ecppll)
PFD_MIN_HZ, PFD_MAX_HZ = 3.125e6, 400e6
VCO_MIN_HZ, VCO_MAX_HZ = 400e6, 800e6
OUTPUT_MIN_HZ, OUTPUT_MAX_HZ = 3.125e6, 400e6


def ecp5_pll(input_hz: float, output_hz: float) -> Ecp5PllParameters:
    """Dividers that bring ``input_hz`` closest to ``output_hz`` (ties: VCO closest to 600 MHz).

    Raises
    ------
    UserError
        If ``output_hz`` is outside what the PLL can make (3.125..400 MHz).
    """
    if not OUTPUT_MIN_HZ <= output_hz <= OUTPUT_MAX_HZ:
        raise UserError(f"--clock-mhz: must be in {OUTPUT_MIN_HZ / 1e6:g}..{OUTPUT_MAX_HZ / 1e6:g} "
                        f"for the ECP5 PLL, not {output_hz / 1e6:g}")
    best, best_key = None, None
    for input_div in range(1, 129):
        if not PFD_MIN_HZ <= input_hz / input_div <= PFD_MAX_HZ:
            continue
        for feedback_div in range(1, 81):
            out = input_hz * feedback_div / input_div
            lo, hi = max(1, math.ceil(VCO_MIN_HZ / out)), min(128, math.floor(VCO_MAX_HZ / out))
            if lo > hi:
                continue
            output_div = min(max(round(600e6 / out), lo), hi)
            key = (abs(out - output_hz), abs(out * output_div - 600e6))
            if best_key is None or key < best_key:
                best = Ecp5PllParameters(input_hz, input_div, feedback_div, output_div)
                best_key = key
    return best
