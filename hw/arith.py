"""RTL twins of the `imcflow.sw.arith` rules, on Amaranth values: one place for every block.

`round_shift` and `saturate` are the crossbar's ADC, the accumulator's requantization and (as
`requantize_sum`) the end of the join and of the average pools; `tree_sum` is every adder tree.
Each is combinational and widens its result so it never wraps; the docstrings name the rule of
`imcflow.sw.arith` they reproduce bit for bit (docs/arithmetic.md). `pass_counter` and
`fill_products` are the requantization multiplies of a block whose lanes share their
multipliers over several cycles (``Arch.requant_lanes``), `emptied_by_last_pass` the stage
before them.
"""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Const, Mux, Signal, Value

from imcflow.sw.arith import MULT_BITS, act_range, signed_range, unsigned_range

__all__ = ["round_shift", "saturate", "rounding_constant", "requantize_sum", "tree_sum",
           "pass_counter", "emptied_by_last_pass", "product_shape", "fill_products"]


def round_shift(x, shift: int):
    """`imcflow.sw.arith.round_shift`: ``(x + 2**(shift-1)) >> shift``, arithmetic for a signed
    ``x``; ``shift = 0`` is the identity. Amaranth widens the sum, so it never wraps."""
    # shift_right by a constant is a slice; ``>>`` would build a shifter operator (a netlist node
    # per result bit that elaboration and Verilog conversion then carry)
    return x if shift == 0 else (Value.cast(x) + rounding_constant(shift)).shift_right(shift)


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


def rounding_constant(shift: int) -> int:
    """The constant `round_shift` adds before shifting right by ``shift``: ``2**(shift-1)``, 0
    for ``shift = 0``. The requantizing blocks add it into their product registers, after the
    multiply, so their output stage only shifts and saturates (`requantize_sum` with
    ``rounded``): no adder between the product register and the saturation's comparators."""
    return 1 << (shift - 1) if shift else 0


def requantize_sum(total, shift: int, act_bits: int, signed: bool, *, rounded: bool = False):
    """``saturate(round_shift(total, shift), *act_range(act_bits, signed))``: the end of
    `imcflow.sw.arith.requantize` and of `imcflow.sw.golden.join`, for an already multiplied
    ``total`` (``rounded``: that already holds the rounding constant ``2**(shift-1)``, so only
    the shift is left). The result fits ``act_bits`` bits."""
    shifted = Value.cast(total).shift_right(shift) if rounded else round_shift(total, shift)
    return saturate(shifted, *act_range(act_bits, signed))


def tree_sum(values):
    """Sum of ``values`` as a balanced adder tree, depth ``ceil(log2(len(values)))``; every adder
    is one bit wider than its widest operand, so no level wraps."""
    values = list(values)
    while len(values) > 1:
        values = [values[j] + values[j + 1] if j + 1 < len(values) else values[j]
                  for j in range(0, len(values), 2)]
    return values[0]


def pass_counter(m, passes: int, advance):
    """The pass of a product register filled over ``passes`` cycles (`fill_products`):
    ``(step, last)``, ``step`` counting the cycles with ``advance`` from 0 to ``passes - 1`` and
    round again, ``last`` whether ``step`` is the last pass (a register of its own, so that the
    handshake that ends a fill starts from a flip-flop). ``(0, 1)`` constants for one pass."""
    if passes == 1:
        return Const(0, 1), Const(1, 1)
    step, last = Signal(range(passes), name="step"), Signal(name="last_step")
    with m.If(advance):
        m.d.sync += [step.eq(Mux(last, 0, step + 1)), last.eq(step == passes - 2)]
    return step, last


