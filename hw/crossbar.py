"""The behavioral crossbar tile: a signed weight image, a digital MAC array and one ADC per column.

`CrossbarTile` is the digital stand-in for one analog crossbar of an IMC core (docs/crossbar.md).
It holds the weight image of one tile of a layer (the used rows and columns only), applies an
input vector to it and delivers the ADC code of every column, bit-exact with
`imcflow.sw.arith.crossbar_mvm`. It comes in two flavours (`TARGETS`) with the same ports and
the same handshake in every cycle: ``fpga``, a multiplier-free MAC array that computes
``col_parallelism`` columns per cycle, and ``sim``, the behavioral model for Verilog simulation,
which computes the whole MVM as integer arithmetic once per input vector (`MVM_VERILOG`). The
analog timing is emulated by accepting a new MVM only every ``mvm_interval`` cycles.

A tile takes the `~imcflow.sw.arch.CrossbarParams` of the architecture (`Arch.crossbar`), never
the `Arch` itself; the exact range of its output lanes is `CrossbarParams.output_range`. This
module also holds the constructor check `check_target` shared with `imcflow.hw.core`.
"""

from __future__ import annotations

import re

import numpy as np
from amaranth.hdl import (Assert, Cat, ClockSignal, Const, Instance, Module, Mux, Shape, Signal,
                          Value, signed, unsigned)
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from imcflow.errors import UserError
from imcflow.hw.arith import round_shift, saturate
from imcflow.hw.streams import vector_stream
from imcflow.sw.arch import CrossbarParams
from imcflow.sw.arith import signed_range, weight_range
from imcflow.sw.timing import tile_latency
from imcflow.validate import check_choice, check_instance, check_int, integer_array

__all__ = ["TARGETS", "MVM_MODULE", "MVM_VERILOG", "add_mvm_module", "CrossbarTile",
           "WeightWriteLayout", "check_target"]

#: the flavours of `CrossbarTile`: ``sim``, the behavioral model of the analog crossbar (integer
#: arithmetic once per MVM, fast in simulation), and ``fpga``, the multiplier-free MAC array
TARGETS = ("sim", "fpga")


# --- the sim flavour's arithmetic ----------------------------------------------------------------

#: Verilog module of the ``sim`` flavour's data path (`MVM_VERILOG`)
MVM_MODULE = "imcflow_crossbar_mvm"

