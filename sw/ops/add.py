"""Residual add: the element-wise sum of two maps of the same shape, each rescaled to the output
scale (a ``join`` stage; the input that arrives early waits in a skip FIFO)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.golden import join
from imcflow.sw.ops.base import Layer, Op, QLayer, multipliers, register

__all__ = ["Add", "QAdd", "AddOp"]


@dataclass(eq=False)
class Add(Layer):
    """Residual join: element-wise sum of two maps of the same shape."""

    a: str = ""
    b: str = ""
    kind: ClassVar[str] = "add"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.a, self.b)

    def infer(self, shapes):
        sa, sb = shapes
        if sa != sb:
            raise self.error(f"inputs {self.a!r} ({sa}) and {self.b!r} ({sb}) differ in shape")
        return sa


@dataclass(eq=False)
class QAdd(QLayer):
    """Residual join: ``saturate(round_shift(a*mult_a + b*mult_b, shift))`` (`golden.join`)."""

    mult_a: int = 0
    mult_b: int = 0
    shift: int = 0
    kind: ClassVar[str] = "add"


@register
class AddOp(Op):
    kind = "add"
    layer = Add
    qlayer = QAdd
    role = "join"
    toml_keys = {"inputs": (list, True)}
    onnx_ops = ("Add",)
    rtl = "imcflow.gen.stages:join_stage"
    requantizing = True

    def from_toml(self, name, args, where):
        refs = args["inputs"]
        if len(refs) != 2:
            raise UserError(f"{where}.inputs: an add needs exactly two inputs, not {refs!r}")
        return Add(name, a=refs[0], b=refs[1])

    def signed(self, layer, src, feeds_activations):
        return not feeds_activations

    def quantize(self, layer, ctx):
        scale = ctx.scales[layer.name]
        (mult_a, mult_b), shift = multipliers(layer, np.array(ctx.scales_in(layer)) / scale)
        return QAdd(**ctx.common(layer), scale=scale, mult_a=int(mult_a), mult_b=int(mult_b),
                    shift=shift)

    def forward(self, q, inputs, arch):
        a, b = inputs
        return join(a, b, q.mult_a, q.mult_b, q.shift, act_bits=arch.act_bits, signed=q.signed)

    def float_forward(self, layer, xs):
        return xs[0] + xs[1]

    def onnx(self, imp, node):
        node.allow()
        a, b = imp.operand(node, 0), imp.operand(node, 1)
        if imp.is_map(a) and imp.is_map(b):
            if a.shape != b.shape or a.chw != b.chw:
                raise node.error(f"inputs of shapes {a.shape} and {b.shape}: only the element-wise "
                                 f"sum of two equal shapes is supported (a residual join)")
            layer = imp.add(Add(node.name, a=a.layer, b=b.layer))
            imp.emit(node, layer, shape=a.shape, nonneg=a.nonneg and b.nonneg, chw=a.chw)
            return
        x, c = (a, b) if imp.is_map(a) else (b, a)
        if not imp.is_map(x):
            raise node.error("adding two constants is not supported")
        target, name = x.fold, node.inputs[0 if x is a else 1]
        if target is None or imp.uses[name] != 1:
            raise node.error("adding a constant is supported only as the bias of the Conv, Gemm or "
                             "MatMul whose output it reads (and that feeds nothing else)")
        cols = x.shape[0]
        per_channel = [(cols, 1, 1), (1, cols, 1, 1)] if len(x.shape) == 3 else [(cols,), (1, cols)]
        if c.shape is not None and math.prod(c.shape) != 1 and tuple(c.shape) not in per_channel:
            raise node.error(f"a bias of shape {c.shape} is not supported (one value per channel: "
                             f"{' or '.join(map(str, per_channel))}, or a scalar)")
        if target.weight is None or c.value is None:
            target.weight = target.bias = None
        else:
            bias = np.broadcast_to(np.array(c.value, dtype=np.float64).reshape(-1), (cols,))
            target.bias = bias + (0.0 if target.bias is None else target.bias)
        imp.set(node, imp.derive(x, nonneg=False))