def emptied_by_last_pass(m, passes: int, last, product_free, product_valid, block: str):
    """Whether the register a product register is filled from (`fill_products`) is emptied
    this cycle, given that it holds an operand: in the last pass, when the product register is
    free (``product_free & last``). With several passes the product register is always free in
    the last pass (its products left in the first; ``product_valid`` is set by the last pass
    only, which a simulation assertion checks), so this is ``last`` alone: the producer's ready
    then waits for no decision of the output, which on an FPGA fans out to every operand and
    product register."""
    if passes == 1:
        return product_free                 # `last` is the constant 1
    m.d.sync += Assert(~(product_valid & last), f"{block}: a product held in the last pass")
    return last


def product_shape(operand, mult: int, passes: int, offset: int = 0):
    """Shape of a product register of `fill_products`: ``operand`` times the constant ``mult``
    (one pass), or times any ``MULT_BITS``-bit multiplier (several: the multiplier is
    selected), plus ``offset``."""
    product = Value.cast(operand) * (mult if passes == 1 else Const(mult, MULT_BITS))
    return (product + offset).shape() if offset else product.shape()


def fill_products(m, registers, operands, mults, step, last, passes: int, enable,
                  offset: int = 0) -> None:
    """Write ``operands[c] * mults[c] + offset`` into ``registers[c]`` (shapes from
    `product_shape`) in the cycles with ``enable``: all lanes at once for one pass, else ``lanes
    = ceil(n / passes)`` multipliers over ``passes`` cycles (`pass_counter`: ``step``,
    ``last``).

    With several passes nothing selects an operand before a multiplier: multiplier ``j`` reads
    ``operands[j]``, and the operands, registers of the caller, move down by ``lanes`` after
    every pass but the last (the caller must not write them then), so pass ``s`` multiplies lanes
    ``s * lanes + j``; its products enter at the top of the product registers, which move down
    by ``lanes`` each pass, and are in place after the last. So a multiplier sits between two
    registers (the clock rate of an FPGA build); its factor is a constant, or with ``mults``
    that differ, a register loaded from a table with the next pass's (``enable`` must be what
    advances ``step``, as the callers' `pass_counter`)."""
    n = len(operands)
    if passes == 1:
        with m.If(enable):
            m.d.sync += [r.eq(x * int(k) + offset if offset else x * int(k))
                         for r, x, k in zip(registers, operands, mults)]
        return
    lanes = -(-n // passes)
    # the product registers, with as many more at the top as make `passes` full rows
    chain = list(registers) + [Signal.like(registers[-1], name=f"product_pad{k}")
                               for k in range(passes * lanes - n)]
    with m.If(enable & ~last):
        m.d.sync += [operands[c].eq(operands[c + lanes]) for c in range(n - lanes)]
    products = []
    for j in range(min(lanes, n)):
        factors = [int(mults[s * lanes + j]) if s * lanes + j < n else 0 for s in range(passes)]
        if len(set(factors[:-(-(n - j) // lanes)])) == 1:
            factor = factors[0]
        else:
            # a register holding the pass's factor, loaded with the next pass's from the table
            # when the pass advances: the multiplier reads two registers (no table read and
            # step decode before it, the clock rate of an FPGA build)
            factors += factors[-1:] * ((1 << len(step)) - len(factors))
            table = Array(Const(f, MULT_BITS) for f in factors)
            factor = Signal(MULT_BITS, init=factors[0], name=f"factor_{j}")
            with m.If(enable):
                m.d.sync += factor.eq(table[Mux(last, 0, step + 1)[:len(step)]])
            m.d.sync += Assert(factor == table[step], "fill_products: factor is not the pass's")
        # a signal of its own: an expression assigned in several places is lowered once per
        # place (Amaranth does not share it)
        value = operands[j] * factor + offset if offset else operands[j] * factor
        product = Signal(value.shape(), name=f"product_{j}")
        m.d.comb += product.eq(value)
        products.append(product)
    with m.If(enable):
        m.d.sync += [chain[c].eq(chain[c + lanes]) for c in range(len(chain) - lanes)]
        m.d.sync += [chain[(passes - 1) * lanes + j].eq(p) for j, p in enumerate(products)]
