# amaranth: UnusedElaboratable=no
"""UartTx and UartRx in the Amaranth simulator: bit timing on the line, latency and rate against
the documented attributes, loopback under random idle and backpressure, baud-rate tolerance,
framing errors, breaks, glitches and overruns."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from imcflow.errors import UserError
from imcflow.fpga.uart import (BAUDS, MIN_DIVISOR, UartRx, UartTx, character_bits, divisor_for,
                               fastest_baud)
from imcflow.verif.amaranth_sim import stream_send
from imcflow.verif.patterns import pauses
from imcflow.verif.scoreboard import Scoreboard


def simulate(dut, *testbenches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for testbench in testbenches:
        sim.add_testbench(testbench, background=testbench is not testbenches[0])
    sim.run()


async def drive_line(ctx, pin, levels, cycles_per_bit):
    """Hold each level for ``cycles_per_bit`` cycles (a float spreads the rounding)."""
    t = 0.0
    for level in levels:
        ctx.set(pin, level)
        start, t = round(t), t + cycles_per_bit
        await ctx.tick().repeat(round(t) - start)
    ctx.set(pin, 1)


# --- constructor checks and divisors ------------------------------------------------------------

@pytest.mark.parametrize("cls", [UartTx, UartRx])
@pytest.mark.parametrize("divisor", [3, 0, 8.0, "16", True])
def test_divisor_must_be_an_integer_of_at_least_4(cls, divisor):
    with pytest.raises(UserError, match=rf"^divisor: must be an integer >= 4, not {divisor!r}$"):
        cls(divisor)


def test_divisor_for_the_boards():
    assert divisor_for(100e6, 115200) == 868     # ULX3S at 100 MHz: 0.006 % off
    assert divisor_for(12e6, 115200) == 104      # iCEBreaker at 12 MHz: 0.16 % off
    assert divisor_for(24e6, 3_000_000) == 8     # exact
    with pytest.raises(ValueError, match=r"^Baud rate 3000000 is 4.2% off at 25 MHz \(divisor 8\)"):
        divisor_for(25e6, 3_000_000)
    with pytest.raises(ValueError, match=r"^Baud rate 3000000 needs at least 4 clock cycles"):
        divisor_for(10e6, 3_000_000)


def test_fastest_baud_is_3_mbaud_where_the_clock_makes_it():
    assert BAUDS[0] == 3_000_000 and list(BAUDS) == sorted(BAUDS, reverse=True)
    assert fastest_baud(100e6) == 3_000_000      # divisor 33: 1.0 % fast
    assert fastest_baud(12e6) == 3_000_000       # iCEBreaker: divisor 4, exact
    assert fastest_baud(25e6) == 1_000_000       # 3 and 2 Mbaud are 4.2 % off; divisor 25, exact
    assert fastest_baud(3e6) == 230_400          # 460800 is 7 % off; divisor 13, 0.2 % off
    with pytest.raises(ValueError, match=r"^No baud rate of 3000000, .*, 115200 works at 0.4 MHz$"):
        fastest_baud(0.4e6)


def test_character_bits():
    assert character_bits(0xA5) == [0, 1, 0, 1, 0, 0, 1, 0, 1, 1]
    assert character_bits(0x00, stop=0)[-1] == 0
    with pytest.raises(ValueError):
        character_bits(256)


# --- transmitter --------------------------------------------------------------------------------

@pytest.mark.parametrize("divisor", [MIN_DIVISOR, 7])
def test_tx_line_timing_and_back_to_back_rate(divisor):
    # Bytes offered back to back leave as characters with no idle bit between them: the line,
    # sampled every cycle, is exactly the concatenation of the characters, each bit `divisor`
    # cycles long, starting the cycle after the first handshake.
    dut = UartTx(divisor)
    data = [0x00, 0xFF, 0xA5, 0x3C]
    line, handshakes = [], []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        for cycle in range(len(data) * dut.interval + 5):
            sent = len(handshakes)
            ctx.set(dut.i.valid, sent < len(data))
            ctx.set(dut.i.payload, data[sent] if sent < len(data) else 0)
            _, _, ready, valid, tx = await ctx.tick().sample(dut.i.ready, dut.i.valid, dut.tx)
            line.append(tx)
            if ready and valid:
                handshakes.append(cycle)

    simulate(dut, bench)
    assert [b - a for a, b in zip(handshakes, handshakes[1:])] == [dut.interval] * (len(data) - 1)
    expected = [bit for byte in data for bit in character_bits(byte) for _ in range(divisor)]
    start = handshakes[0] + dut.latency
    assert line[:start] == [1] * start
    assert line[start:start + len(expected)] == expected
    assert set(line[start + len(expected):]) == {1}


# --- receiver -----------------------------------------------------------------------------------

def run_rx(divisor, levels, *, cycles_per_bit=None, ready=True, tail=None):
    """Drive ``levels`` (bit periods) into a UartRx; return its beats with their cycles, and the
    cycles of its error and overrun pulses."""
    dut = UartRx(divisor)
    beats, errors, overruns = [], [], []
    total = int(len(levels) * (cycles_per_bit or divisor)) + (tail or 3 * divisor)

    async def line(ctx):
        await drive_line(ctx, dut.rx, levels, cycles_per_bit or divisor)

    async def sink(ctx):
        ctx.set(dut.o.ready, ready)
        for cycle in range(total):
            _, _, valid, payload, error, overrun = await ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.error, dut.overrun)
            if valid and ready:
                beats.append((payload, cycle))
            if error:
                errors.append(cycle)
            if overrun:
                overruns.append(cycle)

    simulate(dut, sink, line)
    return dut, beats, errors, overruns


@pytest.mark.parametrize("divisor", [MIN_DIVISOR, 5, 16])
def test_rx_receives_back_to_back_characters_with_the_documented_latency(divisor):
    data = [0xA5, 0x00, 0xFF, 0x5A, 0x01, 0x80]
    dut, beats, errors, overruns = run_rx(divisor, [b for x in data for b in character_bits(x)])
    assert [b for b, _ in beats] == data and not errors and not overruns
    # The start bit of character k is on the line from cycle 10*divisor*k; its byte is valid
    # `latency` cycles later.
    assert [c for _, c in beats] == [k * dut.interval + dut.latency for k in range(len(data))]


@pytest.mark.parametrize("skew", [0.97, 1.03])
def test_rx_tolerates_a_3_percent_baud_mismatch(skew):
    data = list(range(0, 256, 17))
    _, beats, errors, _ = run_rx(16, [b for x in data for b in character_bits(x)],
                                 cycles_per_bit=16 * skew)
    assert [b for b, _ in beats] == data and not errors


def test_rx_framing_error_break_and_glitch():
    # A character whose stop bit is 0 is dropped with one error pulse; a break (line low for
    # many bit times) is one error; a pulse shorter than half a bit is not a start bit.
    divisor = 8
    levels = (character_bits(0x11) + character_bits(0x22, stop=0) + [1] * 2
              + [0] * 30 + [1] * 3 + character_bits(0x33))
    _, beats, errors, overruns = run_rx(divisor, levels)
    assert [b for b, _ in beats] == [0x11, 0x33]
    assert len(errors) == 2 and not overruns

    dut = UartRx(divisor)
    seen = []

    async def glitch(ctx):
        ctx.set(dut.rx, 0)
        await ctx.tick().repeat(divisor // 2 - 2)
        ctx.set(dut.rx, 1)
        for _ in range(20 * divisor):
            _, _, valid, error = await ctx.tick().sample(dut.o.valid, dut.error)
            seen.append(valid or error)

    simulate(dut, glitch)
    assert not any(seen)


def test_rx_overrun_when_a_byte_is_not_taken_in_time():
    # With `ready` low, the first byte waits on `o`; the second one is lost with a pulse.
    _, beats, errors, overruns = run_rx(4, character_bits(0x12) + character_bits(0x34),
                                        ready=False)
    assert not beats and not errors and len(overruns) == 1


# --- transmitter to receiver ----------------------------------------------------------------

class Loopback(wiring.Component):
    def __init__(self, divisor):
        self.tx, self.rx = UartTx(divisor), UartRx(divisor)
        super().__init__({"i": wiring.In(self.tx.i.signature.flip()),
                          "o": wiring.Out(self.rx.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        wiring.connect(m, wiring.flipped(self.i), self.tx.i)
        wiring.connect(m, self.rx.o, wiring.flipped(self.o))
        m.d.comb += self.rx.rx.eq(self.tx.tx)
        return m


@pytest.mark.parametrize("idle", [0.0, 0.5, 0.95])
def test_loopback_under_random_idle_and_backpressure(seeds, idle):
    # Random idle before each byte on the producer, `ready` low half of the cycles on the
    # consumer: every byte arrives once, in order (the consumer is never a character late).
    seed, = seeds(1)
    dut = Loopback(MIN_DIVISOR)
    data = [random.Random(seed).randrange(256) for _ in range(200)]
    board = Scoreboard(data, name="loopback.o")

    async def sink(ctx):
        pattern = pauses(0.5, random.Random(seed + 2))
        quiet = 0
        while board.matched < len(data) or quiet < 3 * dut.tx.interval:   # then catch extras
            quiet = quiet + 1 if board.matched == len(data) else 0
            ctx.set(dut.o.ready, not next(pattern))
            _, _, valid, ready, payload = await ctx.tick().sample(dut.o.valid, dut.o.ready,
                                                                  dut.o.payload)
            if valid and ready:
                board.actual(payload)

    async def source(ctx):
        await stream_send(ctx, dut.i, data, idle=idle or None, rng=random.Random(seed + 1))

    simulate(dut, sink, source)
    board.finish()
