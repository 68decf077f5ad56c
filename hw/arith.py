"""RTL twins of the `imcflow.sw.arith` rules, on Amaranth values: one place for every block.

`round_shift` and `saturate` are the crossbar's ADC, the accumulator's requantization and (as
`requantize_sum`) the end of the join and of the average pools; `tree_sum` is every adder tree.
Each is combinational and widens its result so it never wraps; the docstrings name the rule of
`imcflow.sw.arith` they reproduce bit for bit (docs/arithmetic.md).
"""

from __future__ import annotations

from amaranth.hdl import Mux, Value

from imcflow.sw.arith import act_range, signed_range, unsigned_range

__all__ = ["round_shift", "saturate", "requantize_sum", "tree_sum"]


def round_shift(x, shift: int):
    """`imcflow.sw.arith.round_shift`: ``(x + 2**(shift-1)) >> shift``, arithmetic for a signed
    ``x``; ``shift = 0`` is the identity. Amaranth widens the sum, so it never wraps."""
    # shift_right by a constant is a slice; ``>>`` would build a shifter operator (a netlist node
    # per result bit that elaboration and Verilog conversion then carry)
    return x if shift == 0 else (Value.cast(x) + (1 << (shift - 1))).shift_right(shift)


def saturate(x, lo: int, hi: int):
    """`imcflow.sw.arith.saturate`: ``x`` clipped to ``[lo, hi]``.

    Only the bounds that ``x``'s shape can cross are compared (no constant comparisons, which
    Verilog linters flag). Both comparisons are of ``x`` itself, side by side, not the second of
    the first one's result (one comparator's delay instead of two: the clock rate of an FPGA
    build)."""
    x = Value.cast(x)
    shape = x.shape()
    x_lo, x_hi = signed_range(shape.width) if shape.signed else unsigned_range(shape.width)
    result = x
    if x_lo < lo:
        result = Mux(x < lo, lo, result)
    if x_hi > hi:
        result = Mux(x > hi, hi, result)
    return result


def requantize_sum(total, shift: int, act_bits: int, signed: bool):
    """``saturate(round_shift(total, shift), *act_range(act_bits, signed))``: the end of
    `imcflow.sw.arith.requantize` and of `imcflow.sw.golden.join`, for an already multiplied
    ``total``. The result fits ``act_bits`` bits."""
    return saturate(round_shift(total, shift), *act_range(act_bits, signed))


def tree_sum(values):
    """Sum of ``values`` as a balanced adder tree, depth ``ceil(log2(len(values)))``; every adder
    is one bit wider than its widest operand, so no level wraps."""
    values = list(values)
    while len(values) > 1:
        values = [values[j] + values[j + 1] if j + 1 < len(values) else values[j]
                  for j in range(0, len(values), 2)]
    return values[0]
