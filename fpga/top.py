"""Board tops: the accelerator behind the UART host link, clocking, reset and status LEDs.

`SerialAccelerator` is everything on the FPGA except clocking and pins: `UartRx` ->
`HostLink` -> the accelerator -> `HostLink` -> `UartTx`, with the serial lines as ports. It is
what the cocotb tests simulate (the board top minus the PLL). `BoardTop` puts it on a board of
`imcflow.fpga.boards`: the system clock (an ECP5 EHXPLLL, or the oscillator), a reset held until
the PLL locks, the UART pins and the status LEDs.

The accelerator is a generated `~imcflow.gen.accelerator.Accelerator`: an input port ``i`` =
``vector_stream(C, 8)`` (pixels in raster order, ``last`` on each image's last pixel), an output
port ``o`` = ``vector_stream(classes, bits, signed)`` (one beat of logits per image), and the
``mapping`` it implements, whose performance model gives its latency.
"""

from __future__ import annotations

from amaranth.hdl import (ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal,
                          Signal)
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from imcflow.fpga.boards import Board, Ecp5PllParameters, ecp5_pll
from imcflow.fpga.link import HOST_TURNAROUND_S, HostLink, window_for
from imcflow.fpga.uart import UartRx, UartTx, divisor_for, fastest_baud
from imcflow.hw.streams import VectorLayout
from imcflow.sw.perf import analyze

__all__ = ["accelerator_geometry", "accelerator_latency", "SerialAccelerator", "Ecp5Pll",
           "BoardTop", "BAUD", "TIMEOUT_S"]

#: baud rate of the host link: the top rate of the boards' USB UARTs (FT231X, FT2232H); a board
#: whose clock cannot make it runs at `imcflow.fpga.uart.fastest_baud`
BAUD = 3_000_000
#: silence inside a frame after which the board drops it
TIMEOUT_S = 0.1


def accelerator_geometry(accelerator) -> dict:
    """``channels``, ``classes``, ``logit_bits`` and ``logit_signed`` of an accelerator's ports.

    Raises
    ------
    TypeError
        If ``accelerator`` lacks an ``i`` port of 8-bit unsigned vectors or an ``o`` port of
        vectors of at most 8 bits.
    """
    members = getattr(getattr(accelerator, "signature", None), "members", {})

    def layout(name):
        try:
            shape = members[name].signature.members["payload"].shape
        except (KeyError, AttributeError):
            shape = None
        if not isinstance(shape, VectorLayout):
            raise TypeError(f"The accelerator must have a stream port {name!r} with a "
                            f"VectorLayout payload, not {accelerator!r}")
        return shape

    i, o = layout("i"), layout("o")
    if i.bits != 8 or i.signed:
        raise TypeError(f"The accelerator's input must carry unsigned 8-bit pixels, not {i!r}")
    if o.bits > 8:
        raise TypeError(f"The accelerator's logits must have at most 8 bits, not {o!r}")
    return {"channels": i.lanes, "classes": o.lanes, "logit_bits": o.bits, "logit_signed": o.signed}


def accelerator_latency(accelerator) -> int:
    """Cycles from an image's first pixel in to its logits out: the performance model's
    (`imcflow.sw.perf.analyze`) of the mapping the accelerator was generated from."""
    return analyze(accelerator.mapping, images=2).latency_cycles


class SerialAccelerator(wiring.Component):
    """An accelerator behind the UART host link: serial lines in and out.

    Parameters
    ----------
    accelerator : wiring.Component
        Ports ``i`` (pixels) and ``o`` (logits) as in the module docstring.
    height, width : int
        Image size (the accelerator's ports carry only the channels).
    divisor : int
        UART clock cycles per bit (``f_clk / baud``).
    window : int
        Images the host may send before their answers.
    timeout : int or None
        Cycles of silence inside a frame after which it is dropped.
    design_id : int
        Reported in INFO frames (`imcflow.fpga.protocol.design_id`).

    Attributes
    ----------
    rx : In(1)
        Serial line from the host (idle 1).
    tx : Out(1)
        Serial line to the host (idle 1).
    pending : Out(range(window + 1))
        Images accepted and not yet answered.
    error : Out(1)
        One-cycle pulse whenever a frame is dropped.
    link : HostLink
    """

    def __init__(self, accelerator, *, height: int, width: int, divisor: int, window: int = 2,
                 timeout: int | None = None, design_id: int = 0):
        geometry = accelerator_geometry(accelerator)
        self.accelerator = accelerator
        self.uart_rx, self.uart_tx = UartRx(divisor), UartTx(divisor)
        self.link = HostLink(height, width, **geometry, window=window, timeout=timeout,
                             design_id=design_id)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          "pending": Out(range(window + 1)), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = rx = self.uart_rx
        m.submodules.uart_tx = tx = self.uart_tx
        m.submodules.link = link = self.link
        m.submodules.accelerator = acc = self.accelerator
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), link.rx_error.eq(rx.error),
                     self.pending.eq(link.pending), self.error.eq(link.error)]
        wiring.connect(m, rx.o, link.i_bytes)
        wiring.connect(m, link.o_bytes, tx.i)
        wiring.connect(m, link.o_pixels, acc.i)
        wiring.connect(m, acc.o, link.i_logits)
        return m


