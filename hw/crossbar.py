"""The behavioral crossbar tile: a signed weight image, a digital MAC array and one ADC per column.

`CrossbarTile` is the digital stand-in for one analog crossbar of an IMC core (docs/crossbar.md).
It holds the weight image of one tile of a layer (the used rows and columns only), applies an
input vector to it and delivers the ADC code of every column, bit-exact with
`imcflow.sw.arith.crossbar_mvm`. On an FPGA it is a MAC array that computes ``col_parallelism``
columns per cycle; the analog timing is emulated by accepting a new MVM only every
``mvm_interval`` cycles.

This module also holds the exact output range of a tile (`tile_output_range`) and the
constructor checks shared by `imcflow.hw.accumulator` and `imcflow.hw.core`.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from imcflow.hw.arith import round_shift, saturate, tree_sum
from imcflow.hw.streams import vector_stream
from imcflow.sw.arch import Arch
from imcflow.sw.arith import signed_range, weight_range

__all__ = ["CrossbarTile", "WeightWriteLayout", "tile_output_range"]


# --- shared checks ------------------------------------------------------------------------------

def tile_output_range(arch: Arch) -> tuple[int, int]:
    """Exact range of one output lane of a `CrossbarTile` of ``arch``.

    ``pwm``: the signed ``adc_bits`` code range ``[-2**(A-1), 2**(A-1) - 1]``. ``bit_serial``: the
    shift-added sum of ``act_bits`` codes, that range times ``2**act_bits - 1``, which fits
    ``adc_bits + act_bits`` signed bits.
    """
    lo, hi = signed_range(arch.adc_bits)
    if arch.input_encoding == "bit_serial":
        planes_weight = (1 << arch.act_bits) - 1
        return lo * planes_weight, hi * planes_weight
    return lo, hi


def check_int(name: str, value, lo: int, hi: int | None = None) -> None:
    """Raise `TypeError` unless ``value`` is an integer, `ValueError` unless it is in ``lo..hi``
    (``hi=None``: no upper bound)."""
    kind = (f"an integer in {lo}..{hi}" if hi is not None else
            {0: "a non-negative integer", 1: "a positive integer"}.get(lo, f"an integer >= {lo}"))
    message = f"{name} must be {kind}, not {value!r}"
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(message)
    if value < lo or (hi is not None and value > hi):
        raise ValueError(message)


def check_arch(arch) -> None:
    if not isinstance(arch, Arch):
        raise TypeError(f"Arch must be an imcflow.sw.arch.Arch, not {arch!r}")


def integer_array(name: str, value, ndim: int, lo: int | None = None,
                  hi: int | None = None) -> np.ndarray:
    """``value`` as a read-only ``int64`` array of ``ndim`` non-empty dimensions with every element
    in ``lo..hi``; `TypeError` for a non-integer array, `ValueError` for a wrong shape or value."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an array of integers, not {value!r}")
    if array.ndim != ndim or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array, not one of shape {array.shape}")
    if lo is not None and array.min() < lo or hi is not None and array.max() > hi:
        raise ValueError(f"{name} must have every element in {lo}..{hi}, not "
                         f"{int(array.min())}..{int(array.max())}")
    array = array.astype(np.int64)
    array.flags.writeable = False
    return array


