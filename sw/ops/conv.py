"""Convolution: ``k x k`` windows of the input map onto a crossbar of ``k*k*C_in`` rows and
``C_out`` columns (the weight ``(k, k, C_in, C_out)``, HWIO, reshaped in im2col row order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from imcflow.sw.golden import conv_output_size
from imcflow.sw.ops.base import (MAX_CHANNELS, Layer, Shape, check_parameters, check_range, register,
                                 sliding)
from imcflow.sw.ops.crossbar import CrossbarOp, QCrossbar

__all__ = ["Conv2d", "QConv", "ConvOp", "WINDOW_KEYS"]

#: TOML keys of a windowed layer (conv and pooling) besides its own
WINDOW_KEYS = {"input": (str, False), "kernel": (int, True), "stride": (int, False),
               "padding": (int, False)}


@dataclass(eq=False)
class Conv2d(Layer):
    input: str = ""
    out_channels: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    weight: np.ndarray | None = field(default=None, repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    kind: ClassVar[str] = "conv"

    def check(self):
        check_range(self.name, "out_channels", self.out_channels, maximum=MAX_CHANNELS)
        check_range(self.name, "kernel", self.kernel)
        check_range(self.name, "stride", self.stride)
        check_range(self.name, "padding", self.padding, minimum=0)
        if self.padding >= self.kernel:
            raise self.error(f"padding {self.padding} must be smaller than kernel {self.kernel}")

    def infer(self, shapes):
        (s,) = shapes
        k, p = self.kernel, self.padding
        if s.h + 2 * p < k or s.w + 2 * p < k:
            raise self.error(f"kernel {k} with padding {p} does not fit the {s} input")
        if self.weight is not None:
            expect = self.op.weight_shape(self, s)
            if tuple(np.shape(self.weight)) != expect:
                raise self.error(f"weight shape {tuple(np.shape(self.weight))} does not match "
                                 f"{self.op.weight_axes} = {expect} for the {s} input")
        if self.bias is not None and tuple(np.shape(self.bias)) != (self.out_channels,):
            raise self.error(f"bias shape {tuple(np.shape(self.bias))} is not ({self.out_channels},)")
        check_parameters(self, self.op.fan_in(self, s), self.out_channels)
        return Shape(conv_output_size(s.h, k, self.stride, p), conv_output_size(s.w, k, self.stride, p),
                     self.out_channels)


@dataclass(eq=False)
class QConv(QCrossbar):
    kind: ClassVar[str] = "conv"


@register
class ConvOp(CrossbarOp):
    kind = "conv"
    layer = Conv2d
    qlayer = QConv
    toml_keys = {"input": (str, False), "out_channels": (int, True), "kernel": (int, True),
                 "stride": (int, False), "padding": (int, False)}
    onnx_ops = ("Conv",)
    #: how `weight_shape` reads, for errors
    weight_axes = "(k, k, C_in, C_out)"
    #: how the ONNX weight reads, for errors
    onnx_weight_axes = "(M, C, kH, kW)"

    def weight_shape(self, layer, in_shape):
        return (layer.kernel, layer.kernel, in_shape.c, layer.out_channels)

    def fan_in(self, layer, in_shape):
        return layer.kernel ** 2 * in_shape.c

    def geometry(self, layer, net):
        return net.shapes[layer.input], layer.kernel, layer.stride, layer.padding

    def window(self, layer):
        return layer.kernel, layer.stride, layer.padding

    def float_forward(self, layer, xs):
        win = sliding(xs[0], layer.kernel, layer.stride, layer.padding)
        y = np.tensordot(win, np.asarray(layer.weight, np.float64), axes=([3, 4, 5], [2, 0, 1]))
        return y + (0.0 if layer.bias is None else layer.bias)

    def onnx_accepts(self, imp, node):
        return node.attrs.get("group", 1) == 1

    def onnx(self, imp, node):
        """A Conv node of this kind's ``group`` (`onnx_accepts`: 1 here, more for the grouped
        conv, which imports its nodes through this method too)."""
        a = node.allow("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
        groups = a.get("group", 1)
        x = imp.map_input(node)
        w, b = imp.param(node, 1), imp.param(node, 2, optional=True)
        if w.shape is None or len(w.shape) != 4:
            raise node.error(f"weight {node.inputs[1]!r} needs a known {self.onnx_weight_axes} "
                             f"shape")
        out, cin = w.shape[:2]
        k, s, p = imp.window(node, x, w.shape[2:])
        if cin * groups != x.shape[0]:
            per_group = f" per group, {groups} groups: {cin * groups}" if groups != 1 else ""
            raise node.error(f"weight has {cin} input channels{per_group}, the input "
                             f"{x.shape[0]}")
        weight = bias = None
        if w.value is not None and (b is None or b.value is not None):
            weight = np.array(w.value.transpose(2, 3, 1, 0), dtype=np.float64)
            bias = None if b is None else np.array(b.value, dtype=np.float64)
        layer = imp.add(self.layer(node.name, x.layer, out, kernel=k, stride=s, padding=p,
                                   weight=weight, bias=bias,
                                   **({"groups": groups} if groups != 1 else {})))
        imp.record_codes(node, layer, w, 0)
        imp.emit(node, layer, fold=layer)
