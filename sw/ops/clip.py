"""Clipped ReLU, ``Clip(min=0, max)`` (ReLU6 with ``max = 6``): a saturating activation.

Like a ReLU it fuses into the layer producing its input, which saturates to unsigned
``act_bits`` codes. The clip at ``max`` is that saturation: calibration
(`imcflow.sw.quant.calibrate_scales`) sets the producer's scale from ``min(max(y, 0), max)``, so
its largest code stands for at most ``max`` and no code above it exists (docs/arithmetic.md,
"Clipped ReLU"). A given scale (a QDQ model) under which ``max`` falls below the largest code
would need a clamp the hardware does not have and is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.arith import act_range
from imcflow.sw.ops.base import Layer, Op, QLayer, register
from imcflow.sw.ops.relu import clip_bounds

__all__ = ["Clip", "QClip", "ClipOp"]


@dataclass(eq=False)
class Clip(Layer):
    """``min(max(x, 0), max)``."""

    input: str = ""
    max: float = 6.0
    kind: ClassVar[str] = "clip"

    def check(self):
        if isinstance(self.max, bool) or not isinstance(self.max, (int, float, np.floating)) \
                or not (math.isfinite(self.max) and self.max > 0):
            raise self.error(f"max must be a finite number > 0, not {self.max!r}")

    def infer(self, shapes):
        return shapes[0]


@dataclass(eq=False)
class QClip(QLayer):
    """A clipped ReLU is the identity on codes: the producer's unsigned saturation at the largest
    code, which stands for at most ``max``."""

    max: float = 6.0
    kind: ClassVar[str] = "clip"


@register
class ClipOp(Op):
    kind = "clip"
    layer = Clip
    qlayer = QClip
    role = "fused"
    toml_keys = {"input": (str, False), "max": (float, True)}
    onnx_ops = ("Clip",)
    activation = True

    def signed(self, layer, src, feeds_activations):
        if src[0]:
            raise layer.error(f"input {layer.input!r} is a signed map that also feeds other layers "
                              f"or comes from no conv, dense, add or average pool; this clip cannot "
                              f"be fused and a standalone clip has no hardware")
        return False

    def ceiling(self, layer):
        return float(layer.max)

    def quantize(self, layer, ctx):
        scale = ctx.scales_in(layer)[0]
        top = act_range(ctx.arch.act_bits, False)[1]
        if round(layer.max / scale) < top:
            raise UserError(f"layer {layer.name!r} (clip): max {layer.max:g} is code "
                            f"{round(layer.max / scale)} at the scale {scale:.6g} of its input; "
                            f"activations saturate at their largest code {top} only (the input "
                            f"needs a scale >= max / {top})")
        return QClip(**ctx.common(layer), scale=scale, max=float(layer.max))

    def float_forward(self, layer, xs):
        return np.clip(xs[0], 0.0, layer.max)

    def onnx_accepts(self, imp, node):
        high = clip_bounds(imp, node)[1]
        return high is not None and math.isfinite(high)

    def onnx(self, imp, node):
        node.allow()
        low, high = clip_bounds(imp, node)
        if low != 0:
            raise node.error(f"Clip(min={low}, max={high}) is not supported (min=0 only: a clipped "
                             f"ReLU)")
        x = imp.value(node)
        layer = imp.add(Clip(node.name, x.layer, max=high))
        imp.set(node, imp.derive(x, layer=layer.name, nonneg=True, fold=None, quant=None))
