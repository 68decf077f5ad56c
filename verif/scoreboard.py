"""In-order scoreboard: actual transactions against golden ones.

Golden transactions come from the models in `imcflow.sw` (or a block's behavioural model), actual
ones from a stream monitor. Both may arrive in any interleaving; each pair is compared as soon as
both exist, so a test fails at the first wrong beat, with its index. NumPy arrays are equal
only with the same shape, dtype and elements (never by broadcasting). `Scoreboard.finish` then
reports beats that never came (missing) or that nobody expected (extra)::

    board = Scoreboard(expected, name="fifo.o")
    for beat in received:
        board.actual(beat)        # raises ScoreboardError at the first mismatch
    board.finish()                # raises on missing or extra beats
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["Scoreboard", "ScoreboardError"]


def _difference(expected, actual) -> str | None:
    """Why ``actual`` differs from ``expected`` (None if it does not). NumPy arrays must agree in
    shape and dtype as well as in every element: an array that merely broadcasts to the expected
    one (``[[5]]`` against ``[5]``) or holds the same values in another type is a mismatch."""
    arrays = [isinstance(x, np.ndarray) for x in (expected, actual)]
    if any(arrays):
        if not all(arrays):
            return "an array against a non-array"
        if expected.shape != actual.shape or expected.dtype != actual.dtype:
            return (f"shape {expected.shape} {expected.dtype} expected, "
                    f"got shape {actual.shape} {actual.dtype}")
        return None if np.array_equal(expected, actual) else "values differ"
    return None if bool(expected == actual) else "values differ"


class ScoreboardError(AssertionError):
    """A mismatch, missing beats or extra beats; the message says which and where."""


class Scoreboard:
    """Compares two sequences of transactions in order.

    Parameters
    ----------
    expected : iterable, optional
        Golden transactions known up front; more can be added with `expect`.
    name : str
        Stream name used in messages.
    fmt : callable
        Formats a transaction for messages (default ``repr``).
    """

    def __init__(self, expected: Iterable = (), *, name: str = "stream",
                 fmt: Callable[[object], str] = repr):
        self.name, self._fmt = name, fmt
        self._expected: list = []
        self._actual: list = []
        self.matched = 0
        for item in expected:
            self.expect(item)

    def expect(self, item) -> None:
        """Add the next golden transaction."""
        self._expected.append(item)
        self._compare()

    def actual(self, item) -> None:
        """Add the next observed transaction; raises `ScoreboardError` if it differs."""
        self._actual.append(item)
        self._compare()

    def _compare(self) -> None:
        while self.matched < min(len(self._expected), len(self._actual)):
            i = self.matched
            expected, actual = self._expected[i], self._actual[i]
            why = _difference(expected, actual)
            if why is not None:
                detail = "" if why == "values differ" else f" ({why})"
                raise ScoreboardError(f"{self.name}: beat {i}: expected {self._fmt(expected)}, "
                                      f"got {self._fmt(actual)}{detail}")
            self.matched += 1

    def finish(self) -> None:
        """Check that every golden transaction arrived and nothing else did."""
        n_exp, n_act = len(self._expected), len(self._actual)
        if n_act < n_exp:
            raise ScoreboardError(f"{self.name}: {n_exp - n_act} beat(s) missing of {n_exp}: "
                                  f"first missing is beat {n_act}, "
                                  f"expected {self._fmt(self._expected[n_act])}")
        if n_act > n_exp:
            raise ScoreboardError(f"{self.name}: {n_act - n_exp} extra beat(s) after {n_exp}: "
                                  f"first extra is beat {n_exp}, got {self._fmt(self._actual[n_exp])}")

    @classmethod
    def check(cls, expected: Iterable, actual: Iterable, **kwargs) -> None:
        """Compare two complete sequences (first mismatch, then missing or extra beats)."""
        board = cls(expected, **kwargs)
        for item in actual:
            board.actual(item)
        board.finish()
