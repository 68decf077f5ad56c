"""The integer arithmetic contract shared by the golden model and the RTL.

Every rounding and saturation rule of imcflow is one function here; docs/arithmetic.md explains
them. All functions are vectorized over NumPy ``int64`` arrays (Python ints work too).

Rules
-----
- ``round_shift(x, s)``: divide by ``2**s`` rounding half up (towards +inf):
  ``(x + 2**(s-1)) >> s`` with an arithmetic shift; ``s = 0`` is the identity. Hardware: one adder
  and a shift.
- ``saturate(x, lo, hi)``: clip, never wrap.
- ADC: ``adc_convert(dot) = saturate(round_shift(dot, adc_shift), -2**(adc_bits-1), 2**(adc_bits-1)-1)``.
- Crossbar, ``pwm`` input: one conversion of the full dot product per column.
  ``bit_serial`` input: one conversion per input bit plane ``b`` (LSB first), shift-added:
  ``sum_b adc_convert(dot(bit_b(x), w)) << b``.
- Requantization: ``saturate(round_shift(acc * mult, shift), lo, hi)`` with an unsigned
  ``MULT_BITS``-bit multiplier; ``[lo, hi]`` is ``[0, 2**act_bits - 1]`` for unsigned outputs (this
  is the ReLU) and ``[-2**(act_bits-1), 2**(act_bits-1) - 1]`` for signed ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from imcflow.errors import UserError
from imcflow.validate import check_bool, check_instance, check_int, integer_array

__all__ = [
    "MULT_BITS", "MAX_SHIFT", "round_shift", "saturate", "signed_range", "unsigned_range",
    "act_range", "weight_range", "adc_convert", "bit_planes", "crossbar_mvm", "requantize",
    "quantize_multipliers", "Requantizer", "check_requantizer",
]

#: width of the unsigned fixed-point requantization multipliers
MULT_BITS = 16
#: largest requantization shift
MAX_SHIFT = 47


def round_shift(x, shift: int):
    """``x / 2**shift`` rounded half up (arithmetic shift of ``x + 2**(shift-1)``)."""
    if shift < 0:
        raise ValueError(f"Shift must be a non-negative integer, not {shift!r}")
    x = np.asarray(x, dtype=np.int64)
    if shift == 0:
        return x
    return (x + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)


def saturate(x, lo: int, hi: int):
    """Clip ``x`` to ``[lo, hi]`` (saturation, never a wrap)."""
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def signed_range(bits: int) -> tuple[int, int]:
    """Two's complement range of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned_range(bits: int) -> tuple[int, int]:
    return 0, (1 << bits) - 1


def act_range(act_bits: int, signed: bool) -> tuple[int, int]:
    """Range of an activation: unsigned (after ReLU) or signed (a layer without ReLU)."""
    return signed_range(act_bits) if signed else unsigned_range(act_bits)


def weight_range(weight_bits: int) -> tuple[int, int]:
    """Symmetric signed weight range: ``[-(2**(b-1) - 1), 2**(b-1) - 1]``."""
    hi = (1 << (weight_bits - 1)) - 1
    return -hi, hi


def adc_convert(dot, adc_bits: int, adc_shift: int):
    """ADC: gain as a right shift with round-half-up, then saturation to signed ``adc_bits``."""
    return saturate(round_shift(dot, adc_shift), *signed_range(adc_bits))


def bit_planes(x, bits: int):
    """Bit planes of unsigned ``x``, LSB first: shape ``(bits, *x.shape)``, values 0/1."""
    x = np.asarray(x, dtype=np.int64)
    return (x[None, ...] >> np.arange(bits, dtype=np.int64).reshape((bits,) + (1,) * x.ndim)) & 1


def _exact_matmul(x, weight):
    """Integer ``x @ weight``, through float64 BLAS when every partial sum is an integer below
    ``2**53`` in magnitude (then each float addition is exact, in any order), else in int64."""
    def peak(a):
        return max(-int(a.min(initial=0)), int(a.max(initial=0)))

    bound = peak(x) * peak(weight) * weight.shape[0]
    if bound < 2 ** 53:
        return (x.astype(np.float64) @ weight.astype(np.float64)).astype(np.int64)
    return x @ weight


def crossbar_mvm(x, weight, *, encoding: str, act_bits: int, adc_bits: int, adc_shift: int):
    """One crossbar tile: ADC codes of ``x @ weight``.

    Parameters
    ----------
    x : int array (..., rows), unsigned ``act_bits`` inputs applied to the crossbar rows
    weight : int array (rows, cols), the signed weight image of the tile
    encoding : ``"pwm"`` (one conversion per column) or ``"bit_serial"`` (one per bit plane,
        shift-added)

    Returns
    -------
    int64 array (..., cols): signed ``adc_bits`` codes (pwm) or their shift-added sum over
    ``act_bits`` planes (bit_serial, ``adc_bits + act_bits`` bits).
    """
    x = np.asarray(x, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.int64)
    if encoding == "pwm":
        return adc_convert(_exact_matmul(x, weight), adc_bits, adc_shift)
    if encoding == "bit_serial":
        planes = bit_planes(x, act_bits)  # (bits, ..., rows)
        codes = adc_convert(_exact_matmul(planes, weight), adc_bits, adc_shift)  # (bits, ..., cols)
        weights = (np.int64(1) << np.arange(act_bits, dtype=np.int64)).reshape(
            (act_bits,) + (1,) * (codes.ndim - 1))
        return (codes * weights).sum(axis=0)
    raise ValueError(f"Encoding must be 'pwm' or 'bit_serial', not {encoding!r}")


