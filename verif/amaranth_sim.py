"""Stream helpers for Amaranth-simulator testbenches (async ``ctx`` style of Amaranth 0.5).

`stream_put` and `stream_get` move one beat; `stream_send` and `stream_receive` move many, with
seeded idle cycles on the producer and backpressure on the consumer (see
`imcflow.verif.patterns`). Payloads are whatever ``ctx.set``/``ctx.get`` take for the stream's
payload shape: integers for plain shapes, ``dict``/`data.Const` for layouts. `flat` views a
layout payload as one integer (`VectorLayout.pack` words)::

    async def testbench(ctx):
        await stream_send(ctx, flat(dut.i), words, idle=0.3, rng=random.Random(seed))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)

`run_streams` is the whole harness of a block's stream test: every input sent, every output
checked in order against golden words, the handshake cycles returned for timing checks::

    edges = run_streams(dut, {"i": (dut.i, words)}, {"o": (dut.o, expected)}, seed=seed)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from types import SimpleNamespace

from amaranth.hdl import ResetInserter, Signal, Value
from amaranth.sim import Simulator

from imcflow.hw.streams import VectorLayout
from imcflow.verif.patterns import pauses
from imcflow.verif.scoreboard import Scoreboard

__all__ = ["stream_put", "stream_get", "stream_send", "stream_receive", "flat", "run_streams"]


async def stream_put(ctx, stream, payload) -> None:
    """Offer ``payload`` on ``stream`` from now until the handshake; ``valid`` is low afterwards."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Accept one beat from ``stream`` (``ready`` high until it arrives) and return its payload."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def stream_send(ctx, stream, payloads: Iterable, *, idle=None,
                      rng: random.Random | None = None) -> None:
    """Send ``payloads`` in order, inserting idle cycles before beats as ``idle`` says.

    ``idle`` is a `~imcflow.verif.patterns.pauses` spec: a probability (with ``rng``), a pattern,
    or None for back-to-back beats. Idle cycles only fall between beats: once ``valid`` is high it
    stays high until the handshake.
    """
    pattern = pauses(idle, rng)
    for payload in payloads:
        while next(pattern):
            await ctx.tick()
        await stream_put(ctx, stream, payload)


async def stream_receive(ctx, stream, count: int, *, backpressure=None,
                         rng: random.Random | None = None,
                         on_beat: Callable[[object], None] | None = None) -> list:
    """Receive ``count`` beats; ``ready`` is drawn each cycle from the ``backpressure`` pattern.

    ``on_beat`` is called with each payload as it arrives (e.g. `Scoreboard.actual`, so a test
    stops at the first wrong beat).
    """
    pattern = pauses(backpressure, rng)
    beats = []
    while len(beats) < count:
        ctx.set(stream.ready, not next(pattern))
        _, _, valid, ready, payload = await ctx.tick().sample(stream.valid, stream.ready,
                                                              stream.payload)
        if valid and ready:
            beats.append(payload)
            if on_beat is not None:
                on_beat(payload)
    ctx.set(stream.ready, 0)
    return beats


def flat(stream):
    """``stream`` with its payload seen as one flat integer (``Value.cast``): for a
    `~imcflow.hw.streams.VectorLayout` payload the beats are `VectorLayout.pack` words."""
    return SimpleNamespace(valid=stream.valid, ready=stream.ready,
                           payload=Value.cast(stream.payload))


def _timing(dut) -> tuple[int, int]:
    """The dut's documented ``latency`` and ``interval`` (0 and 1 where it has none)."""
    latency, interval = getattr(dut, "latency", 0), getattr(dut, "interval", 1)
    return (latency if isinstance(latency, int) else 0,
            interval if isinstance(interval, int) and interval > 0 else 1)


def _format(stream) -> Callable[[object], str]:
    shape = stream.payload.shape()
    if isinstance(shape, VectorLayout):
        return lambda word: repr(shape.unpack(word))
    return repr