# --- the tile ------------------------------------------------------------------------------------

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

    Structure. The weights live in a `Memory` of ``groups = ceil(cols / p)`` words (two at least:
    Verilog has no empty address), each word the ``p = col_parallelism`` columns
    ``[g*p, g*p + p)`` (the last group padded with zero columns).
    An MVM is ``steps = planes * groups`` steps (``planes`` = 1 for ``pwm``, ``act_bits`` for
    ``bit_serial``), one per cycle: group by group, and within a group plane by plane (MSB first).
    A step reads one word, forms the ``rows`` products of each of the ``p`` columns with the
    input (``bit_serial``: with one bit plane, so a product is an AND) and sums them in an adder
    tree; the next cycle converts the ``p`` sums and shift-adds them. The pipeline is three
    registers deep: the input register (held for the whole MVM), the dot-product register and the
    output register, into which each finished group is written. ``arch.mac_stages`` more
    registers cut the products and the adder tree into ``mac_stages + 1`` parts of equal depth
    (for the clock rate of an FPGA); each adds one cycle of latency and none of interval. The output register is the only
    output buffer: the next MVM runs while a result waits in it, and the whole pipeline holds
    only while a finished group would overwrite a result that is not being read.

    Reprogramming. ``i_weight`` writes the ``rows`` weights of column ``col`` (a column of the
    crossbar, one per beat; ``col >= cols`` is ignored; in Verilog ``col`` is the low
    ``max(1, ceil_log2(cols))`` bits of ``i_weight__payload``, the lanes follow). A write is accepted only between MVMs:
    its ``ready`` is low while an MVM is reading the weights, and a pending write takes priority
    over accepting the next input. Each MVM therefore sees one consistent weight image: that of
    all writes accepted before the MVM's input.

    Parameters
    ----------
    weight : int array (rows, cols)
        Initial weight image: the used rows and columns of this tile, at most ``arch.rows`` x
        ``arch.cols``, each in `imcflow.sw.arith.weight_range` of ``arch.weight_bits``.
    adc_shift : int
        ADC gain: right shift of the dot product before saturation, ``>= 0``.
    arch : Arch
        ``act_bits``, ``weight_bits``, ``adc_bits``, ``input_encoding``, ``mvm_cycles`` and
        ``col_parallelism``: the tile computes ``arch.columns_per_cycle(cols)`` columns per cycle
        (``None``: the fewest that finish an MVM within ``mvm_cycles``; more than ``cols``: all).

    Attributes
    ----------
    i : In(vector_stream(rows, act_bits))
        Input vector: the row-tile slice of a window. ``last`` passes through to ``o``.
    o : Out(vector_stream(cols, out_bits, signed_=True))
        ADC codes (``pwm``, ``out_bits = adc_bits``) or their shift-added sum (``bit_serial``,
        ``out_bits = adc_bits + act_bits``).
    i_weight : In(stream.Signature(WeightWriteLayout(rows, cols, weight_bits)))
        Reprogramming port: one column of weights per beat.
    rows, cols, col_parallelism, groups, planes, steps, out_bits : int
        Geometry as above (``col_parallelism = arch.columns_per_cycle(cols)``).
    weight : read-only int64 array (rows, cols)
        The initial weight image.
    interval : int
        ``arch.mvm_interval(cols) = max(mvm_cycles, steps)``: cycles between accepted inputs when
        the consumer keeps up.
    latency : int
        ``steps + arch.mac_stages + 2``: from the input handshake to ``o.valid``, when the
        consumer keeps up.

    Raises
    ------
    TypeError, ValueError
        On a parameter of the wrong type or out of its range.
    """

    def __init__(self, weight, *, adc_shift: int, arch: Arch):
        check_arch(arch)
        self.weight = integer_array("Weight", weight, 2, *weight_range(arch.weight_bits))
        self.rows, self.cols = self.weight.shape
        if self.rows > arch.rows or self.cols > arch.cols:
            raise ValueError(f"Weight shape {self.weight.shape} exceeds the {arch.rows} x "
                             f"{arch.cols} crossbar of the architecture")
        check_int("ADC shift", adc_shift, 0)
        self.adc_shift, self.arch = int(adc_shift), arch
        self.col_parallelism = arch.columns_per_cycle(self.cols)
        self.groups = -(-self.cols // self.col_parallelism)
        self.planes = arch.planes
        self.steps = self.planes * self.groups
        lo, hi = tile_output_range(arch)
        self.out_bits = Shape.cast(range(lo, hi + 1)).width
        self.interval = arch.mvm_interval(self.cols)
        self.latency = self.steps + arch.mac_stages + 2
        super().__init__({
            "i": In(vector_stream(self.rows, arch.act_bits)),
            "o": Out(vector_stream(self.cols, self.out_bits, True)),
            "i_weight": In(stream.Signature(
                WeightWriteLayout(self.rows, self.cols, arch.weight_bits))),
        })

    def _dot_shape(self) -> Shape:
        """Exact shape of one dot product of a step (full input or one bit plane)."""
        x_max = (1 << self.arch.act_bits) - 1 if self.planes == 1 else 1
        bound = self.rows * x_max * weight_range(self.arch.weight_bits)[1]
        return Shape.cast(range(-bound, bound + 1))

    def elaborate(self, platform):
        m = Module()
        arch, p, groups, planes = self.arch, self.col_parallelism, self.groups, self.planes
        i, o, w = self.i, self.o, self.i_weight

        # Weight image: word g holds columns [g*p, g*p + p), column-major, zero padded.
        padded = np.zeros((self.rows, groups * p), dtype=np.int64)
        padded[:, :self.cols] = self.weight
        column = data.ArrayLayout(signed(arch.weight_bits), self.rows)
        init = [[padded[:, g * p + j].tolist() for j in range(p)] for g in range(groups)]
        m.submodules.weights = weights = Memory(
            shape=data.ArrayLayout(column, p), depth=max(groups, 2), init=init)
        rd = weights.read_port()
        wr = weights.write_port(granularity=1)

        # What travels with a step: group, bit plane (MSB first), first and last plane of the
        # group, last step of the MVM, and the input's `last`.
        tag = data.StructLayout({"valid": 1, "g": range(max(groups, 2)), "bit": range(max(planes, 2)),
                                 "first": 1, "plane_done": 1, "mvm_done": 1, "last": 1})
        tag1, tag2 = Signal(tag, name="tag_1"), Signal(tag, name="tag_2")

        # The pipeline holds only while a finished group must wait for the output register, which
        # holds a result that is not being read.
        en = Signal()
        m.d.comb += en.eq(~(tag2.valid & tag2.plane_done & o.valid & ~o.ready))

        # Stage 0: accept an input every `interval` cycles, issue one step per cycle.
        # Counters and memories have one address bit at least: Verilog has no empty vectors.
        busy = Signal()                                   # steps 1.. of an MVM are being issued
        wait = Signal(range(max(self.interval, 2)))       # cycles until the next input
        step_g = Signal(range(max(groups, 2)))            # group of the next step
        step_k = Signal(range(max(planes, 2)))            # plane count of the next step
        x = Signal(data.ArrayLayout(unsigned(arch.act_bits), self.rows))
        x_last = Signal()
        m.d.comb += [
            i.ready.eq(en & (wait == 0) & ~w.valid),
            w.ready.eq(~busy),
        ]
        accept = i.valid & i.ready
        with m.If(accept):
            m.d.sync += [x.eq(i.payload.data), x_last.eq(i.payload.last),
                         wait.eq(self.interval - 1)]
        with m.Elif(en & (wait != 0)):
            m.d.sync += wait.eq(wait - 1)

        issue_g = Mux(busy, step_g, 0)
        issue_k = Mux(busy, step_k, 0)
        plane_done = issue_k == planes - 1
        mvm_done = plane_done & (issue_g == groups - 1)
        m.d.comb += [rd.en.eq(en), rd.addr.eq(issue_g)]
        with m.If(en & (accept | busy)):
            m.d.sync += [
                step_k.eq(Mux(plane_done, 0, issue_k + 1)),
                step_g.eq(issue_g + plane_done),
                busy.eq(~mvm_done),
            ]

        with m.If(en):
            m.d.sync += [tag1.valid.eq(accept | busy), tag1.g.eq(issue_g),
                         tag1.bit.eq(planes - 1 - issue_k), tag1.first.eq(issue_k == 0),
                         tag1.plane_done.eq(plane_done), tag1.mvm_done.eq(mvm_done)]

        # Stage 1: the dot products, as adder trees of gated inputs. `pwm`: one tree per weight
        # bit b (two's complement: the top bit weighs -2**(B-1)), each adding the inputs whose
        # weight has bit b set, so `sum_r x[r] * w[r]` needs adders only, no multipliers (a
        # third of the FPGA logic of a multiplier per cell). `bit_serial`: one tree adding the
        # weights of the rows whose input bit of this plane is set.
        wb = arch.weight_bits
        if planes == 1:
            trees = [(j, -(1 << b) if b == wb - 1 else 1 << b,
                      [Mux(rd.data[j][r][b], x[r], 0) for r in range(self.rows)])
                     for j in range(p) for b in range(wb)]
        else:
            plane = Signal(self.rows)
            m.d.comb += plane.eq(Cat(x[r].bit_select(tag1.bit, 1) for r in range(self.rows)))
            trees = [(j, 1, [Mux(plane[r], rd.data[j][r], 0) for r in range(self.rows)])
                     for j in range(p)]
        terms = [t for _, _, t in trees]
        # `mac_stages` registers, spread evenly over the gating level and the tree levels (the
        # same pairwise tree as `tree_sum`); the step's tag travels alongside.
        levels = 1 + (self.rows - 1).bit_length()
        cuts = [max(1, round(levels * (s + 1) / (arch.mac_stages + 1)))
                for s in range(arch.mac_stages)]
        step_tag = Signal(tag, name="tag_mac_in")
        m.d.comb += [step_tag.eq(tag1), step_tag.last.eq(x_last)]
        for level in range(1, levels + 1):
            if level > 1:
                terms = [[t[k] + t[k + 1] if k + 1 < len(t) else t[k] for k in range(0, len(t), 2)]
                         for t in terms]
            for n in range(cuts.count(level)):
                regs = [[Signal(v.shape(), name=f"mac_l{level}_{n}_t{i}_{k}")
                         for k, v in enumerate(t)] for i, t in enumerate(terms)]
                reg_tag = Signal(tag, name=f"tag_mac_l{level}_{n}")
                with m.If(en):
                    m.d.sync += [r.eq(v) for rs, t in zip(regs, terms) for r, v in zip(rs, t)]
                    m.d.sync += reg_tag.eq(step_tag)
                terms, step_tag = regs, reg_tag
        sums = [[] for _ in range(p)]
        for (j, weight, _), t in zip(trees, terms):
            total = tree_sum(t)
            shift = weight.bit_length() - 1 if weight > 0 else (-weight).bit_length() - 1
            sums[j].append(-(total << shift) if weight < 0 else total << shift)
        dot = Signal(data.ArrayLayout(self._dot_shape(), p))
        with m.If(en):
            m.d.sync += [tag2.eq(step_tag), *(dot[j].eq(tree_sum(sums[j])) for j in range(p))]

        # Stage 2: ADC (gain shift, round half up, saturation), shift-add over bit planes, and
        # the finished group into its lanes of the output register.
        codes = [saturate(round_shift(dot[j], self.adc_shift), *signed_range(arch.adc_bits))
                 for j in range(p)]
        if planes == 1:
            result = codes
        else:
            acc = Signal(data.ArrayLayout(signed(self.out_bits), p))
            result = [Mux(tag2.first, codes[j], (acc[j] << 1) + codes[j]) for j in range(p)]
            with m.If(en & tag2.valid):
                m.d.sync += [acc[j].eq(result[j]) for j in range(p)]
        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(en & tag2.valid & tag2.plane_done):
            with m.If(tag2.mvm_done):
                m.d.sync += [o.valid.eq(1), o.payload.last.eq(tag2.last)]
            for g in range(groups):
                with m.If(tag2.g == g):
                    lanes = range(g * p, min(g * p + p, self.cols))
                    m.d.sync += [o.payload.data[c].eq(result[c - g * p]) for c in lanes]

        # Reprogramming: column `col` is lane col % p of word col // p.
        col = w.payload.col
        m.d.comb += [
            wr.addr.eq(col // p),
            wr.data.eq(Cat([w.payload.data] * p)),
            wr.en.eq(Mux(w.valid & w.ready & (col < self.cols), Const(1, p) << (col % p), 0)),
        ]
        return m