#: The ``sim`` flavour's data path, hand-written so that Verilator runs it as C++ loops once per
#: MVM (in ``always @(posedge clk) if (start)``) rather than as a netlist evaluated every cycle.
#: The loops are not unrolled (``unroll_disable``: unrolled, the ResNet-8 C++ grew to 27 MB).
#: ``y`` becomes ``sim.arith.crossbar_mvm(x, weight)`` the cycle after ``start``; ``write``
#: replaces column ``col`` by ``column``. Weights are kept sign-extended in an ``integer`` array,
#: column-major (``WEIGHTS``: weight ``(r, c)`` at bits ``(c*ROWS + r)*WEIGHT_BITS``). Every sum
#: fits 32 bits (``Arch`` bounds: ``4096 * 255 * 127 < 2**31``). The rounding is that of
#: ``round_shift``: ``floor((d + 2**(s-1)) / 2**s) = ((d >>> (s-1)) + 1) >>> 1`` (no constant
#: wider than the shift needs).
MVM_VERILOG = """\
// imcflow: the sim flavour of CrossbarTile's data path (imcflow.hw.crossbar.MVM_VERILOG)
module imcflow_crossbar_mvm #(
    parameter ROWS = 1,
    parameter COLS = 1,
    parameter ACT_BITS = 8,
    parameter WEIGHT_BITS = 4,
    parameter ADC_BITS = 8,
    parameter ADC_SHIFT = 0,
    parameter PLANES = 1,
    parameter OUT_BITS = 8,
    parameter COL_BITS = 1,
    parameter [ROWS*COLS*WEIGHT_BITS-1:0] WEIGHTS = 0
) (
    input wire clk,
    input wire start,
    input wire [ROWS*ACT_BITS-1:0] x,
    input wire write,
    input wire [COL_BITS-1:0] col,
    input wire [ROWS*WEIGHT_BITS-1:0] column,
    output reg [COLS*OUT_BITS-1:0] y,
    output wire present
);
    assign present = 1'b1;  // low only where this module is missing (the Amaranth simulator)

    localparam integer CODE_MIN = -(1 << (ADC_BITS - 1));
    localparam integer CODE_MAX = (1 << (ADC_BITS - 1)) - 1;
    localparam integer HALF = ADC_SHIFT == 0 ? 0 : ADC_SHIFT - 1;

    integer weight [0:ROWS*COLS-1];
    integer i;

    initial begin
        /*verilator unroll_disable*/
        for (i = 0; i < ROWS * COLS; i = i + 1)
            weight[i] = $signed(WEIGHTS[i*WEIGHT_BITS +: WEIGHT_BITS]);
    end

    function integer adc(input integer dot);
        integer code;
        begin
            code = ADC_SHIFT == 0 ? dot : ((dot >>> HALF) + 1) >>> 1;
            adc = code < CODE_MIN ? CODE_MIN : code > CODE_MAX ? CODE_MAX : code;
        end
    endfunction

    function [COLS*OUT_BITS-1:0] mvm(input [ROWS*ACT_BITS-1:0] vector);
        integer act [0:ROWS-1];
        integer r, c, b, dot, sum;
        begin
            /*verilator unroll_disable*/
            for (r = 0; r < ROWS; r = r + 1)
                act[r] = {{(32-ACT_BITS){1'b0}}, vector[r*ACT_BITS +: ACT_BITS]};
            mvm = 0;
            /*verilator unroll_disable*/
            for (c = 0; c < COLS; c = c + 1) begin
                sum = 0;
                /*verilator unroll_disable*/
                for (b = PLANES - 1; b >= 0; b = b - 1) begin
                    dot = 0;
                    /*verilator unroll_disable*/
                    for (r = 0; r < ROWS; r = r + 1)
                        dot = dot + (PLANES == 1 ? act[r] : (act[r] >> b) & 1) * weight[c*ROWS + r];
                    sum = 2 * sum + adc(dot);
                end
                mvm[c*OUT_BITS +: OUT_BITS] = sum[OUT_BITS-1:0];
            end
        end
    endfunction

    always @(posedge clk) begin
        if (write) begin
            /*verilator unroll_disable*/
            for (i = 0; i < ROWS; i = i + 1)
                weight[col*ROWS + i] <= $signed(column[i*WEIGHT_BITS +: WEIGHT_BITS]);
        end
        if (start)
            y <= mvm(x);
    end
endmodule
"""


def add_mvm_module(verilog: str, top: str) -> str:
    """``verilog`` (a design whose top module is ``top``) followed by `MVM_VERILOG` if one of its
    modules instantiates `MVM_MODULE` (a ``sim`` flavour `CrossbarTile`); every Verilog writer of
    imcflow calls it. The module is renamed ``<top>.crossbar_mvm``, in the design's own namespace
    like Amaranth's modules, so that two designs fit in one simulation."""
    name = f"\\{top}.crossbar_mvm "
    verilog, count = re.subn(rf"^(\s*){MVM_MODULE}\b", lambda m: m.group(1) + name, verilog,
                             flags=re.M)
    if count == 0:
        return verilog
    return verilog + "\n" + MVM_VERILOG.replace(f"module {MVM_MODULE} ", f"module {name}", 1)


# --- shared checks ------------------------------------------------------------------------------

def check_target(target) -> None:
    """A `UserError` unless ``target`` is one of `TARGETS`."""
    check_choice("target", target, TARGETS)


# --- the tile ------------------------------------------------------------------------------------

def _add_signed(a, b):
    """The sum of two terms ``(value, negative)`` (each ``-value`` if ``negative``), as a term:
    one adder or subtractor, no negation."""
    (x, nx), (y, ny) = a, b
    if nx == ny:
        return x + y, nx
    return (x - y, False) if ny else (y - x, False)


