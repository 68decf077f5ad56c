"""The op registry: one module per layer kind (docs/design.md, "Adding a layer kind").

Each module defines its IR layer, its quantized layer and an `Op` registered under its kind;
`registry()` lists them. Importing this package imports every module in it (the core kinds
first, in the order of the TOML schema, then any other module alphabetically), so a new kind is
one new module here. Nothing here imports Amaranth: an op names its RTL factory as a string.
"""

from __future__ import annotations

import importlib
import pkgutil

from imcflow.sw.ops.base import (MAX_CHANNELS, MAX_KERNEL, MAX_LAYER_WEIGHTS, MAX_MAP_VALUES,
                                 MAX_SIDE, ROLES, Layer, Op, QLayer, QuantContext, Shape, op_for,
                                 register, registry)
from imcflow.sw.ops.input import Input, QInput
from imcflow.sw.ops.conv import Conv2d, QConv
from imcflow.sw.ops.dense import Dense, QDense
from imcflow.sw.ops.relu import QReLU, ReLU
from imcflow.sw.ops.pool import AvgPool, GlobalAvgPool, MaxPool, QAvgPool, QGlobalAvgPool, QMaxPool
from imcflow.sw.ops.add import Add, QAdd
from imcflow.sw.ops.flatten import Flatten, QFlatten
from imcflow.sw.ops.crossbar import QCrossbar

__all__ = [
    "Shape", "Layer", "QLayer", "Op", "QuantContext", "register", "registry", "op_for", "ROLES",
    "Input", "Conv2d", "Dense", "ReLU", "MaxPool", "AvgPool", "GlobalAvgPool", "Add", "Flatten",
    "QInput", "QCrossbar", "QConv", "QDense", "QReLU", "QMaxPool", "QAvgPool", "QGlobalAvgPool",
    "QAdd", "QFlatten",
    "MAX_SIDE", "MAX_CHANNELS", "MAX_KERNEL", "MAX_MAP_VALUES", "MAX_LAYER_WEIGHTS",
]

#: modules of the package that are not layer kinds
_SHARED = {"base", "crossbar"}

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _SHARED:
        importlib.import_module(f"{__name__}.{_module}")
