"""UART (8N1) between the host and the board, as stream components.

A character is a start bit (0), eight data bits, least significant first, and a stop bit (1),
each bit ``divisor`` clock cycles long: the baud rate is ``f_clk / divisor``. On the boards the
link runs at `fastest_baud` of the system clock: 3,000,000 baud, the FT231X's (ULX3S) and
FT2232H's (iCEBreaker) top rate, when the clock makes it within 2 % (divisor 33 at 100 MHz,
1.0 % fast; 4 at 12 MHz, exact), else the next standard rate down (1,000,000 at 25 MHz, exact).

`UartTx` serializes the bytes of its input stream; `UartRx` samples a line in the middle of each
bit and delivers the bytes on an output stream. The receiver cannot stall the sender: a byte that
completes while the previous one still waits on ``o`` is lost and ``overrun`` pulses. A character
whose stop bit reads 0 is dropped and ``error`` pulses; the receiver then waits for the line to
return to 1 before it looks for a start bit, so a break is one error, not many characters.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from imcflow.validate import check_int

__all__ = ["UartTx", "UartRx", "MIN_DIVISOR", "CHARACTER_BITS", "BAUDS", "divisor_for",
           "fastest_baud", "check_divisor", "character_bits"]

#: fewest clock cycles per bit: the receiver samples half a bit after the start edge it saw two
#: synchronizer stages late, and must still land inside the bit
MIN_DIVISOR = 4
#: bits per character: start, 8 data, stop
CHARACTER_BITS = 10
#: baud rates the boards' USB UARTs (FT231X, FT2232H: 3 MHz / n) and hosts agree on, fastest first
BAUDS = (3_000_000, 2_000_000, 1_000_000, 921_600, 460_800, 230_400, 115_200)


def check_divisor(divisor) -> int:
    return check_int("divisor", divisor, MIN_DIVISOR)


def divisor_for(clock_hz: float, baud: int, *, tolerance: float = 0.02) -> int:
    """The divisor closest to ``clock_hz / baud``.

    Raises
    ------
    ValueError
        If the divisor is below `MIN_DIVISOR` or the baud rate it gives is off by more than
        ``tolerance`` (2 %: a receiver sampling mid-bit drifts half a bit over a character at
        5 %, and both ends may err).
    """
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"Baud rate {baud} needs at least {MIN_DIVISOR} clock cycles per bit at "
                         f"{clock_hz / 1e6:g} MHz")
    error = abs(clock_hz / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"Baud rate {baud} is {error:.1%} off at {clock_hz / 1e6:g} MHz "
                         f"(divisor {divisor}); at most {tolerance:.0%} works")
    return divisor


def fastest_baud(clock_hz: float) -> int:
    """The first of `BAUDS` that `divisor_for` can make from ``clock_hz``.

    Raises
    ------
    ValueError
        If none can (a clock below 460 kHz).
    """
    for baud in BAUDS:
        try:
            divisor_for(clock_hz, baud)
            return baud
        except ValueError:
            pass
    raise ValueError(f"No baud rate of {', '.join(map(str, BAUDS))} works at "
                     f"{clock_hz / 1e6:g} MHz")


def character_bits(byte: int, *, stop: int = 1) -> list[int]:
    """Line levels of one 8N1 character, one per bit period: start, data LSB first, stop.

    ``stop=0`` gives a character with a framing error (for tests).
    """
    if not 0 <= byte <= 255:
        raise ValueError(f"Byte must be an integer in 0..255, not {byte!r}")
    return [0, *((byte >> b) & 1 for b in range(8)), stop]


class UartTx(wiring.Component):
    """UART transmitter: each byte of ``i`` as one 8N1 character on ``tx``.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least `MIN_DIVISOR`.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes to send. ``i.ready`` depends on registers only.
    tx : Out(1)
        The serial line, 1 when idle (reset value 1).
    latency : int
        1: the start bit of a byte accepted in cycle ``t`` is on ``tx`` from cycle ``t + 1``.
    interval : int
        ``10 * divisor``: back-to-back bytes leave with no idle time between characters.

    Raises
    ------
    TypeError
        If ``divisor`` is not an integer >= `MIN_DIVISOR`.
    """

    latency = 1

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        self.interval = CHARACTER_BITS * divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        bits = Signal(range(CHARACTER_BITS + 1))   # bit periods left, counting the current one
        baud = Signal(range(self.divisor))         # cycles left in the current bit, minus one
        shift = Signal(9)                          # data bits still to send, then the stop bit
        bit_ends = baud == 0
        # Accept when idle, or in the last cycle of a stop bit (no gap between characters).
        m.d.comb += self.i.ready.eq((bits == 0) | ((bits == 1) & bit_ends))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.tx.eq(0), shift.eq(Cat(self.i.payload, 1)),
                         bits.eq(CHARACTER_BITS), baud.eq(self.divisor - 1)]
        with m.Elif(bits != 0):
            with m.If(bit_ends):
                m.d.sync += [bits.eq(bits - 1), baud.eq(self.divisor - 1),
                             self.tx.eq(shift[0] | (bits == 1)), shift.eq(shift >> 1)]
            with m.Else():
                m.d.sync += baud.eq(baud - 1)
        return m


class _RxState(enum.Enum, shape=3):
    IDLE = 0
    START = 1
    DATA = 2
    STOP = 3
    BREAK = 4


class UartRx(wiring.Component):
    """UART receiver: 8N1 characters on ``rx`` as bytes on ``o``.

    ``rx`` passes a two-stage synchronizer. A falling edge starts a character; the start bit is
    checked half a bit later (a shorter pulse is ignored), then each data bit and the stop bit
    are sampled one bit period apart, in their middles.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least `MIN_DIVISOR`.

    Attributes
    ----------
    rx : In(1)
        The serial line (asynchronous to the clock).
    o : Out(stream.Signature(8))
        Received bytes. ``o.valid`` stays until the handshake; a character completing while it
        is still high is lost (``overrun``).
    error : Out(1)
        One-cycle pulse: a character's stop bit was 0; the character is dropped.
    overrun : Out(1)
        One-cycle pulse: a character was lost because ``o`` was not read in time.
    latency : int
        ``divisor // 2 + 9 * divisor + 3``: cycles from the first cycle of a start bit on
        ``rx`` to ``o.valid`` (two synchronizer stages, the edge, the sampling of the stop bit
        in the middle of its bit period, the output register).
    interval : int
        ``10 * divisor``: one byte per character time; characters may follow back to back.

    Raises
    ------
    TypeError
        If ``divisor`` is not an integer >= `MIN_DIVISOR`.
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        self.interval = CHARACTER_BITS * divisor
        self.latency = divisor // 2 + 9 * divisor + 3
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)

        baud = Signal(range(self.divisor))       # cycles to the next sample, minus one
        bits = Signal(range(9))                  # data bits received so far
        shift = Signal(8)
        sample = baud == 0

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.error.eq(0), self.overrun.eq(0)]

        # An If/Elif chain on a state register rather than m.FSM or m.Switch: Yosys' Verilog
        # backend writes those as `case` statements without the unused encodings, which
        # Verilator rejects (CASEINCOMPLETE).
        state = Signal(_RxState)
        with m.If(state == _RxState.IDLE):
            with m.If(~line):
                m.d.sync += [baud.eq(self.divisor // 2 - 1), state.eq(_RxState.START)]
        with m.Elif(state == _RxState.START):
            with m.If(sample):
                m.d.sync += [baud.eq(self.divisor - 1), bits.eq(0),
                             state.eq(Mux(line, _RxState.IDLE,     # a glitch, not a start bit
                                          _RxState.DATA))]
            with m.Else():
                m.d.sync += baud.eq(baud - 1)
        with m.Elif(state == _RxState.DATA):
            with m.If(sample):
                m.d.sync += [shift.eq(Cat(shift[1:], line)), bits.eq(bits + 1),
                             baud.eq(self.divisor - 1)]
                with m.If(bits == 7):
                    m.d.sync += state.eq(_RxState.STOP)
            with m.Else():
                m.d.sync += baud.eq(baud - 1)
        with m.Elif(state == _RxState.STOP):
            with m.If(sample):
                with m.If(line):
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(shift)]
                    m.d.sync += state.eq(_RxState.IDLE)
                with m.Else():
                    m.d.sync += [self.error.eq(1), state.eq(_RxState.BREAK)]
            with m.Else():
                m.d.sync += baud.eq(baud - 1)
        with m.Else():                                         # _RxState.BREAK
            with m.If(line):
                m.d.sync += state.eq(_RxState.IDLE)
        return m
