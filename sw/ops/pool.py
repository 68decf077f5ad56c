"""Pooling: max and average pooling over ``k x k`` windows (``pool`` stages with a window buffer)
and global average pooling (a ``gap`` stage summing each channel over the image)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from imcflow.sw.arith import act_range
from imcflow.sw.golden import avg_pool, conv_output_size, global_avg_pool, max_pool
from imcflow.sw.ops.base import Layer, Op, QLayer, Shape, check_range, multipliers, register, sliding

__all__ = ["MaxPool", "AvgPool", "GlobalAvgPool", "QMaxPool", "QAvgPool", "QGlobalAvgPool",
           "MaxPoolOp", "AvgPoolOp", "GlobalAvgPoolOp"]


@dataclass(eq=False)
class MaxPool(Layer):
    input: str = ""
    kernel: int = 2
    stride: int | None = None
    padding: int = 0
    kind: ClassVar[str] = "maxpool"

    def __post_init__(self):
        if self.stride is None:
            self.stride = self.kernel

    def check(self):
        check_range(self.name, "kernel", self.kernel)
        check_range(self.name, "stride", self.stride)
        check_range(self.name, "padding", self.padding, minimum=0)
        if self.padding >= self.kernel:
            raise self.error(f"padding {self.padding} must be smaller than kernel {self.kernel}")

    def infer(self, shapes):
        (s,) = shapes
        k, st, p = self.kernel, self.stride, self.padding
        if s.h + 2 * p < k or s.w + 2 * p < k:
            raise self.error(f"kernel {k} does not fit the {s} input")
        return Shape(conv_output_size(s.h, k, st, p), conv_output_size(s.w, k, st, p), s.c)


@dataclass(eq=False)
class AvgPool(Layer):
    input: str = ""
    kernel: int = 2
    stride: int | None = None
    kind: ClassVar[str] = "avgpool"

    def __post_init__(self):
        if self.stride is None:
            self.stride = self.kernel

    def check(self):
        check_range(self.name, "kernel", self.kernel)
        check_range(self.name, "stride", self.stride)

    def infer(self, shapes):
        (s,) = shapes
        k, st = self.kernel, self.stride
        if s.h < k or s.w < k:
            raise self.error(f"kernel {k} does not fit the {s} input")
        return Shape(conv_output_size(s.h, k, st, 0), conv_output_size(s.w, k, st, 0), s.c)


@dataclass(eq=False)
class GlobalAvgPool(Layer):
    input: str = ""
    kind: ClassVar[str] = "global_avg_pool"

    def infer(self, shapes):
        return Shape(1, 1, shapes[0].c)


@dataclass(eq=False)
class QMaxPool(QLayer):
    """Max pooling; scales pass through; padding holds ``pad_value`` (the lowest code)."""

    kernel: int = 2
    stride: int = 2
    padding: int = 0
    pad_value: int = 0
    kind: ClassVar[str] = "maxpool"


@dataclass(eq=False)
class QAvgPool(QLayer):
    """Average pooling: window sums requantized by ``mult / 2**shift``."""

    kernel: int = 2
    stride: int = 2
    mult: int = 0
    shift: int = 0
    kind: ClassVar[str] = "avgpool"


@dataclass(eq=False)
class QGlobalAvgPool(QLayer):
    """Global average pooling: per-channel sums requantized by ``mult / 2**shift``."""

    mult: int = 0
    shift: int = 0
    kind: ClassVar[str] = "global_avg_pool"


def _emit_map(imp, node, layer, x) -> None:
    imp.emit(node, layer, nonneg=x.nonneg)


@register
class MaxPoolOp(Op):
    kind = "maxpool"
    layer = MaxPool
    qlayer = QMaxPool
    role = "pool"
    toml_keys = {"input": (str, False), "kernel": (int, True), "stride": (int, False),
                 "padding": (int, False)}
    onnx_ops = ("MaxPool",)
    rtl = "imcflow.gen.stages:max_pool_stage"
    passthrough = True

    def quantize(self, layer, ctx):
        return QMaxPool(**ctx.common(layer), scale=ctx.scales_in(layer)[0], kernel=layer.kernel,
                        stride=layer.stride, padding=layer.padding,
                        pad_value=act_range(ctx.arch.act_bits, ctx.signed[layer.input])[0])

    def forward(self, q, inputs, arch):
        return max_pool(inputs[0], q.kernel, q.stride, q.padding, pad_value=q.pad_value)

    def float_forward(self, layer, xs):
        return sliding(xs[0], layer.kernel, layer.stride, layer.padding, -float("inf")).max(axis=(4, 5))

    def window(self, layer):
        return layer.kernel, layer.stride, layer.padding

    def latency(self, layer, arch, timing):
        return timing.max_pool_latency

    def onnx(self, imp, node):
        node.allow("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order",
                   "strides")
        if len(node.outputs) > 1 and imp.uses[node.outputs[1]]:
            raise node.error("the Indices output is not supported")
        x = imp.map_input(node)
        k, s, p = imp.window(node, x)
        _emit_map(imp, node, imp.add(MaxPool(node.name, x.layer, kernel=k, stride=s, padding=p)), x)


class _Averaging(Op):
    requantizing = True

    def signed(self, layer, src, feeds_activations):
        return src[0] and not feeds_activations


@register
class AvgPoolOp(_Averaging):
    kind = "avgpool"
    layer = AvgPool
    qlayer = QAvgPool
    role = "pool"
    toml_keys = {"input": (str, False), "kernel": (int, True), "stride": (int, False)}
    onnx_ops = ("AveragePool",)
    rtl = "imcflow.gen.stages:avg_pool_stage"

    def quantize(self, layer, ctx):
        scale = ctx.scales[layer.name]
        (mult,), shift = multipliers(layer, ctx.scales_in(layer)[0] / (layer.kernel ** 2 * scale))
        return QAvgPool(**ctx.common(layer), scale=scale, kernel=layer.kernel, stride=layer.stride,
                        mult=int(mult), shift=shift)

    def forward(self, q, inputs, arch):
        return avg_pool(inputs[0], q.kernel, q.stride, q.mult, q.shift, act_bits=arch.act_bits,
                        signed=q.signed)

    def float_forward(self, layer, xs):
        return sliding(xs[0], layer.kernel, layer.stride, 0).mean(axis=(4, 5))

    def window(self, layer):
        return layer.kernel, layer.stride, 0

    def latency(self, layer, arch, timing):
        return timing.avg_pool_latency

    def onnx(self, imp, node):
        node.allow("auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads",
                   "strides")
        x = imp.map_input(node)
        k, s, p = imp.window(node, x)
        if p:
            raise node.error(f"padding {p} is not supported (average pooling without padding only)")
        _emit_map(imp, node, imp.add(AvgPool(node.name, x.layer, kernel=k, stride=s)), x)


@register
class GlobalAvgPoolOp(_Averaging):
    kind = "global_avg_pool"
    layer = GlobalAvgPool
    qlayer = QGlobalAvgPool
    role = "gap"
    toml_keys = {"input": (str, False)}
    onnx_ops = ("GlobalAveragePool",)
    rtl = "imcflow.gen.stages:global_avg_pool_stage"

    def quantize(self, layer, ctx):
        scale = ctx.scales[layer.name]
        ratio = ctx.scales_in(layer)[0] / (ctx.net.shapes[layer.input].pixels * scale)
        (mult,), shift = multipliers(layer, ratio)
        return QGlobalAvgPool(**ctx.common(layer), scale=scale, mult=int(mult), shift=shift)

    def forward(self, q, inputs, arch):
        return global_avg_pool(inputs[0], q.mult, q.shift, act_bits=arch.act_bits, signed=q.signed)

    def float_forward(self, layer, xs):
        return xs[0].mean(axis=(1, 2), keepdims=True)

    def onnx(self, imp, node):
        node.allow()
        x = imp.map_input(node)
        _emit_map(imp, node, imp.add(GlobalAvgPool(node.name, x.layer)), x)
