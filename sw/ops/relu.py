"""ReLU: fused into the layer producing its input, which then saturates to unsigned ``act_bits``
codes (the identity on codes; no hardware of its own)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from imcflow.sw.ops.base import Layer, Op, QLayer, register

__all__ = ["ReLU", "QReLU", "ReLUOp", "clip_bounds"]


@dataclass(eq=False)
class ReLU(Layer):
    input: str = ""
    kind: ClassVar[str] = "relu"

    def infer(self, shapes):
        return shapes[0]


@dataclass(eq=False)
class QReLU(QLayer):
    """A ReLU is the identity on codes: the layer producing its (unsigned) input saturates to
    ``[0, 2**act_bits - 1]``, which is the ReLU."""

    kind: ClassVar[str] = "relu"


@register
class ReLUOp(Op):
    kind = "relu"
    layer = ReLU
    qlayer = QReLU
    role = "fused"
    toml_keys = {"input": (str, False)}
    onnx_ops = ("Relu", "Clip")
    activation = True

    def signed(self, layer, src, feeds_activations):
        if src[0]:
            raise layer.error(f"input {layer.input!r} is a signed map that also feeds other layers "
                              f"or comes from no conv, dense, add or average pool; this ReLU cannot "
                              f"be fused and a standalone ReLU has no hardware")
        return False

    def float_forward(self, layer, xs):
        return np.maximum(xs[0], 0.0)

    def onnx_accepts(self, imp, node):
        return node.op == "Relu" or clip_bounds(imp, node)[1] in (None, math.inf)

    def onnx(self, imp, node):
        node.allow()
        if node.op == "Clip":
            low, high = clip_bounds(imp, node)
            if low != 0 or high not in (None, math.inf):
                raise node.error(f"Clip(min={low}, max={high}) is not supported (only "
                                 f"Clip(min=0) without a finite max, a ReLU: activations saturate at "
                                 f"their largest code, not at a given value)")
        imp.set(node, imp.relu(node, imp.value(node)))


def clip_bounds(imp, node) -> list:
    """``[min, max]`` of an ONNX Clip node (opset >= 11: constant inputs 1 and 2), None where a
    bound is absent or has no value."""
    bounds = [imp.param(node, i, optional=True) for i in (1, 2)]
    return [None if p is None or p.value is None else float(np.ravel(p.value)[0]) for p in bounds]
