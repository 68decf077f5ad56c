"""Seeded pause patterns: idle cycles on stream producers and backpressure on consumers.

A pattern is an iterator of booleans, one per cycle in which a driver could act; ``True`` means
pause (a driver inserts an idle cycle, a consumer holds ``ready`` low). `pauses` builds one from
either a probability or an explicit pattern, as cocotbext-axi's ``set_pause_generator`` does::

    pauses(0.3, rng)                             # pause 30 % of cycles, drawn from rng
    pauses(itertools.cycle([1, 1, 1, 0]))        # three pauses, then one active cycle
    pauses(None)                                 # never pause

The same patterns serve cocotb testbenches (`imcflow.verif.streams`) and Amaranth-simulator
testbenches (`imcflow.verif.amaranth_sim`).

`stall_mask` is the one pattern whole-accelerator runs share: a per-cycle mask defined by a
counter-based hash (SplitMix64), so Python, the C++ Verilator harness and the performance model
(`imcflow.sw.perf.simulate`) reproduce it bit for bit from a seed.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator

import numpy as np

__all__ = ["STREAM_BACKPRESSURE", "STREAM_IDLE", "pauses", "port_stalls", "stall_mask"]

#: Stream number of the accelerator input's idle cycles (the producer may not raise ``tvalid``).
STREAM_IDLE = 1
#: Stream number of the accelerator output's backpressure (``tready`` low).
STREAM_BACKPRESSURE = 2

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_STREAM_MIX = 0xD1B54A32D192ED03


def pauses(spec: float | Iterable[bool] | None, rng: random.Random | None = None) -> Iterator[bool]:
    """Per-cycle pause flags from ``spec``.

    Parameters
    ----------
    spec : float, iterable of bool, or None
        Probability of pausing in each cycle (``0 <= p < 1``; needs ``rng``), an explicit pattern
        (used as given; a finite pattern stops pausing when exhausted), or None for no pauses.
    rng : random.Random, optional
        Source of the random pauses; seed it so a run reproduces.

    Raises
    ------
    ValueError
        If a probability is outside ``[0, 1)`` or given without ``rng``.
    """
    if spec is None:
        return itertools.repeat(False)
    if isinstance(spec, (int, float)):
        if not 0 <= spec < 1:
            raise ValueError(f"Pause probability must be in [0, 1), not {spec!r}")
        if spec == 0:
            return itertools.repeat(False)
        if rng is None:
            raise ValueError("A pause probability needs a seeded random.Random")
        return (rng.random() < spec for _ in itertools.repeat(None))
    return itertools.chain((bool(p) for p in spec), itertools.repeat(False))


def stall_mask(seed: int, stream: int, probability: float, cycles: int) -> np.ndarray:
    """Seeded per-cycle stall flags, identical in Python and in the C++ harness.

    Cycle ``c`` (0 is the first clock cycle after reset is released) is stalled when the
    SplitMix64 output for counter ``c + 1`` on the stream's base is below ``probability``::

        base = (seed mod 2**64) ^ (stream * 0xD1B54A32D192ED03 mod 2**64)
        z = base + (c + 1) * 0x9E3779B97F4A7C15                  (mod 2**64)
        z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9                   (mod 2**64)
        z = (z ^ z >> 27) * 0x94D049BB133111EB                   (mod 2**64)
        z = z ^ z >> 31
        stall[c] = (z >> 11) < floor(probability * 2**53)

    Semantics at the accelerator's ports: on the input (`STREAM_IDLE`) a driver holding a beat
    raises ``tvalid`` at the start of cycle ``c`` only if ``not stall[c]``; once raised, ``tvalid``
    stays high with stable data until the handshake (``tvalid & tready`` sampled at the rising edge
    that ends the cycle). On the output (`STREAM_BACKPRESSURE`) ``tready`` in cycle ``c`` is
    ``not stall[c]``, whatever the state.

    Parameters
    ----------
    seed : int
        Any integer ``>= 0``; reduced modulo ``2**64``.
    stream : int
        Which pattern: `STREAM_IDLE`, `STREAM_BACKPRESSURE` (any integer ``>= 0`` works).
    probability : float
        Fraction of stalled cycles, in ``[0, 1)``; 0 never stalls.
    cycles : int
        Length of the mask.

    Returns
    -------
    numpy.ndarray
        ``bool`` array of length ``cycles``, ``True`` where the cycle is stalled.

    Raises
    ------
    ValueError
        If ``probability`` is outside ``[0, 1)`` or ``seed``, ``stream`` or ``cycles`` is negative.
    """
    if not 0 <= probability < 1:
        raise ValueError(f"Stall probability must be in [0, 1), not {probability!r}")
    for name, value in (("Seed", seed), ("Stream", stream), ("Cycle count", cycles)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    threshold = int(probability * (1 << 53))
    if threshold == 0 or cycles == 0:
        return np.zeros(cycles, dtype=bool)
    base = (int(seed) & _M64) ^ ((int(stream) * _STREAM_MIX) & _M64)
    with np.errstate(over="ignore"):
        z = np.uint64(base) + np.arange(1, cycles + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)) < np.uint64(threshold)


def port_stalls(seed: int, idle: float, backpressure: float,
                cycles: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(input_stall, output_stall)`` of an accelerator run: the `stall_mask` of the input's
    idle cycles (`STREAM_IDLE`) and of the output's backpressure (`STREAM_BACKPRESSURE`) over
    ``cycles`` cycles, None for a probability of 0. What a simulation engine applies and what
    `imcflow.sw.perf.simulate` takes."""
    return tuple(stall_mask(seed, stream, p, cycles) if p else None
                 for stream, p in ((STREAM_IDLE, idle), (STREAM_BACKPRESSURE, backpressure)))