class WeightWriteLayout(data.StructLayout):
    """Payload of the reprogramming port: the new weights ``data`` of column ``col``.

    Parameters
    ----------
    rows, cols : int
        Geometry of the tile.
    weight_bits : int
        Width of a signed weight.
    """

    def __init__(self, rows: int, cols: int, weight_bits: int):
        # one bit at least: Verilog has no empty vectors
        super().__init__({"col": range(max(cols, 2)),
                          "data": data.ArrayLayout(signed(weight_bits), rows)})


class CrossbarTile(wiring.Component):
    """One crossbar tile: MVM of the input vector with a signed weight image, and its ADCs.

    Output lane ``c`` of each MVM is ``imcflow.sw.arith.crossbar_mvm(x, weight, ...)[c]``:

    - ``pwm``: ``adc_convert(sum_r x[r] * weight[r, c])``;
    - ``bit_serial``: one conversion per input bit plane, shift-added:
      ``sum_b adc_convert(sum_r bit_b(x[r]) * weight[r, c]) << b``, computed MSB first as
      ``acc = 2 * acc + code_b`` (Horner), which is the same integer.

    ``adc_convert`` is the gain right shift by ``adc_shift`` with round-half-up, then saturation
    to signed ``adc_bits``; no intermediate wraps.

    Flavours. Both share the control (input acceptance, step issue, the tags, the stall rule,
    the output register); only the data path differs. ``fpga`` is described below. ``sim``
    computes all columns at once, as integer products and sums, in the cycle that issues an
    MVM's last step (from the input register, or from ``i`` when there is one step), in a
    Verilog module (`MVM_VERILOG`, also holding the weights) that Verilator runs as C++ loops,
    then carries the result in step with the tags (``mac_stages + 2`` registers) into the output
    register, which it reaches in the same cycle as ``fpga``'s last group. The Amaranth simulator
    cannot run the ``sim`` flavour (it leaves the module's output at 0).

    Structure (``fpga``). The weights live in a `Memory` of ``groups = ceil(cols / p)`` words
    (two at least: Verilog has no empty address), each word the ``p = col_parallelism`` columns
    ``[g*p, g*p + p)`` (the last group padded with zero columns). An MVM is
    ``steps = planes * groups * folds`` steps (``planes`` = 1 for ``pwm``, ``act_bits`` for
    ``bit_serial``; ``folds = params.row_folds``), one per cycle: group by group, within a group
    plane by plane (MSB first), and within a plane row fold by row fold. A step reads one word
    (its group's columns, restricted to the fold's ``ceil(rows / folds)`` rows), forms those
    rows' products of each of the ``p`` columns with the input (``bit_serial``: with one bit
    plane, so a product is an AND) and sums them in an adder tree into the dot register, which
    the first fold of a dot product replaces and the others add to; the cycle after the last
    fold adds the ADC's rounding constant to the ``p`` sums, and the cycle after that saturates
    and shift-adds them. Row folds divide the adder trees, the FPGA's largest cost, by ``folds``
    and multiply the steps by it. The pipeline is four registers deep: the input register (held
    for the whole MVM), the dot-product register, the rounded-sum register (so that the rounding
    adder and the saturating comparisons are never in one cycle: the clock rate of an FPGA build)
    and the output register, into which each finished group is written. ``params.mac_stages`` more
    registers cut the products and the adder tree into ``mac_stages + 1`` parts of equal depth
    (for the clock rate of an FPGA); each adds one cycle of latency and none of interval. The
    output register is the only output buffer: the next MVM runs while a result waits in it, and
    the whole pipeline holds only while a finished group would overwrite a result that is not
    being read. The ``sim`` flavour issues the same steps and holds in the same cycles.

    Reprogramming. ``i_weight`` writes the ``rows`` weights of column ``col`` (a column of the
    crossbar, one per beat, written in ``folds`` cycles, one row fold each; ``col >= cols`` is ignored; in Verilog ``col`` is the low
    ``max(1, ceil_log2(cols))`` bits of ``i_weight__payload``, the lanes follow). A write is accepted only between MVMs:
    its ``ready`` is low while an MVM is reading the weights, and a pending write takes priority
    over accepting the next input. Each MVM therefore sees one consistent weight image: that of
    all writes accepted before the MVM's input.

    Parameters
    ----------
    weight : int array (rows, cols)
        Initial weight image: the used rows and columns of this tile, at most ``params.rows`` x
        ``params.cols``, each in `imcflow.sw.arith.weight_range` of ``params.weight_bits``.
    adc_shift : int
        ADC gain: right shift of the dot product before saturation, ``>= 0``.
    params : CrossbarParams
        The architecture's crossbar (`Arch.crossbar`): ``act_bits``, ``weight_bits``,
        ``adc_bits``, ``input_encoding``, ``mvm_cycles``, ``col_parallelism``, ``mac_stages`` and
        ``row_folds``: the tile computes ``params.columns_per_cycle(cols)`` columns per cycle
        (``None``: the fewest that finish an MVM within ``mvm_cycles``; more than ``cols``: all).
    target : str
        ``fpga`` (default), the MAC array, which every simulator and synthesizer takes, or
        ``sim``, the behavioral model for Verilog simulators (`TARGETS`).

    Attributes
    ----------
    i : In(vector_stream(rows, act_bits))
        Input vector: the row-tile slice of a window. ``last`` passes through to ``o``.
    o : Out(vector_stream(cols, out_bits, signed_=True))
        ADC codes (``pwm``, ``out_bits = adc_bits``) or their shift-added sum (``bit_serial``,
        ``out_bits = adc_bits + act_bits``).
    i_weight : In(stream.Signature(WeightWriteLayout(rows, cols, weight_bits)))
        Reprogramming port: one column of weights per beat.
    rows, cols, col_parallelism, groups, planes, folds, steps, out_bits : int
        Geometry as above (``col_parallelism = params.columns_per_cycle(cols)``), the same for
        both flavours.
    params : CrossbarParams
    target : str
    weight : read-only int64 array (rows, cols)
        The initial weight image.
    interval : int
        ``params.mvm_interval(cols) = max(mvm_cycles, steps)``: cycles between accepted inputs when
        the consumer keeps up.
    latency : int
        ``steps + params.mac_stages + 3``: from the input handshake to ``o.valid``, when the
        consumer keeps up.

    Raises
    ------
    UserError
        On a parameter of the wrong type or out of its range.
    """

    def __init__(self, weight, *, adc_shift: int, params: CrossbarParams, target: str = "fpga"):
        arch = check_instance("params", params, CrossbarParams)
        check_target(target)
        self.target = target
        self.weight = integer_array("weight", weight, 2, *weight_range(arch.weight_bits))
        self.rows, self.cols = self.weight.shape
        if self.rows > arch.rows or self.cols > arch.cols:
            raise UserError(f"weight: shape {self.weight.shape} exceeds the {arch.rows} x "
                            f"{arch.cols} crossbar")
        self.adc_shift, self.params = check_int("adc_shift", adc_shift, 0), params
        self.col_parallelism = arch.columns_per_cycle(self.cols)
        self.groups = -(-self.cols // self.col_parallelism)
        self.planes = arch.planes
        self.folds = arch.row_folds
        self.chunk = -(-self.rows // self.folds)
        self.steps = self.planes * self.groups * self.folds
        lo, hi = arch.output_range
        self.out_bits = Shape.cast(range(lo, hi + 1)).width
        self.interval = arch.mvm_interval(self.cols)
        self.latency = tile_latency(self.steps, arch.mac_stages)
        super().__init__({
            "i": In(vector_stream(self.rows, arch.act_bits)),
            "o": Out(vector_stream(self.cols, self.out_bits, True)),
            "i_weight": In(stream.Signature(
                WeightWriteLayout(self.rows, self.cols, arch.weight_bits))),
        })

    def _dot_shape(self) -> Shape:
        """Exact shape of one dot product of a step (full input or one bit plane)."""
        x_max = (1 << self.params.act_bits) - 1 if self.planes == 1 else 1
        bound = self.rows * x_max * weight_range(self.params.weight_bits)[1]
        return Shape.cast(range(-bound, bound + 1))

    def _round(self, dot):
        """The first half of ``adc_convert``: the gain shift with round half up."""
        return round_shift(dot, self.adc_shift)

    def _saturate(self, rounded):
        """The second half of ``adc_convert``: saturation to ``adc_bits``."""
        return saturate(rounded, *signed_range(self.params.adc_bits))

    def elaborate(self, platform):
        m = Module()
        arch, groups, planes, folds = self.params, self.groups, self.planes, self.folds
        i, o = self.i, self.o

        # What travels with a step: group, bit plane (MSB first), first and last plane of the
        # group, last step of the MVM, and the input's `last`.
        tag = data.StructLayout({"valid": 1, "g": range(max(groups, 2)), "bit": range(max(planes, 2)),
                                 "first": 1, "plane_done": 1, "mvm_done": 1, "last": 1,
                                 "f": range(max(folds, 2)), "fold_first": 1})
        tag1, tag2, tag3 = (Signal(tag, name=f"tag_{n}") for n in (1, 2, 3))

        # The pipeline holds only while a finished group must wait for the output register, which
        # holds a result that is not being read.
        # `stuck` (tag3.valid & tag3.plane_done & o.valid) is a register of its own, so that `en`
        # is one gate after `o.ready` (the clock rate of an FPGA build).
        en, stuck = Signal(), Signal()
        m.d.comb += en.eq(~stuck | o.ready)
        o_valid_next = Mux(en & tag3.valid & tag3.plane_done & tag3.mvm_done, 1,
                           o.valid & ~o.ready)
        m.d.sync += stuck.eq(Mux(en, tag2.valid & tag2.plane_done, tag3.valid & tag3.plane_done)
                             & o_valid_next)

        # Stage 0: accept an input every `interval` cycles, issue one step per cycle.
        # Counters and memories have one address bit at least: Verilog has no empty vectors.
        busy = Signal()                                   # steps 1.. of an MVM are being issued
        wait = Signal(range(max(self.interval, 2)))       # cycles until the next input
        wait_zero = Signal(init=1)                        # wait == 0, a register of its own
        step_g = Signal(range(max(groups, 2)))            # group of the next step
        step_k = Signal(range(max(planes, 2)))            # plane count of the next step
        step_f = Signal(range(max(folds, 2)))             # row fold of the next step
        step_word = Signal(range(max(groups * folds, 2))) # its weight word, step_g * folds + step_f
        w_chunk = Signal(range(max(folds, 2)))            # row fold of the column being written
        x = Signal(data.ArrayLayout(unsigned(arch.act_bits), self.rows))
        x_last = Signal()
        m.d.comb += [
            i.ready.eq(en & wait_zero & ~self.i_weight.valid),
            self.i_weight.ready.eq(~busy & (w_chunk == folds - 1)),
        ]
        # A column is written one row fold per cycle (one memory word each).
        w_step = self.i_weight.valid & ~busy
        with m.If(w_step):
            m.d.sync += w_chunk.eq(Mux(w_chunk == folds - 1, 0, w_chunk + 1))
        accept = i.valid & i.ready
        # The input register loads whenever no step still has to read it, taken or not: when
        # `wait` is 0 every step of the previous input is issued, and each reads it in stage 1,
        # in the first cycle with `en` after its issue (`fresh`: stage 1 holds a step not yet
        # read). Nothing reads what an input not taken leaves. So its ~1,150 enables wait for
        # no decision of the layer's fork, and the tile's ready is a net of its own.
        fresh = Signal()
        with m.If(en):
            m.d.sync += fresh.eq(accept | busy)
        with m.If(wait_zero & (en | ~fresh)):
            m.d.sync += [x.eq(i.payload.data), x_last.eq(i.payload.last)]
        with m.If(accept):
            m.d.sync += [wait.eq(self.interval - 1), wait_zero.eq(self.interval == 1)]
        with m.Elif(en & (wait != 0)):
            m.d.sync += [wait.eq(wait - 1), wait_zero.eq(wait == 1)]
        m.d.sync += Assert(wait_zero == (wait == 0), "CrossbarTile: wait_zero is not wait == 0")

        issue = en & (accept | busy)
        issue_g = Mux(busy, step_g, 0)
        issue_k = Mux(busy, step_k, 0)
        issue_f = Mux(busy, step_f, 0)
        issue_word = Mux(busy, step_word, 0)
        fold_done = issue_f == folds - 1
        plane_done = fold_done & (issue_k == planes - 1)
        mvm_done = plane_done & (issue_g == groups - 1)
        with m.If(issue):
            m.d.sync += [
                step_f.eq(Mux(fold_done, 0, issue_f + 1)),
                # the next word counted, not multiplied out (a multiplier by a fold count that is
                # not a power of 2 in the memory's address path: 67 MHz on the ECP5)
                step_word.eq(Mux(fold_done & ~plane_done, issue_word - (folds - 1),
                                 issue_word + 1)),
                step_k.eq(Mux(plane_done, 0, issue_k + fold_done)),
                step_g.eq(issue_g + plane_done),
                busy.eq(~mvm_done),
            ]
        with m.If(en):
            # a step reaches the ADC (is valid) with the dot product of its last row fold
            m.d.sync += [tag1.valid.eq((accept | busy) & fold_done), tag1.g.eq(issue_g),
                         tag1.bit.eq(planes - 1 - issue_k), tag1.first.eq(issue_k == 0),
                         tag1.plane_done.eq(plane_done), tag1.mvm_done.eq(mvm_done),
                         tag1.f.eq(issue_f), tag1.fold_first.eq(issue_f == 0)]

        # Stage 1 to 2: `mac_stages` registers, the step's tag travelling through them.
        tags = [Signal(tag, name="tag_mac_in")]
        m.d.comb += [tags[0].eq(tag1), tags[0].last.eq(x_last)]
        for s in range(arch.mac_stages):
            tags.append(Signal(tag, name=f"tag_mac_{s}"))
            with m.If(en):
                m.d.sync += tags[-1].eq(tags[-2])
        with m.If(en):
            m.d.sync += [tag2.eq(tags[-1]), tag3.eq(tag2)]

        # The data path: the lanes each finished group writes into the output register.
        if self.target == "fpga":
            writes = self._mac_array(m, en, x, issue_word, tag1, tags[-1], tag3,
                                     w_chunk, w_step)
        else:
            # The last step of an MVM is issued in its input's handshake cycle when it is the
            # only step, else from the input register; no weight is written meanwhile.
            last_step = issue & mvm_done
            writes = self._behavioral(m, en, last_step, i.payload.data if self.steps == 1 else x,
                                      tag3)

        # Stage 3: the finished group into its lanes of the output register.
        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(en & tag3.valid & tag3.plane_done):
            with m.If(tag3.mvm_done):
                m.d.sync += [o.valid.eq(1), o.payload.last.eq(tag3.last)]
            for cond, lanes in writes:
                with m.If(cond):
                    m.d.sync += [o.payload.data[c].eq(v) for c, v in lanes]
        return m

    def _mac_array(self, m, en, x, issue_word, tag1, tag_dot, tag3, w_chunk, w_step):
        """The ``fpga`` data path: each step reads one word of the weight memory
        (``issue_word``: its group and row fold), forms the dot products of its ``p`` columns
        with the fold's rows of ``x`` (or with bit plane ``tag1.bit``) in adder trees cut by the
        ``mac_stages`` registers, adds the folds of a dot product up in the dot register
        (``tag_dot``: the step's tag there), converts it (the ADC's rounding in stage 2, its
        saturation in stage 3) and, for ``bit_serial``, shift-adds them over the planes. ``w_chunk`` is the row fold the reprogramming port
        writes when ``w_step``. Returns the output writes:
        ``[(condition, [(lane, value), ...]), ...]``, one per group."""
        arch, p, groups, planes, w = self.params, self.col_parallelism, self.groups, self.planes, \
            self.i_weight
        folds, rows = self.folds, self.chunk

        # Weight image: word g * folds + f holds rows [f*rows, f*rows + rows) of columns
        # [g*p, g*p + p), column-major, zero padded.
        padded = np.zeros((folds * rows, groups * p), dtype=np.int64)
        padded[:self.rows, :self.cols] = self.weight
        column = data.ArrayLayout(signed(arch.weight_bits), rows)
        init = [[padded[f * rows:(f + 1) * rows, g * p + j].tolist() for j in range(p)]
                for g in range(groups) for f in range(folds)]
        m.submodules.weights = weights = Memory(
            shape=data.ArrayLayout(column, p), depth=max(groups * folds, 2), init=init)
        rd = weights.read_port()
        wr = weights.write_port(granularity=1)
        m.d.comb += [rd.en.eq(en), rd.addr.eq(issue_word)]
        if folds > 1:          # the step's rows of the input (its fold, zero padded)
            chunk = Signal(data.ArrayLayout(unsigned(arch.act_bits), rows))
            pad = Const(0, (folds * rows - self.rows) * arch.act_bits)
            m.d.comb += chunk.eq(Cat(x.as_value(), pad).word_select(tag1.f, rows * arch.act_bits))
            x = chunk

        # Stage 1: the dot products, as adder trees of gated inputs. `pwm`: one tree per weight
        # bit b (two's complement: the top bit weighs -2**(B-1)), each adding the inputs whose
        # weight has bit b set, so `sum_r x[r] * w[r]` needs adders only, no multipliers (a
        # third of the FPGA logic of a multiplier per cell). `bit_serial`: one tree adding the
        # weights of the rows whose input bit of this plane is set.
        wb = arch.weight_bits
        if planes > 1:
            plane = Signal(rows)
            m.d.comb += plane.eq(Cat(x[r].bit_select(tag1.bit, 1) for r in range(rows)))
            x = plane
        # With two MAC stages or more and a weight memory of several words (in block RAM on an
        # FPGA, whose clock-to-out is most of a cycle), the first register takes the word read
        # and the step's inputs, before any logic; the others are spread below.
        words = rd.data
        early = arch.mac_stages >= 2 and groups * folds > 1
        if early:
            words, inputs = Signal.like(rd.data, name="mac_words"), Signal.like(x, name="mac_x")
            with m.If(en):
                m.d.sync += [words.eq(rd.data), inputs.eq(x)]
            x = inputs
        if planes == 1:
            trees = [(j, -(1 << b) if b == wb - 1 else 1 << b,
                      [Mux(words[j][r][b], x[r], 0) for r in range(rows)])
                     for j in range(p) for b in range(wb)]
        else:
            trees = [(j, 1, [Mux(x[r], words[j][r], 0) for r in range(rows)])
                     for j in range(p)]
        terms = [t for _, _, t in trees]
        # The (other) `mac_stages` registers, spread evenly over the gating level, the tree
        # levels (the same pairwise tree as `tree_sum`) and the levels that add a column's
        # weighted trees up (`pwm`), in step with the tags.
        levels = 1 + (rows - 1).bit_length()
        combine = (len(trees) // p - 1).bit_length()
        stages = arch.mac_stages - early
        cuts = [max(1, round((levels + combine) * (s + 1) / (stages + 1))) for s in range(stages)]

        def cut(level, terms):
            for n in range(cuts.count(level)):
                regs = [[Signal(v.shape(), name=f"mac_l{level}_{n}_t{i}_{k}")
                         for k, v in enumerate(t)] for i, t in enumerate(terms)]
                with m.If(en):
                    m.d.sync += [r.eq(v) for rs, t in zip(regs, terms) for r, v in zip(rs, t)]
                terms = regs
            return terms

        for level in range(1, levels + 1):
            if level > 1:
                terms = [[t[k] + t[k + 1] if k + 1 < len(t) else t[k] for k in range(0, len(t), 2)]
                         for t in terms]
            terms = cut(level, terms)
        # Each column's trees, weighted (the top bit's negative: subtracted where it meets a
        # positive term, so that no negation takes an adder of its own), summed pairwise.
        sums = [[] for _ in range(p)]
        for (j, weight, _), t in zip(trees, terms):
            shift = abs(weight).bit_length() - 1
            sums[j].append((t[0] << shift, weight < 0))
        for level in range(levels + 1, levels + combine + 1):
            sums = [[_add_signed(t[k], t[k + 1]) if k + 1 < len(t) else t[k]
                     for k in range(0, len(t), 2)] for t in sums]
            signs = [[negative for _, negative in t] for t in sums]
            values = cut(level, [[v for v, _ in t] for t in sums])
            sums = [list(zip(v, n)) for v, n in zip(values, signs)]
        totals = [-v if negative else v for (v, negative), in sums]
        dot = Signal(data.ArrayLayout(self._dot_shape(), p))
        with m.If(en):     # the first fold of a dot product replaces it, the others add to it
            m.d.sync += [dot[j].eq(totals[j] if folds == 1 else
                                   totals[j] + Mux(tag_dot.fold_first, 0, dot[j]))
                         for j in range(p)]

        # Stage 2: the ADC's rounding. Stage 3: its saturation, and the shift-add over bit
        # planes (MSB first: acc = 2 * acc + code).
        rounded = Signal(data.ArrayLayout(Value.cast(self._round(dot[0])).shape(), p))
        with m.If(en):
            m.d.sync += [rounded[j].eq(self._round(dot[j])) for j in range(p)]
        codes = [self._saturate(rounded[j]) for j in range(p)]
        if planes == 1:
            result = codes
        else:
            acc = Signal(data.ArrayLayout(signed(self.out_bits), p))
            result = [Mux(tag3.first, codes[j], (acc[j] << 1) + codes[j]) for j in range(p)]
            with m.If(en & tag3.valid):
                m.d.sync += [acc[j].eq(result[j]) for j in range(p)]

        # Reprogramming: fold f of column `col` is lane col % p of word (col // p) * folds + f,
        # one fold per cycle.
        col = w.payload.col
        fold = w.payload.data.as_value()
        if folds > 1:
            fold = Cat(fold, Const(0, (folds * rows - self.rows) * arch.weight_bits)).word_select(
                w_chunk, rows * arch.weight_bits)
        m.d.comb += [
            wr.addr.eq((col // p) * folds + w_chunk),
            wr.data.eq(Cat([fold] * p)),
            wr.en.eq(Mux(w_step & (col < self.cols), Const(1, p) << (col % p), 0)),
        ]
        return [(tag3.g == g, [(c, result[c - g * p])
                               for c in range(g * p, min(g * p + p, self.cols))])
                for g in range(groups)]

    def _behavioral(self, m, en, last_step, x, tag3):
        """The ``sim`` data path: the whole MVM as integer arithmetic on ``x``, once, in the cycle
        ``last_step`` that issues its last step (`MVM_MODULE`, which also holds the weights),
        then carried in step with the tags to stage 3 (``mac_stages + 2`` registers). Returns the
        output write of the finished MVM."""
        arch, w = self.params, self.i_weight
        wb = arch.weight_bits
        image = 0
        for (r, c), value in np.ndenumerate(self.weight):
            image |= (int(value) & ((1 << wb) - 1)) << ((c * self.rows + r) * wb)
        result = Signal(data.ArrayLayout(signed(self.out_bits), self.cols), name="mvm_1")
        present = Signal()
        m.submodules.mvm = Instance(
            MVM_MODULE,
            p_ROWS=self.rows, p_COLS=self.cols, p_ACT_BITS=arch.act_bits, p_WEIGHT_BITS=wb,
            p_ADC_BITS=arch.adc_bits, p_ADC_SHIFT=self.adc_shift, p_PLANES=self.planes,
            p_OUT_BITS=self.out_bits, p_COL_BITS=len(w.payload.col),
            p_WEIGHTS=Const(image, self.rows * self.cols * wb),
            i_clk=ClockSignal(), i_start=last_step, i_x=x.as_value(),
            i_write=w.valid & w.ready & (w.payload.col < self.cols), i_col=w.payload.col,
            i_column=w.payload.data.as_value(), o_y=result.as_value(), o_present=present)
        with m.If(last_step):
            m.d.sync += Assert(present, "CrossbarTile(target='sim') runs in Verilog simulators "
                                        "only, not in the Amaranth simulator; use target='fpga'")
        for s in range(arch.mac_stages + 2):
            carried = Signal.like(result, name=f"mvm_{s + 2}")
            with m.If(en):
                m.d.sync += carried.eq(result)
            result = carried
        return [(tag3.mvm_done, [(c, result[c]) for c in range(self.cols)])]
