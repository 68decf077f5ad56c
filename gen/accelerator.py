"""The whole accelerator: one layer-pipelined top from a quantized network and its mapping.

`Accelerator` composes the blocks of `imcflow.hw` along the stages of a
`~imcflow.sw.mapper.Mapping` (docs/generator.md)::

    i --> [input codes] --> FIFO --> conv: WindowSource --> CrossbarLayer (or r copies) --+
                                                                                          |
      +-- Fork --> FIFO --> ... main path ... --> FIFO --> Join.i_a --> Join --> FIFO --> ...
      +----------> SkipFifo(mapper's depth) -----------> Join.i_b
      ... --> GlobalAvgPool --> FIFO --> dense: WindowSource(1x1) --> CrossbarLayer --> o

- every crossbar stage (conv, dense) is a `~imcflow.hw.im2col.WindowSource` with the mapping's
  buffer strategy feeding a `~imcflow.hw.core.CrossbarLayer` (row and column tiles inside), or
  ``r`` copies of it (`~imcflow.gen.replication.ReplicatedLayer`); a dense layer after a flatten
  reads the ``H x H`` window of the map, one after global pooling the 1x1 window;
- pool stages are `~imcflow.hw.pool.MaxPool`, `~imcflow.hw.pool.AvgPool`,
  `~imcflow.hw.pool.GlobalAvgPool`; joins are `~imcflow.hw.residual.Join`;
- every link between stages has a `~imcflow.hw.fifo.PipelineFifo` of ``timing.fifo_depth``, except
  the skip input of a join, which has a `~imcflow.hw.residual.SkipFifo` of the mapper's depth
  (``LayerMapping.buffer_words``); a stage with several consumers feeds them through a chain of
  `~imcflow.hw.residual.Fork` s (each consumer takes a beat on its own);
- the input port feeds its FIFO directly, the output stage drives the output port directly: the
  pipeline the performance model (`imcflow.sw.perf`) describes, handshake for handshake.

`AxiStreamTop` is the Verilog top: the same accelerator with AXI4-Stream-style port names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from amaranth.hdl import Cat, Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from imcflow.gen.replication import ReplicatedLayer
from imcflow.hw.core import CrossbarLayer
from imcflow.hw.fifo import PipelineFifo
from imcflow.hw.im2col import WindowSource
from imcflow.hw.arith import requantize_sum
from imcflow.hw.lanes import LaneMap
from imcflow.hw.residual import Fork, SkipFifo
from imcflow.hw.streams import VectorLayout, vector_stream
from imcflow.sw.arith import Requantizer
from imcflow.sw.mapper import INPUT_BITS
from imcflow.sw.timing import BlockTiming

__all__ = ["Link", "CrossbarStage", "InputCodes", "Accelerator", "AxiStreamTop", "STATUS_SIGNALS"]

#: the four bits per link on the ``status`` port, least significant first
STATUS_SIGNALS = ("in_valid", "in_ready", "out_valid", "out_ready")


@dataclass(frozen=True)
class Link:
    """A stream from one stage to another, through a FIFO.

    Attributes
    ----------
    producer, consumer : str
        Stage names (the network input is the ``source`` stage).
    port : str
        The consumer's input port: ``i``, or ``i_a`` / ``i_b`` of a join.
    kind : str
        ``fifo`` (between stages) or ``skip`` (the skip FIFO of a join).
    depth : int
        FIFO depth in beats.
    """

    producer: str
    consumer: str
    port: str
    kind: str
    depth: int

    @property
    def name(self) -> str:
        return f"{self.producer}->{self.consumer}"


class CrossbarStage(wiring.Component):
    """A conv or dense layer: a `~imcflow.hw.im2col.WindowSource` and its crossbar copies.

    Parameters
    ----------
    q : QCrossbar
        The quantized layer (weights, requantization).
    geometry : WindowGeometry
        The windows it reads (`imcflow.sw.mapper.LayerMapping.geometry`).
    arch : Arch
    strategy : str
        Window buffer: ``line`` or ``frame``.
    replication : int
        Copies of the layer (1: one `~imcflow.hw.core.CrossbarLayer`).
    target : str
        The crossbar flavour (`~imcflow.hw.crossbar.TARGETS`): ``fpga`` (default) or ``sim``.
    window_passes : int
        Cycles the window source takes to read a window (`imcflow.sw.mapper.LayerMapping.
        window_passes`; 1 by default).

    Attributes
    ----------
    i : In(vector_stream(C_in, act_bits))
        Pixels in raster order.
    o : Out(vector_stream(C_out, act_bits, q.signed))
        Output pixels in raster order.
    window : WindowSource
    lanes : LaneMap or None
        The crossbar rows' selection of window lanes when ``q.lanes`` is given (combinational).
    layer : CrossbarLayer or ReplicatedLayer
    latency : int
        Handshake of the last pixel a window needs to the output pixel's ``valid``, when nothing
        stalls: ``window.latency + layer.latency``.
    interval : int
        Cycles between the windows one copy takes (the MVM interval).
    """

    def __init__(self, q, geometry, arch, *, strategy: str, replication: int,
                 target: str = "fpga", window_passes: int = 1):
        self.window = WindowSource(geometry, arch.act_bits, strategy=strategy,
                                   passes=window_passes)
        self.lanes = None if q.lanes is None else LaneMap(self.window.o.payload.shape(), q.lanes)
        args = (q.weight, q.bias, Requantizer(q.mult, q.shift, arch.act_bits, q.signed))
        kwargs = dict(adc_shift=q.adc_shift, params=arch.crossbar, target=target)
        self.layer = (CrossbarLayer(*args, **kwargs) if replication == 1 else
                      ReplicatedLayer(*args, **kwargs, copies=replication))
        self.latency = self.window.latency + self.layer.latency
        self.interval = self.layer.interval
        super().__init__({"i": In(self.window.i.signature.flip()),
                          "o": Out(self.layer.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self.window
        m.submodules.layer = self.layer
        wiring.connect(m, wiring.flipped(self.i), self.window.i)
        if self.lanes is None:
            wiring.connect(m, self.window.o, self.layer.i)
        else:
            m.submodules.lanes = self.lanes
            wiring.connect(m, self.window.o, self.lanes.i)
            wiring.connect(m, self.lanes.o, self.layer.i)
        wiring.connect(m, self.layer.o, wiring.flipped(self.o))
        return m


class InputCodes(wiring.Component):
    """8-bit input pixels to unsigned ``act_bits`` codes: ``saturate(round_shift(pixel, 8 -
    act_bits))`` per channel, as the golden model's input layer (`imcflow.sw.inference`).

    Attributes
    ----------
    i : In(vector_stream(c, 8))
    o : Out(vector_stream(c, act_bits))
    latency : int
        0: combinational.
    """

    latency = 0

    def __init__(self, c: int, act_bits: int):
        self.shift, self.act_bits = INPUT_BITS - act_bits, act_bits
        super().__init__({"i": In(vector_stream(c, INPUT_BITS)),
                          "o": Out(vector_stream(c, act_bits))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready), o.payload.last.eq(i.payload.last)]
        m.d.comb += [o.payload.data[c].eq(requantize_sum(i.payload.data[c], self.shift,
                                                         self.act_bits, False))
                     for c in range(len(o.payload.data))]
        return m


def _check(mapping, qnet) -> None:
    """Raise `ValueError` unless ``mapping`` maps ``qnet`` with the RTL blocks' timing."""
    if mapping.arch != qnet.arch:
        raise ValueError(f"The mapping is for {mapping.arch}, the network is quantized for "
                         f"{qnet.arch}")
    rtl = replace(BlockTiming(), fifo_depth=mapping.timing.fifo_depth)
    if mapping.timing != rtl:
        raise ValueError(f"Timing must be the RTL blocks' {rtl}, not {mapping.timing}")
    if [l.name for l in mapping.layers] != [q.name for q in qnet.layers]:
        raise ValueError(f"The mapping of {mapping.network!r} has other layers than {qnet.name!r}")
    for l in mapping.stages:
        q = qnet[l.name]
        if l.role == "crossbar" and (l.in_shape, l.kernel, l.stride, l.padding) != (
                q.in_shape, q.kernel, q.stride, q.padding):
            raise ValueError(f"Layer {l.name!r}: the mapping's window geometry differs from the "
                             f"quantized layer's")


