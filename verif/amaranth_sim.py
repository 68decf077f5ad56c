"""Stream helpers for Amaranth-simulator testbenches (async ``ctx`` style of Amaranth 0.5).

`stream_put` and `stream_get` move one beat; `stream_send` and `stream_receive` move many, with
seeded idle cycles on the producer and backpressure on the consumer (see
`imcflow.verif.patterns`). Payloads are whatever ``ctx.set``/``ctx.get`` take for the stream's
payload shape: integers for plain shapes, ``dict``/`data.Const` for layouts. Pass
``Value.cast(stream.payload)`` views of a layout to work with flat integers instead::

    async def testbench(ctx):
        await stream_send(ctx, dut.i, beats, idle=0.3, rng=random.Random(seed))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from imcflow.verif.patterns import pauses

__all__ = ["stream_put", "stream_get", "stream_send", "stream_receive"]


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
                         rng: random.Random | None = None) -> list:
    """Receive ``count`` beats; ``ready`` is drawn each cycle from the ``backpressure`` pattern."""
    pattern = pauses(backpressure, rng)
    beats = []
    while len(beats) < count:
        ctx.set(stream.ready, not next(pattern))
        _, _, valid, ready, payload = await ctx.tick().sample(stream.valid, stream.ready,
                                                              stream.payload)
        if valid and ready:
            beats.append(payload)
    ctx.set(stream.ready, 0)
    return beats
