"""Fully connected layer: a ``1 x 1 x C`` vector onto a crossbar of ``in_features`` rows and
``out_features`` columns. After a flatten of an ``H x W x C`` map the input index is
``(y * W + x) * C + c`` (raster order, channels last), so flatten + dense is an ``H x H``
convolution without padding that reads the map's pixel stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from imcflow.sw.ops.base import MAX_CHANNELS, Layer, Shape, check_parameters, check_range, register, stream_shape
from imcflow.sw.ops.crossbar import CrossbarOp, QCrossbar

__all__ = ["Dense", "QDense", "DenseOp"]


@dataclass(eq=False)
class Dense(Layer):
    input: str = ""
    out_features: int = 0
    weight: np.ndarray | None = field(default=None, repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    kind: ClassVar[str] = "dense"

    def check(self):
        check_range(self.name, "out_features", self.out_features, maximum=MAX_CHANNELS)

    def infer(self, shapes):
        (s,) = shapes
        if (s.h, s.w) != (1, 1):
            raise self.error(f"input is a {s} map; a dense layer needs a 1x1xC vector "
                             f"(add a flatten or global_avg_pool layer before it)")
        if self.weight is not None and tuple(np.shape(self.weight)) != (s.c, self.out_features):
            raise self.error(f"weight shape {tuple(np.shape(self.weight))} does not match "
                             f"(in, out) = {(s.c, self.out_features)}")
        if self.bias is not None and tuple(np.shape(self.bias)) != (self.out_features,):
            raise self.error(f"bias shape {tuple(np.shape(self.bias))} is not ({self.out_features},)")
        check_parameters(self, s.c, self.out_features)
        return Shape(1, 1, self.out_features)


@dataclass(eq=False)
class QDense(QCrossbar):
    kind: ClassVar[str] = "dense"


@register
class DenseOp(CrossbarOp):
    kind = "dense"
    layer = Dense
    qlayer = QDense
    toml_keys = {"input": (str, False), "out_features": (int, True)}
    onnx_ops = ("Gemm", "MatMul")

    def weight_shape(self, layer, in_shape):
        return (in_shape.size, layer.out_features)

    def fan_in(self, layer, in_shape):
        return in_shape.size

    def geometry(self, layer, net):
        in_shape = stream_shape(net, layer.input)
        return in_shape, in_shape.h, 1, 0

    def window(self, layer):
        return 1, 1, 0

    def float_forward(self, layer, xs):
        x = xs[0].reshape(len(xs[0]), -1)
        y = x @ np.asarray(layer.weight, np.float64) + (0.0 if layer.bias is None else layer.bias)
        return y.reshape(len(x), 1, 1, -1)

    def onnx(self, imp, node):
        if node.op == "MatMul":
            node.allow()
            self.onnx_dense(imp, node, imp.value(node), imp.param(node, 1), trans=False)
            return
        a = node.allow("alpha", "beta", "transA", "transB")
        if a.get("transA", 0):
            raise node.error("transA=1 is not supported (the input is (batch, features))")
        x, b, c = imp.value(node), imp.param(node, 1), imp.param(node, 2, optional=True)
        self.onnx_dense(imp, node, x, b, bool(a.get("transB", 0)), a.get("alpha", 1.0), c,
                        a.get("beta", 1.0))

    def onnx_dense(self, imp, node, x, b, trans: bool, alpha=1.0, c=None, beta=1.0) -> None:
        if len(x.shape) != 1:
            raise node.error(f"input {node.inputs[0]!r} is a {'x'.join(map(str, x.shape))} map; "
                             f"{node.op} needs a (batch, features) vector (add a Flatten)")
        if b.shape is None or len(b.shape) != 2:
            raise node.error(f"weight {node.inputs[1]!r} needs a known 2-D shape")
        rows, cols = b.shape[::-1] if trans else b.shape
        if rows != x.shape[0]:
            raise node.error(f"weight has {rows} input features, the input {x.shape[0]}")
        if c is not None and c.shape not in (None, (), (1,), (cols,), (1, cols), (1, 1)):
            raise node.error(f"bias of shape {c.shape} is not supported (one value per output feature)")
        weight = bias = None
        if b.value is not None and (c is None or c.value is not None):
            weight = alpha * np.array(b.value.T if trans else b.value, dtype=np.float64)
            if x.chw is not None:  # ONNX rows are (c, y, x) of the flattened map, the IR's (y, x, c)
                ch, h, w = x.chw
                weight = weight.reshape(ch, h, w, cols).transpose(1, 2, 0, 3).reshape(rows, cols)
            if c is not None:
                bias = np.broadcast_to(beta * np.array(c.value, dtype=np.float64).reshape(-1),
                                       (cols,)).copy()
        layer = imp.add(Dense(node.name, x.layer, cols, weight=weight, bias=bias))
        imp.record_codes(node, layer, b, 0 if trans else 1, alpha)
        imp.emit(node, layer, shape=(cols,), fold=layer)
