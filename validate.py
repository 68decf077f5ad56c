"""The one validator family: checks of a parameter's type and range, each failure a `UserError`.

Every configuration object and block constructor of imcflow checks its parameters with these
functions, so that a bad value always gives the same one-line message, naming the field, the
allowed values and the value given::

    window.kernel: must be a positive integer, not 0
    shift: must be an integer in 0..47, not 48
    arch.input_encoding: must be one of 'pwm', 'bit_serial', not 'pcm'

The error is a `UserError` (a `ValueError`), which the CLI prints as one line and exits 2. The
module imports no NumPy at load time (the CLI's parser reads `imcflow.sw.arch`, which uses it).
"""

from __future__ import annotations

import math
import numbers

from imcflow.errors import UserError

__all__ = ["is_int", "check_int", "check_bool", "check_choice", "check_number", "check_instance",
           "integer_array"]


def is_int(value) -> bool:
    """Whether ``value`` is an integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(field: str, value, lo: int, hi: int | None = None) -> int:
    """``value`` as an ``int``; a `UserError` unless it is an integer in ``lo..hi`` (``hi=None``:
    no upper bound)."""
    if not is_int(value) or value < lo or (hi is not None and value > hi):
        named = {0: "a non-negative integer", 1: "a positive integer"}
        kind = f"an integer in {lo}..{hi}" if hi is not None else named.get(lo, f"an integer >= {lo}")
        raise UserError(f"{field}: must be {kind}, not {value!r}")
    return int(value)


def check_bool(field: str, value) -> bool:
    """``value``; a `UserError` unless it is a bool."""
    if not isinstance(value, bool):
        raise UserError(f"{field}: must be a bool, not {value!r}")
    return value


def check_choice(field: str, value, options):
    """``value``; a `UserError` unless it is one of ``options``."""
    if value not in options:
        raise UserError(f"{field}: must be one of {', '.join(map(repr, options))}, not {value!r}")
    return value


def check_number(field: str, value, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """``value``; a `UserError` unless it is a finite number in ``[lo, hi]`` (``(lo, hi]`` with
    ``lo_open``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (lo < value if lo_open else lo <= value) and value <= hi):
        bound = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise UserError(f"{field}: must be a number in {bound}, not {value!r}")
    return value


def check_instance(field: str, value, cls: type):
    """``value``; a `UserError` unless it is an instance of ``cls``."""
    if not isinstance(value, cls):
        raise UserError(f"{field}: must be a {cls.__module__}.{cls.__qualname__}, not {value!r}")
    return value


def integer_array(field: str, value, ndim: int, lo: int | None = None, hi: int | None = None):
    """``value`` as a read-only ``int64`` NumPy array of ``ndim`` non-empty dimensions with every
    element in ``lo..hi``; a `UserError` otherwise."""
    import numpy as np  # here, not at the top: the CLI's parser imports this module without NumPy

    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise UserError(f"{field}: must be an array of integers, not {value!r}")
    if array.ndim != ndim or 0 in array.shape:
        raise UserError(f"{field}: must be a non-empty {ndim}-D array, not one of shape "
                        f"{array.shape}")
    if lo is not None and array.min() < lo or hi is not None and array.max() > hi:
        raise UserError(f"{field}: must have every element in {lo}..{hi}, not "
                        f"{int(array.min())}..{int(array.max())}")
    array = array.astype(np.int64)
    array.flags.writeable = False
    return array
