"""Flatten: an ``H x H x C`` map as a ``1 x 1 x H*H*C`` vector in raster order, channels last.
Fused: the pixel stream is unchanged and the next dense layer reads it as one ``H x H`` window."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from imcflow.sw.ops.base import Layer, Op, QLayer, Shape, register

__all__ = ["Flatten", "QFlatten", "FlattenOp"]


@dataclass(eq=False)
class Flatten(Layer):
    input: str = ""
    kind: ClassVar[str] = "flatten"

    def infer(self, shapes):
        (s,) = shapes
        if s.h != s.w:
            raise self.error(f"only square maps can be flattened (mapped as an HxH kernel), not {s}")
        return Shape(1, 1, s.size)


@dataclass(eq=False)
class QFlatten(QLayer):
    """Flatten: codes and scale pass through (the next dense layer reads the map as a window)."""

    kind: ClassVar[str] = "flatten"


@register
class FlattenOp(Op):
    kind = "flatten"
    layer = Flatten
    qlayer = QFlatten
    role = "fused"
    toml_keys = {"input": (str, False)}
    onnx_ops = ("Flatten", "Reshape")
    passthrough = True

    def forward(self, q, inputs, arch):
        x = inputs[0]
        return x.reshape(len(x), 1, 1, -1)

    def float_forward(self, layer, xs):
        return xs[0].reshape(len(xs[0]), 1, 1, -1)

    def onnx(self, imp, node):
        if node.op == "Flatten":
            a = node.allow("axis")
            x = imp.value(node)
            axis = a.get("axis", 1)
            if axis % (len(x.shape) + 1) != 1:
                raise node.error(f"axis={axis} is not supported (axis=1: (batch, features))")
        else:
            node.allow("allowzero")
            x, shape = imp.value(node), imp.param(node, 1)
            if shape.value is None:
                raise node.error("the target shape must be a constant with a value")
            target, size = [int(v) for v in np.ravel(shape.value)], math.prod(x.shape)
            if not (len(target) == 2 and ((target[0] in (0, 1, -1) and target[1] == size)
                                          or (target[0] in (0, 1) and target[1] == -1))):
                raise node.error(f"target shape {target} is not supported (only (batch, features) "
                                 f"= (N, {size}), a flatten)")
        if len(x.shape) == 1:
            imp.set(node, x)
            return
        c, h, w = x.shape
        layer = imp.add(Flatten(node.name, x.layer))
        imp.emit(node, layer, shape=(c * h * w,), nonneg=x.nonneg,
                 chw=(c, h, w) if h * w > 1 else None)
