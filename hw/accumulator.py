"""The ADC accumulator: the digital periphery after the crossbars of one column tile.

`AdcAccumulator` adds the outputs of the row tiles of one column tile (the partial sums of a
layer whose weight matrix is taller than a crossbar), adds the integer bias, requantizes with a
per-column fixed-point multiplier and the layer shift, and saturates to the activation range: the
end of `imcflow.sw.golden.crossbar_layer`, bit for bit (docs/crossbar.md).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.arith import (emptied_by_last_pass, fill_products, pass_counter, product_shape,
                              requantize_sum, rounding_constant, tree_sum)
from imcflow.hw.streams import vector_stream
from imcflow.sw.arch import CrossbarParams
from imcflow.sw.arith import Requantizer, check_requantizer
from imcflow.sw.timing import ACCUMULATOR_LATENCY
from imcflow.validate import check_instance, check_int, integer_array

__all__ = ["AdcAccumulator"]


class AdcAccumulator(wiring.Component):
    """Partial-sum accumulation over row tiles, bias, requantization and ReLU.

    Output lane ``c`` is ``requantizer.apply(sum_t i[t][c] + bias[c])[c]``
    (`imcflow.sw.arith.requantize`): ``saturate(round_shift((sum_t i[t][c] + bias[c]) * mult[c],
    shift), *requantizer.range)``, with round-half-up and saturation to unsigned
    ``requantizer.bits`` (the ReLU) or signed ones.

    The inputs are joined: one output beat per beat of every row tile, all taken in the same
    cycle. Three registered stages (`imcflow.sw.timing.ACCUMULATOR_LATENCY`): the sum plus bias,
    its product with the multiplier, then the rounding and saturation into the output register,
    so the multiply and the rounding adder are never in one cycle. The stages are elastic: each
    advances when the next is empty or being emptied, so a result waiting for the consumer does
    not stop the next sum from entering. With ``params.requant_lanes`` multipliers
    (`~imcflow.sw.arch.CrossbarParams.requant_passes`), the product register is filled
    ``lanes = ceil(cols / passes)`` lanes per cycle over ``passes`` cycles, from the sum register,
    which is emptied in the last of them: ``lanes`` multipliers instead of ``cols`` (FPGA DSPs),
    ``passes - 1`` more cycles of latency, at most one beat per ``passes`` cycles. Their
    ``last`` flags must agree (they are the same window); the output's ``last`` is that of
    ``i[0]``, and an ``Assert`` fails in simulation and formal proofs on a mismatch.

    Widths (every intermediate is sized from its value range, so nothing wraps). With ``[lo, hi]``
    the range of a tile's output lane (`imcflow.sw.arch.CrossbarParams.output_range`) and ``T``
    row tiles:

    - ``acc = sum_t i[t] + bias``, in ``[T*lo + min(bias), T*hi + max(bias)]``: the register
      between the two stages, of the smallest signed shape holding that range (``acc_shape``);
    - ``acc * mult``: ``acc_shape.width + MULT_BITS + 1`` bits (Amaranth's product of a signed
      and an unsigned value), the product register; ``+ 2**(shift-1)`` adds one bit; the arithmetic shift and the
      saturation then bring it to ``requantizer.bits``.

    Parameters
    ----------
    bias : int array (cols,)
        Integer bias of each column, in accumulator units (ADC codes).
    requantizer : Requantizer
        One unsigned ``MULT_BITS``-bit multiplier per column, the right shift, and the output
        range: signed (a layer without ReLU) or unsigned (saturation at 0 is the ReLU), ``bits``
        wide.
    row_tiles : int
        Number of row tiles ``T`` whose outputs are added.
    params : CrossbarParams
        ``act_bits``, ``adc_bits`` and ``input_encoding`` of the tiles, which fix the input lane
        width (`CrossbarParams.output_range`).

    Attributes
    ----------
    i : In(vector_stream(cols, in_bits, signed_=True)).array(row_tiles)
        One stream per row tile: the outputs of the `CrossbarTile` s of this column tile
        (``in_bits = adc_bits`` for ``pwm``, ``adc_bits + act_bits`` for ``bit_serial``).
    o : Out(vector_stream(cols, requantizer.bits, requantizer.signed))
        Requantized activations.
    requantizer : Requantizer
    mult : read-only int64 array (cols,)
        Its multipliers.
    acc_shape : Shape
        Shape of the accumulator register (see Widths).
    passes : int
        ``params.requant_passes(cols)``: cycles to fill the product register.
    lanes : int
        ``ceil(cols / passes)``: the multipliers.
    latency : int
        ``ACCUMULATOR_LATENCY + passes - 1`` (`imcflow.sw.timing.ACCUMULATOR_LATENCY`, 3): the
        accumulator register, the product register, then the output register.
    interval : int
        ``passes``: one beat per ``passes`` cycles when the inputs are valid and the consumer
        keeps up (1 with a multiplier per column).

    Raises
    ------
    UserError
        On a parameter of the wrong type or out of its range.
    """

    def __init__(self, bias, requantizer: Requantizer, *, row_tiles: int,
                 params: CrossbarParams):
        check_instance("params", params, CrossbarParams)
        self.bias = integer_array("bias", bias, 1)
        self.cols = len(self.bias)
        r = self.requantizer = check_requantizer(requantizer, self.cols)
        self.mult = integer_array("requantizer.mult", r.mult, 1)
        self.shift, self.row_tiles = r.shift, check_int("row_tiles", row_tiles, 1)
        lo, hi = params.output_range
        self.in_bits = Shape.cast(range(lo, hi + 1)).width
        self.acc_shape = Shape.cast(range(row_tiles * lo + int(self.bias.min()),
                                          row_tiles * hi + int(self.bias.max()) + 1))
        self.passes = params.requant_passes(self.cols)
        self.lanes = -(-self.cols // self.passes)
        self.latency = ACCUMULATOR_LATENCY + self.passes - 1
        self.interval = self.passes
        super().__init__({
            "i": In(vector_stream(self.cols, self.in_bits, True)).array(self.row_tiles),
            "o": Out(vector_stream(self.cols, r.bits, r.signed)),
        })

    def elaborate(self, platform):
        m = Module()
        o = self.o
        # Each stage advances when the next one is empty or being emptied.
        acc = Signal(data.ArrayLayout(self.acc_shape, self.cols))
        acc_valid, acc_last = Signal(name="acc_valid"), Signal(name="acc_last")
        passes = self.passes
        rounding = rounding_constant(self.shift)   # into the products
        prod = [Signal(product_shape(acc[c], int(self.mult[c]), passes, rounding),
                       name=f"prod{c}") for c in range(self.cols)]
        prod_valid, prod_last = Signal(name="prod_valid"), Signal(name="prod_last")
        # `full_prod` = prod_valid & o.valid as a register of its own: each stage's free is then
        # one gate after `o.ready`, not a chain of them (the clock rate of an FPGA build).
        full_prod = Signal(name="full_prod")
        o_free = ~o.valid | o.ready
        prod_free = ~full_prod | o.ready
        step, last_step = pass_counter(m, passes, prod_free & acc_valid)
        # the sum register is emptied by the product register's last pass
        done = emptied_by_last_pass(m, passes, last_step, prod_free, prod_valid, "AdcAccumulator")
        acc_free = ~acc_valid | done
        take = acc_free
        for i in self.i:
            take &= i.valid
        m.d.comb += [i.ready.eq(take) for i in self.i]
        prod_next = Mux(prod_free, acc_valid & done, prod_valid)
        o_next = Mux(o_free, prod_valid, o.valid)
        m.d.sync += full_prod.eq(prod_next & o_next)

        # Stage 1: partial sums of the row tiles plus the bias.
        with m.If(acc_free):
            m.d.sync += acc_valid.eq(take)
        with m.If(take):
            m.d.sync += [
                Assert(self.i[0].payload.last == i.payload.last,
                       "AdcAccumulator: `last` of the row tiles disagree")
                for i in self.i[1:]]
        # The sum loads whenever the stage is free, taken or not (`acc_valid` says which): its
        # enables then wait for no input's valid.
        with m.If(acc_free):
            m.d.sync += acc_last.eq(self.i[0].payload.last)
            m.d.sync += [
                acc[c].eq(tree_sum([i.payload.data[c] for i in self.i]) + int(self.bias[c]))
                for c in range(self.cols)]

        # Stage 2: the requantization product, `lanes` lanes per pass. A pass writes the
        # register while it is empty or being emptied (after the first pass it is empty).
        with m.If(prod_free):
            m.d.sync += [prod_valid.eq(acc_valid & done), prod_last.eq(acc_last)]
        fill_products(m, prod, [acc[c] for c in range(self.cols)], self.mult, step, last_step,
                      passes, prod_free & acc_valid, rounding)

        # Stage 3: the shift (the products hold the rounding constant) and the saturation.
        r = self.requantizer
        with m.If(o_free):
            m.d.sync += [o.valid.eq(prod_valid), o.payload.last.eq(prod_last)]
            m.d.sync += [o.payload.data[c].eq(requantize_sum(prod[c], self.shift, r.bits,
                                                             r.signed, rounded=True))
                         for c in range(self.cols)]
        return m