class Accelerator(wiring.Component):
    """A layer-pipelined IMC accelerator for a quantized network: one stage per layer of a
    `~imcflow.sw.mapper.Mapping`, linked by FIFOs (see the module docstring).

    It computes `imcflow.sw.inference.run` bit for bit; the performance model
    (`imcflow.sw.perf.simulate` of ``mapping``) predicts the cycle of each of its handshakes.

    Parameters
    ----------
    qnet : QNetwork
        The quantized network (integer parameters, ``qnet.arch``).
    mapping : Mapping
        ``map_network(qnet.network, qnet.arch, ...)``: replication, buffer strategies, skip FIFO
        depths (``buffer_words`` of each join, which may be overridden). Its ``timing`` must be
        the RTL blocks' (`~imcflow.sw.timing.BlockTiming` defaults; ``fifo_depth`` may differ).
    target : str
        The crossbar flavour (`~imcflow.hw.crossbar.TARGETS`): ``fpga`` (default), the
        multiplier-free MAC array, which every simulator and synthesizer takes, or ``sim``, the
        behavioral model of the analog crossbar for Verilog simulators (fast under Verilator; the
        Amaranth simulator cannot run it). Both compute and time every handshake alike
        (docs/crossbar.md). `imcflow gen` defaults to ``sim``.

    Attributes
    ----------
    i : In(vector_stream(C_in, 8))
        Pixels of the 8-bit input images in raster order, images back to back, ``last`` on the
        last pixel of each image.
    o : Out(vector_stream(C_out, act_bits, signed))
        The output layer's pixels in raster order (for a classifier: one beat of logits per
        image), ``last`` on each image's last.
    status : Out(4 * len(links))
        Handshake activity of every link, for testbenches and debug (bits `STATUS_SIGNALS` of
        link ``n`` at ``4*n``: ``valid`` and ``ready`` at the FIFO's input and at its output).
    stages : dict of str to Component
        The block of every stage but the source, in network order.
    links : list of Link
        Every FIFO between stages, in the order of their status bits.
    fifos : list of PipelineFifo or SkipFifo
        One per link.
    source, output : str
        The stage the input port feeds (the network's input) and the stage driving ``o``.
    layouts : dict of str to VectorLayout
        The payload of every stage's output stream.

    Raises
    ------
    ValueError
        If ``mapping`` is not a mapping of ``qnet`` with the RTL blocks' timing.
    """

    def __init__(self, qnet, mapping, *, target: str = "fpga"):
        _check(mapping, qnet)
        self.target = target
        arch = qnet.arch
        self.qnet, self.mapping, self.output = qnet, mapping, mapping.output
        source = next(l for l in mapping.stages if l.role == "source")
        self.source, in_shape = source.name, source.out_shape
        self.layouts = layouts = {source.name: VectorLayout(in_shape.c, arch.act_bits)}
        self.codes = InputCodes(in_shape.c, arch.act_bits) if arch.act_bits != INPUT_BITS else None
        self.stages: dict[str, wiring.Component] = {}
        self.links: list[Link] = []
        for l in mapping.stages:
            if l.role == "source":
                continue
            block = self.stages[l.name] = self._block(l, qnet[l.name],
                                                      [layouts[p] for p in l.inputs], arch, target)
            layouts[l.name] = block.o.payload.shape()
            skip = l.inputs.index(l.skip_input) if l.role == "join" else None
            for index, p in enumerate(l.inputs):
                port = ("i_a", "i_b")[index] if l.role == "join" else "i"
                self.links.append(Link(p, l.name, port, "skip", l.buffer_words) if index == skip
                                  else Link(p, l.name, port, "fifo", mapping.timing.fifo_depth))
        self.fifos = [(SkipFifo if link.kind == "skip" else PipelineFifo)(layouts[link.producer],
                                                                          link.depth)
                      for link in self.links]
        super().__init__({
            "i": In(vector_stream(in_shape.c, INPUT_BITS)),
            "o": Out(stream.Signature(layouts[self.output])),
            "status": Out(len(STATUS_SIGNALS) * len(self.links)),
        })

    @staticmethod
    def _block(l, q, srcs, arch, target):
        # the layer kind's RTL factory (`imcflow.sw.ops.Op.rtl`, in `imcflow.gen.stages`)
        return q.op.rtl_factory()(l, q, srcs, arch, target)

    def elaborate(self, platform):
        m = Module()
        outputs = {name: block.o for name, block in self.stages.items()}
        if self.codes is None:
            outputs[self.source] = wiring.flipped(self.i)
        else:
            m.submodules.input_codes = self.codes
            wiring.connect(m, wiring.flipped(self.i), self.codes.i)
            outputs[self.source] = self.codes.o
        for name, block in self.stages.items():
            m.submodules[name] = block
        status = []
        for link, fifo in zip(self.links, self.fifos):
            m.submodules[f"{link.kind}_{link.producer}_{link.consumer}"] = fifo
            wiring.connect(m, fifo.o, getattr(self.stages[link.consumer], link.port))
            status += [fifo.i.valid, fifo.i.ready, fifo.o.valid, fifo.o.ready]
        m.d.comb += self.status.eq(Cat(*status))
        # Each producer feeds its consumers' FIFOs, through a chain of forks when there are several.
        for producer, stream_ in outputs.items():
            fifos = [f for link, f in zip(self.links, self.fifos) if link.producer == producer]
            if producer == self.output:
                wiring.connect(m, stream_, wiring.flipped(self.o))
                continue
            for n, fifo in enumerate(fifos[:-1]):
                fork = m.submodules[f"fork_{producer}_{n}"] = Fork(self.layouts[producer])
                wiring.connect(m, stream_, fork.i)
                wiring.connect(m, fork.o_main, fifo.i)
                stream_ = fork.o_skip
            wiring.connect(m, stream_, fifos[-1].i)
        return m


