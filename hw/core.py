"""The compute of one conv or dense layer on crossbars: row and column tiles and their periphery.

`CrossbarLayer` takes the window stream of a layer (one beat per output pixel, ``k*k*C_in`` lanes
in im2col order) and delivers its output pixel stream (``C_out`` lanes), bit-exact with
`imcflow.sw.golden.crossbar_layer`. The weight matrix is split into row tiles of ``arch.rows`` and
column tiles of ``arch.cols`` (the last of each may be smaller); each tile is a `CrossbarTile`
holding only its used rows and columns, each column tile has an `AdcAccumulator` adding its row
tiles' partial sums (docs/crossbar.md). A tile whose weights are all 0 is not built: its ADC codes
would be exactly 0 (a block-diagonal layout has many, docs/mapper.md).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from imcflow.errors import UserError
from imcflow.hw.accumulator import AdcAccumulator
from imcflow.hw.crossbar import CrossbarTile, check_target
from imcflow.hw.streams import vector_stream
from imcflow.sw.arch import CrossbarParams
from imcflow.sw.arith import Requantizer, check_requantizer, weight_range
from imcflow.sw.golden import tile_slices
from imcflow.validate import check_instance, check_int, integer_array

__all__ = ["CrossbarLayer"]


class CrossbarLayer(wiring.Component):
    """One layer's MVMs on a grid of crossbar tiles, partial-sum accumulation and requantization.

    ::

        i --fork--> CrossbarTile[t][u] --> AdcAccumulator[u] --concat--> o
           row slice t          (T row tiles per column tile u)   lanes of column tile u

    The input fork gives each tile its row slice of every window; a one-bit register per tile
    remembers that the tile has taken the current window, so no tile sees a window twice and none
    waits for another (``valid`` of a tile input never depends on ``ready``). The window is
    consumed in the cycle the last tile takes it. The concatenation waits until every column
    tile's accumulator has its output pixel and hands them on together.

    The layer is as fast as its widest column tile (the first): ``interval`` and ``latency`` are
    those of the first tile plus the accumulator's. Narrower column tiles finish earlier and wait
    in their output registers, without holding up their next window. The ``ready`` path from
    ``o`` to ``i`` is combinational through the accumulators and tiles (a stage advances when the
    next can take its result); a skid buffer outside breaks it where timing needs it.

    The weights are the tiles' initial images and fixed: the tiles' reprogramming ports are not
    exposed, so synthesis sees constant weights.

    Parameters
    ----------
    weight : int array (rows_total, C_out)
        Weight matrix in im2col row order (``k*k*C_in`` rows), each element in
        `imcflow.sw.arith.weight_range` of ``params.weight_bits``.
    bias : int array (C_out,)
        Integer bias of each output channel, in ADC code units.
    requantizer : Requantizer
        One unsigned ``MULT_BITS``-bit multiplier per output channel, the right shift and the
        output range: signed (no ReLU) or unsigned (ReLU), ``bits`` wide.
    adc_shift : int
        ADC gain: right shift of each dot product, ``>= 0``.
    params : CrossbarParams
        The architecture's crossbar (`Arch.crossbar`): geometry (``rows``, ``cols``), bit
        widths, input encoding, ``mvm_cycles``, ``col_parallelism``, ``mac_stages``,
        ``row_folds``.
    target : str
        The tiles' flavour (`~imcflow.hw.crossbar.TARGETS`): ``fpga`` (default), the MAC array,
        or ``sim``, the behavioral model for Verilog simulators; same ports and timing.

    Attributes
    ----------
    i : In(vector_stream(rows_total, params.act_bits))
        Windows, one beat per output pixel, ``last`` on the last pixel of each image.
    o : Out(vector_stream(C_out, requantizer.bits, requantizer.signed))
        Output pixels, ``last`` passed through.
    tiles : list of list of CrossbarTile or None
        ``tiles[t][u]``: row tile ``t``, column tile ``u``; None for an all-zero tile (each column
        tile keeps at least one).
    accumulators : list of AdcAccumulator
        One per column tile.
    interval : int
        ``params.mvm_interval(min(params.cols, C_out))``: cycles between windows when the consumer
        keeps up; a stage of ``P`` output pixels takes ``P * interval`` cycles.
    latency : int
        ``tile.latency + accumulator.latency = planes * groups * row_folds + mac_stages + 5 +
        passes`` of the first column tile (its ``groups`` and requantization ``passes``): from the
        window handshake to ``o.valid``.

    Raises
    ------
    UserError
        On a parameter of the wrong type or out of its range.
    """

    def __init__(self, weight, bias, requantizer: Requantizer, *, adc_shift: int,
                 params: CrossbarParams, target: str = "fpga"):
        arch = check_instance("params", params, CrossbarParams)
        check_target(target)
        self.weight = integer_array("weight", weight, 2, *weight_range(arch.weight_bits))
        self.rows, self.channels = self.weight.shape
        self.bias = integer_array("bias", bias, 1)
        if self.bias.shape != (self.channels,):
            raise UserError(f"bias: must have one element per output channel ({self.channels}), "
                            f"not {len(self.bias)}")
        r = self.requantizer = check_requantizer(requantizer, self.channels)
        check_int("adc_shift", adc_shift, 0)
        self.params = params
        self.row_slices = tile_slices(self.rows, arch.rows)
        self.col_slices = tile_slices(self.channels, arch.cols)
        # row tiles built per column tile: those with a weight, or the first when all are zero
        built = [[t for t, rs in enumerate(self.row_slices) if self.weight[rs, cs].any()] or [0]
                 for cs in self.col_slices]
        self.accumulators = [
            AdcAccumulator(self.bias[cs], r.select(cs), row_tiles=len(rows), params=params)
            for cs, rows in zip(self.col_slices, built)]
        self.tiles = [[CrossbarTile(self.weight[rs, cs], adc_shift=adc_shift, params=params,
                                    target=target) if t in rows else None
                       for cs, rows in zip(self.col_slices, built)]
                      for t, rs in enumerate(self.row_slices)]
        first = self.tiles[built[0][0]][0]
        self.interval = first.interval
        self.latency = first.latency + self.accumulators[0].latency
        super().__init__({
            "i": In(vector_stream(self.rows, arch.act_bits)),
            "o": Out(vector_stream(self.channels, r.bits, r.signed)),
        })

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        bits = self.params.act_bits

        # Fork: every tile takes its row slice of each window exactly once.
        taken_all = 1
        for t, rs in enumerate(self.row_slices):
            for u, tile in enumerate(self.tiles[t]):
                if tile is None:
                    continue
                m.submodules[f"tile_{t}_{u}"] = tile
                taken = Signal(name=f"taken_{t}_{u}")
                m.d.comb += [
                    tile.i.valid.eq(i.valid & ~taken),
                    tile.i.payload.data.eq(i.payload.data.as_value()[rs.start * bits:rs.stop * bits]),
                    tile.i.payload.last.eq(i.payload.last),
                ]
                with m.If(i.valid & i.ready):
                    m.d.sync += taken.eq(0)
                with m.Elif(tile.i.valid & tile.i.ready):
                    m.d.sync += taken.eq(1)
                taken_all &= taken | tile.i.ready
        m.d.comb += i.ready.eq(taken_all)

        # Accumulators, and the concatenation of the column tiles into one output pixel.
        valid_all = 1
        for u, (accumulator, cs) in enumerate(zip(self.accumulators, self.col_slices)):
            m.submodules[f"accumulator_{u}"] = accumulator
            tiles = [row[u] for row in self.tiles if row[u] is not None]
            for k, tile in enumerate(tiles):
                wiring.connect(m, tile.o, accumulator.i[k])
            m.d.comb += [o.payload.data[c].eq(accumulator.o.payload.data[c - cs.start])
                         for c in range(cs.start, cs.stop)]
            valid_all &= accumulator.o.valid
        m.d.comb += [o.valid.eq(valid_all), o.payload.last.eq(self.accumulators[0].o.payload.last)]
        m.d.comb += [accumulator.o.ready.eq(o.valid & o.ready) for accumulator in self.accumulators]
        return m
