"""Seeded pause patterns: idle cycles on stream producers and backpressure on consumers.

A pattern is an iterator of booleans, one per cycle in which a driver could act; ``True`` means
pause (a driver inserts an idle cycle, a consumer holds ``ready`` low). `pauses` builds one from
either a probability or an explicit pattern, as cocotbext-axi's ``set_pause_generator`` does::

    pauses(0.3, rng)                             # pause 30 % of cycles, drawn from rng
    pauses(itertools.cycle([1, 1, 1, 0]))        # three pauses, then one active cycle
    pauses(None)                                 # never pause

The same patterns serve cocotb testbenches (`imcflow.verif.streams`) and Amaranth-simulator
testbenches (`imcflow.verif.amaranth_sim`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator

__all__ = ["pauses"]


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