class AxiStreamTop(wiring.Component):
    """The Verilog top: an `Accelerator` with AXI4-Stream-style ports and byte-wide lanes.

    Ports (Verilog names; ``clk`` and ``rst``, synchronous and active high, are added by Amaranth):

    - ``s_axis_tdata`` (``8 * C_in`` bits, channel ``c`` in bits ``[8c, 8c+8)``),
      ``s_axis_tvalid``, ``s_axis_tready``, ``s_axis_tlast``: input pixels in raster order,
      ``tlast`` on each image's last pixel;
    - ``m_axis_tdata`` (``8 * C_out`` bits, lane ``k`` in bits ``[8k, 8k+8)``, each
      ``act_bits``-bit value sign- or zero-extended to a byte), ``m_axis_tvalid``,
      ``m_axis_tready``, ``m_axis_tlast``: the output (one beat of logits per image for a
      classifier), ``tlast`` on each image's last beat;
    - ``status``: the core's link activity (`Accelerator`);
    - with ``taps``, per stage of the core (``core.stages``, in network order):
      ``tap_<stage>_handshake`` (the stage's output ``valid & ready``, before any fork or FIFO)
      and ``tap_<stage>_payload`` (its output payload, ``core.layouts[stage]``: the lanes at
      their own width, ``last`` on top). Debug ports for simulation (`imcflow.verif.engine`
      records every handshake of every stage); they add no logic.

    Parameters
    ----------
    core : Accelerator
    taps : bool
        Add the ``tap_*`` ports.

    Attributes
    ----------
    core : Accelerator
    in_layout, out_layout : VectorLayout
        The byte-lane layouts of ``tdata`` (with ``tlast`` on top), as testbenches pack them.
    taps : dict of str to str
        Each tapped stage's port prefix (``tap_<stage>`` with the stage's name made an
        identifier), in network order (empty without ``taps``).
    """

    def __init__(self, core: Accelerator, *, taps: bool = False):
        self.core = core
        i, o = core.i.payload.shape(), core.o.payload.shape()
        self.in_layout = VectorLayout(i.lanes, 8)
        self.out_layout = VectorLayout(o.lanes, 8, o.signed)
        self.taps: dict[str, str] = {}
        for stage in core.stages if taps else ():
            prefix = "tap_" + re.sub(r"\W", "_", stage)
            while prefix in self.taps.values():
                prefix += "_"
            self.taps[stage] = prefix
        super().__init__({
            "s_axis_tdata": In(8 * i.lanes), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(8 * o.lanes), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
            "status": Out(len(core.status)),
            **{f"{prefix}_{port}": Out(1 if port == "handshake" else
                                       Shape.cast(core.layouts[stage]).width)
               for stage, prefix in self.taps.items() for port in ("handshake", "payload")},
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        logits = []
        for k, lane in enumerate(core.o.payload.data):
            byte = Signal(8, name=f"lane_{k}")
            m.d.comb += byte.eq(lane)  # sign- or zero-extended, as the lane's shape says
            logits.append(byte)
        m.d.comb += [
            core.i.payload.data.as_value().eq(self.s_axis_tdata),
            core.i.payload.last.eq(self.s_axis_tlast),
            core.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(core.i.ready),
            self.m_axis_tdata.eq(Cat(*logits)),
            self.m_axis_tlast.eq(core.o.payload.last),
            self.m_axis_tvalid.eq(core.o.valid),
            core.o.ready.eq(self.m_axis_tready),
            self.status.eq(core.status),
        ]
        for stage, prefix in self.taps.items():
            o = core.stages[stage].o
            m.d.comb += [getattr(self, f"{prefix}_handshake").eq(o.valid & o.ready),
                         getattr(self, f"{prefix}_payload").eq(o.payload)]
        return m

