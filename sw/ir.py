"""The network IR: a CNN as a DAG of layers with shapes inferred and checked at construction.

Feature maps are ``Shape(h, w, c)``; vectors are ``1 x 1 x c``. Layers name their inputs, and a
`Network` lists its layers in topological order with exactly one `Input`; the last layer is the
output. Parameters are optional float arrays (a topology without weights still maps):

- `Conv2d` weight ``(k, k, C_in, C_out)`` (HWIO) and bias ``(C_out,)``; ``weight.reshape(-1, C_out)``
  is the crossbar matrix in im2col row order ``((ky * k) + kx) * C_in + c``.
- `Dense` weight ``(in_features, out_features)``. After `Flatten` of an ``H x W x C`` map the input
  index is ``(y * W + x) * C + c`` (raster order, channels last), so Flatten + Dense is an
  ``H x H`` convolution without padding.

Every layer kind lives in the op registry `imcflow.sw.ops`, one module each (its class, shape
inference and everything else imcflow knows about it); this module re-exports the core kinds and
`LAYER_KINDS` and holds `Network`.

Sizes are bounded (`MAX_SIDE`, `MAX_CHANNELS`, `MAX_KERNEL`, `MAX_MAP_VALUES`,
`MAX_LAYER_WEIGHTS`; docs/network-toml.md, "Limits") so that a typo is an error, not an attempt
to allocate terabytes, and parameters must be finite. Every error is a `UserError` naming the
layer and the mismatch.
"""

from __future__ import annotations

from typing import Iterator

from imcflow.errors import UserError
from imcflow.sw.ops import (MAX_CHANNELS, MAX_KERNEL, MAX_LAYER_WEIGHTS, MAX_MAP_VALUES, MAX_SIDE, Add,
                            AvgPool, Conv2d, Dense, Flatten, GlobalAvgPool, Input, Layer, MaxPool, ReLU,
                            Shape, registry)

__all__ = [
    "Shape", "Layer", "Input", "Conv2d", "Dense", "ReLU", "MaxPool", "AvgPool", "GlobalAvgPool",
    "Add", "Flatten", "Network", "LAYER_KINDS",
    "MAX_SIDE", "MAX_CHANNELS", "MAX_KERNEL", "MAX_MAP_VALUES", "MAX_LAYER_WEIGHTS",
]

#: every layer kind's IR class, by kind (the op registry's, `imcflow.sw.ops`)
LAYER_KINDS: dict[str, type[Layer]] = {kind: op.layer for kind, op in registry().items()}


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