class Ecp5Pll(Elaboratable):
    """One ECP5 EHXPLLL making ``clk_out`` from ``clk_in``, with CLKOP fed back.

    Attributes
    ----------
    clk_in : Signal, the reference clock
    clk_out : Signal, the generated clock
    locked : Signal, the PLL's LOCK output
    parameters : Ecp5PllParameters
    """

    def __init__(self, parameters: Ecp5PllParameters):
        self.parameters = parameters
        self.clk_in, self.clk_out, self.locked = Signal(), Signal(), Signal()

    def elaborate(self, platform):
        p = self.parameters
        m = Module()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{p.input_hz / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{p.output_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
            p_CLKI_DIV=p.input_div, p_CLKFB_DIV=p.feedback_div,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p.output_div,
            p_CLKOP_CPHASE=p.phase, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_RST=0, i_STDBY=0, i_CLKI=self.clk_in, i_CLKFB=self.clk_out,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=self.clk_out, o_LOCK=self.locked,
        )
        return m


class BoardTop(Elaboratable):
    """`SerialAccelerator` on a board: clock, reset, UART pins, status LEDs.

    Clocking: on a board with a PLL (ULX3S), an `Ecp5Pll` makes the system clock from the
    oscillator and the ``sync`` domain is held in reset (`ResetSynchronizer`) until the PLL
    locks; the clock is constrained to its frequency for nextpnr. Without a PLL (iCEBreaker),
    the platform's default ``sync`` domain runs from the oscillator with its power-on reset.

    LEDs (``board.leds``): ``heartbeat`` blinks at 1 Hz while the clock runs, ``locked`` is on
    when reset is released, ``busy`` while images are unanswered, ``error`` for 0.25 s after a
    dropped frame.

    Parameters
    ----------
    board : Board
    accelerator : wiring.Component
    height, width : int
        Image size.
    clock_mhz : float or None
        System clock asked for (None: the board's default; ignored without a PLL).
    baud : int or None
        UART baud rate; None: `imcflow.fpga.uart.fastest_baud` of the clock (`BAUD` when the
        clock makes it within 2 %).
    window : int or None
        As for `SerialAccelerator`; None: `imcflow.fpga.link.window_for` the image and answer
        frames at this baud rate, the accelerator's latency (`accelerator_latency`) and
        `imcflow.fpga.link.HOST_TURNAROUND_S`.
    design_id
        As for `SerialAccelerator`.

    Attributes
    ----------
    clock_hz : float, the system clock
    divisor : int, the UART divisor
    pll : Ecp5PllParameters or None
    system : SerialAccelerator
    """

    def __init__(self, board: Board, accelerator, *, height: int, width: int,
                 clock_mhz: float | None = None, baud: int | None = None,
                 window: int | None = None, design_id: int = 0):
        self.board = board
        self.pll = ecp5_pll(board.oscillator_hz, (clock_mhz or board.default_clock_hz / 1e6) * 1e6) \
            if board.pll else None
        self.clock_hz = self.pll.output_hz if self.pll else board.oscillator_hz
        self.baud = fastest_baud(self.clock_hz) if baud is None else baud
        self.divisor = divisor_for(self.clock_hz, self.baud)
        if window is None:
            geometry = accelerator_geometry(accelerator)
            window = window_for(height * width * geometry["channels"], geometry["classes"],
                                divisor=self.divisor, latency=accelerator_latency(accelerator),
                                turnaround=round(HOST_TURNAROUND_S * self.clock_hz))
        self.system = SerialAccelerator(accelerator, height=height, width=width,
                                        divisor=self.divisor, window=window,
                                        timeout=round(TIMEOUT_S * self.clock_hz),
                                        design_id=design_id)

    def elaborate(self, platform):
        m = Module()
        if self.pll is not None:
            m.submodules.pll = pll = Ecp5Pll(self.pll)
            m.submodules.osc = osc = io.Buffer("i", platform.request(platform.default_clk, 0, dir="-"))
            m.domains.sync = sync = ClockDomain("sync")
            m.d.comb += [pll.clk_in.eq(osc.i), ClockSignal("sync").eq(pll.clk_out)]
            # The reset reaches almost every flip-flop (14k in digits): a DCCA puts it on a
            # global network, not on the fabric routing that the router must share with the
            # data (there it congested router1: builds that stalled at 55-70k arcs).
            m.domains.reset = ClockDomain("reset")
            m.d.comb += ClockSignal("reset").eq(pll.clk_out)
            m.submodules.reset_sync = ResetSynchronizer(~pll.locked, domain="reset")
            m.submodules.reset_global = Instance("DCCA", i_CLKI=ResetSignal("reset"), i_CE=1,
                                                 o_CLKO=ResetSignal("sync"))
            platform.add_clock_constraint(sync.clk, self.clock_hz)

        m.submodules.system = system = self.system
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [system.rx.eq(rx.i), tx.o.eq(system.tx)]

        ticks = round(self.clock_hz)
        second = Signal(range(ticks))
        heartbeat = Signal()
        with m.If(second == ticks // 2 - 1):
            m.d.sync += [second.eq(0), heartbeat.eq(~heartbeat)]
        with m.Else():
            m.d.sync += second.eq(second + 1)
        error_hold = Signal(range(ticks // 4 + 1))
        with m.If(system.error):
            m.d.sync += error_hold.eq(ticks // 4)
        with m.Elif(error_hold != 0):
            m.d.sync += error_hold.eq(error_hold - 1)
        status = {"heartbeat": heartbeat, "locked": pll.locked if self.pll is not None else 1,
                  "busy": system.pending != 0, "error": error_hold != 0}
        for role, number in self.board.leds.items():
            m.submodules[f"led_{role}"] = led = io.Buffer("o", platform.request("led", number, dir="-"))
            m.d.comb += led.o.eq(status[role])
        return m