def requantize(acc, mult, shift: int, *, act_bits: int, signed: bool):
    """Fixed-point requantization: ``saturate(round_shift(acc * mult, shift), *act_range)``.

    ``mult`` is an unsigned ``MULT_BITS``-bit integer (scalar or per output channel, broadcast
    over the last axis). An unsigned output range is the ReLU.
    """
    prod = np.asarray(acc, dtype=np.int64) * np.asarray(mult, dtype=np.int64)
    return saturate(round_shift(prod, shift), *act_range(act_bits, signed))


def quantize_multipliers(scales, bits: int = MULT_BITS) -> tuple[np.ndarray, int]:
    """Fixed-point form of positive real ``scales`` sharing one shift.

    Returns ``(mult, shift)`` with integer ``mult`` in ``[0, 2**bits)`` such that
    ``mult / 2**shift`` approximates each scale; the largest scale uses the full ``bits``.
    """
    scales = np.atleast_1d(np.asarray(scales, dtype=np.float64))
    if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise ValueError(f"Scales must be positive and finite, not {scales!r}")
    top = float(scales.max())
    # largest shift with round(top * 2**shift) < 2**bits
    shift = bits - math.frexp(top)[1]
    if round(top * 2.0 ** shift) >= (1 << bits):
        shift -= 1
    if shift < 0:
        raise ValueError(f"Scale {top!r} does not fit a {bits}-bit multiplier")
    shift = min(shift, MAX_SHIFT)
    mult = np.minimum(np.round(scales * 2.0 ** shift), (1 << bits) - 1).astype(np.int64)
    return mult, shift


@dataclass(frozen=True)
class Requantizer:
    """A fixed-point requantization: ``saturate(round_shift(x * mult, shift), *range)``.

    The blocks that requantize (the crossbar layers' `~imcflow.hw.accumulator.AdcAccumulator`,
    average and global average pooling, the residual join) take one, and `apply` is their golden
    arithmetic (`requantize`).

    Parameters
    ----------
    mult : int or tuple of int
        Unsigned ``MULT_BITS``-bit multiplier: one for every lane, or one per output channel
        (an array is stored as a tuple).
    shift : int
        Right shift with round half up, ``0..MAX_SHIFT``.
    bits : int
        Output lane width (positive).
    signed : bool
        Whether the OUTPUT range is signed (``[-2**(bits-1), 2**(bits-1) - 1]``) or unsigned
        (``[0, 2**bits - 1]``: saturation at 0 is the ReLU). The signedness of a block's input
        lanes is the block's own ``signed`` parameter.

    Raises
    ------
    UserError
        Naming the field (``requantizer.shift: must be an integer in 0..47, not 48``).
    """

    mult: int | tuple[int, ...]
    shift: int
    bits: int
    signed: bool = False

    def __post_init__(self):
        top = (1 << MULT_BITS) - 1
        if np.ndim(self.mult) == 0:
            mult = check_int("requantizer.mult", self.mult, 0, top)
        else:
            mult = tuple(int(m) for m in integer_array("requantizer.mult", self.mult, 1, 0, top))
        object.__setattr__(self, "mult", mult)
        object.__setattr__(self, "shift", check_int("requantizer.shift", self.shift, 0, MAX_SHIFT))
        object.__setattr__(self, "bits", check_int("requantizer.bits", self.bits, 1))
        check_bool("requantizer.signed", self.signed)

    @property
    def channels(self) -> int | None:
        """Multipliers given per channel (None for one multiplier for every lane)."""
        return None if isinstance(self.mult, int) else len(self.mult)

    @property
    def range(self) -> tuple[int, int]:
        """The output range `act_range` of ``bits`` and ``signed``."""
        return act_range(self.bits, self.signed)

    def apply(self, x):
        """``requantize(x, mult, shift)`` (``mult`` per channel broadcast over the last axis)."""
        return requantize(x, np.asarray(self.mult, dtype=np.int64), self.shift,
                          act_bits=self.bits, signed=self.signed)

    def select(self, channels: slice) -> "Requantizer":
        """The requantizer of output ``channels`` (a slice) of a per-channel one."""
        return Requantizer(self.mult[channels], self.shift, self.bits, self.signed)


def check_requantizer(requantizer, channels: int | None = None) -> Requantizer:
    """``requantizer``; a `UserError` unless it is a `Requantizer` with one multiplier for every
    lane (``channels=None``) or ``channels`` of them (per output channel, or the residual join's
    one per input)."""
    check_instance("requantizer", requantizer, Requantizer)
    if requantizer.channels != channels:
        wanted = "one multiplier" if channels is None else f"{channels} multipliers"
        raise UserError(f"requantizer.mult: must be {wanted}, not {requantizer.mult!r}")
    return requantizer