def run_streams(dut, sources: dict, sinks: dict, *, seed: int, idle=0.3, backpressure=0.3,
                tail: int | None = None, max_cycles: int | None = None,
                reset: bool = False) -> dict[str, list[int]]:
    """Simulate ``dut`` with words sent on its inputs and expected words checked on its outputs.

    Every port runs concurrently with its own ``random.Random`` drawn from ``seed`` (sources in
    order, then sinks), so one seed reproduces the whole run. Each sink is checked in order by a
    `~imcflow.verif.scoreboard.Scoreboard` as its beats arrive: the first wrong beat fails with
    its index, the expected and the actual word (shown as ``(lanes, last)`` when the payload is a
    `~imcflow.hw.streams.VectorLayout`). Nothing may be lost, duplicated or reordered: after its
    last expected beat a sink stays ready ``tail`` cycles and any further beat fails as extra,
    and a run not finished within ``max_cycles`` fails as stalled, naming the beats per port.

    With ``reset``, the ``sync`` domain is reset in the middle of the traffic: after a random
    number of input beats (at least one, fewer than all) and a random delay of up to
    ``2 * latency + interval`` cycles, for 1 to 3 cycles (all drawn from ``seed``). Every source
    then starts over from its first word and every sink must deliver all its expected words
    again, from the first: beats accepted before the reset are checked as a prefix of the
    expected words, and nothing from before the reset may come out after it.

    Parameters
    ----------
    dut : amaranth.lib.wiring.Component
        Simulated with a clock on its ``sync`` domain.
    sources : dict of str to (stream, list of int)
        ``{name: (port, words)}``: flat payload words (see `flat`), sent in order.
    sinks : dict of str to (stream, list of int)
        ``{name: (port, expected_words)}``: the golden words each output must deliver.
    seed : int
    idle, backpressure : pause spec
        Idle cycles before each source beat and cycles in which a sink is not ready: a
        probability, a pattern or None (`imcflow.verif.patterns.pauses`).
    tail : int, optional
        Default ``max(8, 2 * latency + interval + 4)`` from the dut's attributes.
    max_cycles : int, optional
        Default ``20 * interval * (beats + 10) + 10 * latency + 500``, at least 20 000, where
        ``beats`` is the most words on any port: generous for idle and backpressure up to 0.6.
        Doubled with ``reset``.
    reset : bool
        Reset the dut once in the middle of the traffic.

    Returns
    -------
    dict of str to list of int
        For every port name, the clock edges of its handshakes (edge ``n`` ends cycle ``n``; a
        beat offered from the start handshakes at edge 0 at the earliest); with ``reset``, those
        after the reset.
    """
    latency, interval = _timing(dut)
    tail = max(8, 2 * latency + interval + 4) if tail is None else tail
    if max_cycles is None:
        beats = max((len(words) for _, words in [*sources.values(), *sinks.values()]), default=0)
        max_cycles = max(20_000, 20 * interval * (beats + 10) + 10 * latency + 500) * (1 + reset)
    ports = {name: port for name, (port, _) in [*sources.items(), *sinks.items()]}
    counts = {name: len(words) for name, (_, words) in [*sources.items(), *sinks.items()]}
    edges = {name: [] for name in ports}
    rng = random.Random(seed)
    port_rngs = [random.Random(rng.getrandbits(32)) for _ in [*sources, *sinks]]
    rst = Signal(name="rst")
    schedule = None
    if reset:
        total = sum(len(words) for _, words in sources.values())
        if total < 2:
            raise ValueError(f"A reset in the middle of the traffic needs at least 2 input beats, "
                             f"not {total}")
        r = random.Random(rng.getrandbits(32))
        schedule = SimpleNamespace(after=r.randrange(1, total),
                                   delay=r.randint(0, 2 * latency + interval),
                                   cycles=r.randint(1, 3), done=False)
    else:
        schedule = SimpleNamespace(done=True)

    def source(port, words, r):
        async def bench(ctx):
            view, pattern, k, offering = flat(port), pauses(idle, r), 0, False
            while k < len(words) or not schedule.done:
                if not offering:
                    if k < len(words) and not next(pattern):
                        ctx.set(view.payload, words[k])
                        offering = True
                    ctx.set(port.valid, offering)
                _, _, ready, in_reset = await ctx.tick().sample(port.ready, rst)
                if in_reset:                    # start over: nothing was taken at this edge
                    pattern, k, offering = pauses(idle, r), 0, False
                    ctx.set(port.valid, 0)
                elif offering and ready:
                    k, offering = k + 1, False
            ctx.set(port.valid, 0)
        return bench

    def sink(name, port, words, r):
        def board():
            return Scoreboard(words, name=f"{type(dut).__name__}.{name}", fmt=_format(port))

        async def bench(ctx):
            view, pattern, scoreboard = flat(port), pauses(backpressure, r), board()
            received, extra = 0, 0
            while received < len(words) + extra or not schedule.done:
                ctx.set(port.ready, not next(pattern) if received < len(words) else 1)
                _, _, valid, ready, payload, in_reset = await ctx.tick().sample(
                    port.valid, port.ready, view.payload, rst)
                if in_reset:                    # the stream starts over after the reset
                    pattern, scoreboard, received, extra = pauses(backpressure, r), board(), 0, 0
                elif valid and ready:
                    scoreboard.actual(payload)
                    received += 1
                    if received > len(words):
                        scoreboard.finish()     # raises: an extra beat
            ctx.set(port.ready, 1)
            for _ in range(tail):
                _, _, valid, payload = await ctx.tick().sample(port.valid, view.payload)
                if valid:
                    scoreboard.actual(payload)
                    scoreboard.finish()  # raises: an extra beat
        return bench

    async def monitor(ctx):
        edge, taken, countdown = 0, 0, None
        handshakes = [port.valid & port.ready for port in ports.values()]
        inputs = [name in sources for name in ports]
        async for _, _, in_reset, *fired in ctx.tick().sample(rst, *handshakes):
            if in_reset:
                for name in edges:
                    edges[name] = []
                schedule.cycles -= 1
                if schedule.cycles == 0:
                    ctx.set(rst, 0)
                    schedule.done = True
            else:
                for name, handshake, is_input in zip(ports, fired, inputs):
                    if handshake:
                        edges[name].append(edge)
                        taken += is_input
            edge += 1
            if not schedule.done and countdown is None and taken >= schedule.after:
                countdown = schedule.delay
            if countdown is not None and not schedule.done:
                if countdown == 0:
                    ctx.set(rst, 1)
                countdown -= 1
            assert edge < max_cycles, f"stalled: not finished after {max_cycles} cycles; " \
                "beats per port: " + ", ".join(f"{name} {len(e)}/{counts[name]}"
                                                for name, e in edges.items())

    sim = Simulator(ResetInserter({"sync": rst})(dut) if reset else dut)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor, background=True)
    rngs = iter(port_rngs)
    for port, words in sources.values():
        sim.add_testbench(source(port, words, next(rngs)))
    for name, (port, words) in sinks.items():
        sim.add_testbench(sink(name, port, words, next(rngs)))
    sim.run()
    return edges
