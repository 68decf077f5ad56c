"""The network IR: a CNN as a DAG of layers with shapes inferred and checked at construction.

Feature maps are ``Shape(h, w, c)``; vectors are ``1 x 1 x c``. Layers name their inputs, and a
`Network` lists its layers in topological order with exactly one `Input`; the last layer is the
output. Parameters are optional float arrays (a topology without weights still maps):

- `Conv2d` weight ``(k, k, C_in, C_out)`` (HWIO) and bias ``(C_out,)``; ``weight.reshape(-1, C_out)``
  is the crossbar matrix in im2col row order ``((ky * k) + kx) * C_in + c``.
- `Dense` weight ``(in_features, out_features)``. After `Flatten` of an ``H x W x C`` map the input
  index is ``(y * W + x) * C + c`` (raster order, channels last), so Flatten + Dense is an
  ``H x H`` convolution without padding.

Sizes are bounded (`MAX_SIDE`, `MAX_CHANNELS`, `MAX_KERNEL`, `MAX_MAP_VALUES`,
`MAX_LAYER_WEIGHTS`; docs/network-toml.md, "Limits") so that a typo is an error, not an attempt
to allocate terabytes, and parameters must be finite. Every error is a `UserError` naming the
layer and the mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Iterator

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.golden import conv_output_size

__all__ = [
    "Shape", "Layer", "Input", "Conv2d", "Dense", "ReLU", "MaxPool", "AvgPool", "GlobalAvgPool",
    "Add", "Flatten", "Network", "LAYER_KINDS",
    "MAX_SIDE", "MAX_CHANNELS", "MAX_KERNEL", "MAX_MAP_VALUES", "MAX_LAYER_WEIGHTS",
]

#: largest input height and width
MAX_SIDE = 1024
#: most input channels, conv output channels and dense output features
MAX_CHANNELS = 4096
#: largest conv and pooling kernel, stride and (below the kernel) padding
MAX_KERNEL = 32
#: most values (height x width x channels) of any feature map
MAX_MAP_VALUES = 1 << 22
#: most weights of one conv or dense layer
MAX_LAYER_WEIGHTS = 1 << 27


@dataclass(frozen=True)
class Shape:
    """A feature map shape: height, width, channels."""

    h: int
    w: int
    c: int

    @property
    def pixels(self) -> int:
        return self.h * self.w

    @property
    def size(self) -> int:
        return self.h * self.w * self.c

    def __str__(self) -> str:
        return f"{self.h}x{self.w}x{self.c}"


def _positive(layer, name, value, minimum=1, maximum=MAX_KERNEL):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not minimum <= value <= maximum:
        raise UserError(f"layer {layer!r}: {name} must be an integer in {minimum}..{maximum}, "
                        f"not {value!r}")


def _check_parameters(layer, rows: int, cols: int) -> None:
    """The weight count bound and finite ``weight`` and ``bias`` of a conv or dense layer."""
    if rows * cols > MAX_LAYER_WEIGHTS:
        raise layer.error(f"has {rows * cols} weights; at most {MAX_LAYER_WEIGHTS}")
    for name in ("weight", "bias"):
        value = getattr(layer, name)
        if value is not None and not np.all(np.isfinite(value)):
            raise layer.error(f"{name} has NaN or infinite values")


@dataclass(eq=False)
class Layer:
    """Base class. ``kind`` is the layer's name in TOML files and reports."""

    name: str
    kind: ClassVar[str] = "layer"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)

    def check(self) -> None:
        """Validate the layer's own attributes (not its inputs)."""

    def infer(self, shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def error(self, message: str) -> UserError:
        return UserError(f"layer {self.name!r} ({self.kind}): {message}")


@dataclass(eq=False)
class Input(Layer):
    shape: Shape = None
    kind: ClassVar[str] = "input"

    @property
    def inputs(self) -> tuple[str, ...]:
        return ()

    def check(self):
        if not isinstance(self.shape, Shape):
            raise self.error(f"shape must be a Shape(h, w, c), not {self.shape!r}")
        for axis, limit in (("h", MAX_SIDE), ("w", MAX_SIDE), ("c", MAX_CHANNELS)):
            _positive(self.name, f"shape.{axis}", getattr(self.shape, axis), maximum=limit)

    def infer(self, shapes):
        return self.shape


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
        _positive(self.name, "out_channels", self.out_channels, maximum=MAX_CHANNELS)
        _positive(self.name, "kernel", self.kernel)
        _positive(self.name, "stride", self.stride)
        _positive(self.name, "padding", self.padding, minimum=0)
        if self.padding >= self.kernel:
            raise self.error(f"padding {self.padding} must be smaller than kernel {self.kernel}")

    def infer(self, shapes):
        (s,) = shapes
        k, p = self.kernel, self.padding
        if s.h + 2 * p < k or s.w + 2 * p < k:
            raise self.error(f"kernel {k} with padding {p} does not fit the {s} input")
        if self.weight is not None:
            expect = (k, k, s.c, self.out_channels)
            if tuple(np.shape(self.weight)) != expect:
                raise self.error(f"weight shape {tuple(np.shape(self.weight))} does not match "
                                 f"(k, k, C_in, C_out) = {expect} for the {s} input")
        if self.bias is not None and tuple(np.shape(self.bias)) != (self.out_channels,):
            raise self.error(f"bias shape {tuple(np.shape(self.bias))} is not ({self.out_channels},)")
        _check_parameters(self, k * k * s.c, self.out_channels)
        return Shape(conv_output_size(s.h, k, self.stride, p), conv_output_size(s.w, k, self.stride, p),
                     self.out_channels)


@dataclass(eq=False)
class Dense(Layer):
    input: str = ""
    out_features: int = 0
    weight: np.ndarray | None = field(default=None, repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    kind: ClassVar[str] = "dense"

    def check(self):
        _positive(self.name, "out_features", self.out_features, maximum=MAX_CHANNELS)

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
        _check_parameters(self, s.c, self.out_features)
        return Shape(1, 1, self.out_features)


@dataclass(eq=False)
class ReLU(Layer):
    input: str = ""
    kind: ClassVar[str] = "relu"

    def infer(self, shapes):
        return shapes[0]


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
        _positive(self.name, "kernel", self.kernel)
        _positive(self.name, "stride", self.stride)
        _positive(self.name, "padding", self.padding, minimum=0)
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
        _positive(self.name, "kernel", self.kernel)
        _positive(self.name, "stride", self.stride)

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
class Flatten(Layer):
    input: str = ""
    kind: ClassVar[str] = "flatten"

    def infer(self, shapes):
        (s,) = shapes
        if s.h != s.w:
            raise self.error(f"only square maps can be flattened (mapped as an HxH kernel), not {s}")
        return Shape(1, 1, s.size)


LAYER_KINDS: dict[str, type[Layer]] = {
    cls.kind: cls for cls in (Input, Conv2d, Dense, ReLU, MaxPool, AvgPool, GlobalAvgPool, Add, Flatten)
}


class Network:
    """A CNN: layers in topological order, one `Input`, output = the last layer.

    Attributes
    ----------
    name : str
    layers : list[Layer]
    shapes : dict[str, Shape], the output shape of every layer
    """

    def __init__(self, name: str, layers: list[Layer]):
        self.name = name
        self.layers = list(layers)
        self.shapes: dict[str, Shape] = {}
        if not self.layers:
            raise UserError(f"network {name!r}: has no layers")
        inputs = [l for l in self.layers if isinstance(l, Input)]
        if len(inputs) != 1:
            raise UserError(f"network {name!r}: needs exactly one input layer, found {len(inputs)}")
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise UserError(f"network {name!r}: {layer!r} is not a layer")
            if not isinstance(layer.name, str) or not layer.name:
                raise UserError(f"network {name!r}: every layer needs a non-empty name")
            if layer.name in self.shapes:
                raise layer.error("duplicate layer name")
            layer.check()
            for src in layer.inputs:
                if src not in self.shapes:
                    known = src in {l.name for l in self.layers}
                    raise layer.error(f"input {src!r} " + ("comes later; layers must be in topological order"
                                                          if known else "is not a layer of this network"))
            self.shapes[layer.name] = shape = layer.infer([self.shapes[s] for s in layer.inputs])
            if shape.size > MAX_MAP_VALUES:
                raise layer.error(f"its {shape} output has {shape.size} values; at most "
                                  f"{MAX_MAP_VALUES}")
        used = {src for layer in self.layers for src in layer.inputs}
        dangling = [l.name for l in self.layers[:-1] if l.name not in used]
        if dangling:
            raise UserError(f"network {name!r}: layer {dangling[0]!r} feeds nothing "
                            f"(only the last layer is the output)")

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def input(self) -> Input:
        return next(l for l in self.layers if isinstance(l, Input))

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    def input_shapes(self, layer: Layer) -> list[Shape]:
        return [self.shapes[s] for s in layer.inputs]

    def consumers(self, name: str) -> list[Layer]:
        return [l for l in self.layers if name in l.inputs]

    def __repr__(self) -> str:
        return f"Network({self.name!r}, {len(self.layers)} layers, {self.shapes[self.input.name]} -> " \
               f"{self.shapes[self.output.name]})"
