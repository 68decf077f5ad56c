"""The RTL factories the layer kinds name (`imcflow.sw.ops.Op.rtl`): each builds the Amaranth
component of one pipeline stage of `imcflow.gen.accelerator.Accelerator`.

Every factory is ``factory(l, q, sources, arch, target)``: the stage's
`~imcflow.sw.mapper.LayerMapping` ``l`` (window buffer, replication, input shape), its quantized
layer ``q``, the `~imcflow.hw.streams.VectorLayout` of each input stream, the `Arch` and the
crossbar flavour.
"""

from __future__ import annotations

from amaranth.hdl import Shape

from imcflow.gen.accelerator import CrossbarStage
from imcflow.hw.pool import AvgPool, GlobalAvgPool, MaxPool
from imcflow.hw.residual import Join
from imcflow.sw.arith import Requantizer

__all__ = ["crossbar_stage", "max_pool_stage", "avg_pool_stage", "global_avg_pool_stage",
           "join_stage"]


def crossbar_stage(l, q, sources, arch, target):
    """A `~imcflow.gen.accelerator.CrossbarStage` (every crossbar kind)."""
    arch = arch.replace(row_folds=l.row_folds)       # more with slack_folds
    return CrossbarStage(q, l.geometry, arch, strategy=l.buffer, replication=l.replication,
                         target=target, window_passes=l.window_passes)


def max_pool_stage(l, q, sources, arch, target):
    (src,) = sources
    return MaxPool(l.geometry, src.bits, signed=src.signed, strategy=l.buffer)


def avg_pool_stage(l, q, sources, arch, target):
    (src,) = sources
    return AvgPool(l.geometry, src.bits, Requantizer(q.mult, q.shift, arch.act_bits, q.signed),
                   signed=src.signed, strategy=l.buffer)


def global_avg_pool_stage(l, q, sources, arch, target):
    s, (src,) = l.in_shape, sources
    return GlobalAvgPool(s.h, s.w, s.c, src.bits,
                         Requantizer(q.mult, q.shift, arch.act_bits, q.signed), signed=src.signed,
                         passes=l.requant_passes)


def join_stage(l, q, sources, arch, target):
    a, b = (Shape(x.bits, x.signed) for x in sources)
    return Join(l.in_shape.c, a, b,
                Requantizer((q.mult_a, q.mult_b), q.shift, arch.act_bits, q.signed),
                passes=l.requant_passes)
