"""The op registry's base: `Shape`, the `Layer` and `QLayer` base classes, and `Op`.

An `Op` is one layer kind and everything imcflow knows about it: its IR class (schema and shape
inference), its TOML keys and ONNX ops, its quantization, its bit-exact golden forward and float
reference, its mapping role, window and crossbar matrix, and the name of its RTL factory. Each kind
is one module of `imcflow.sw.ops` defining an `Op` subclass decorated with `register`; the
network IR, the quantizer, the golden model, the mapper, the TOML and ONNX importers and the
generator dispatch through ``layer.op`` and never name a kind (docs/design.md, "Adding a layer
kind").

Mapping roles are the hardware stage shapes the performance model and the generator know:
``source`` (the network input), ``crossbar`` (windows onto crossbars, `imcflow.sw.ops.crossbar`),
``pool`` (a window reducer), ``gap`` (global pooling), ``join`` (a residual add with a skip FIFO)
and ``fused`` (no stage of its own: an activation applied by its producer, or a flatten).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from imcflow.errors import UserError
from imcflow.sw.arith import quantize_multipliers
from imcflow.sw.timing import ROLE_LATENCY
from imcflow.validate import check_int

__all__ = [
    "Shape", "Layer", "QLayer", "Op", "QuantContext", "register", "registry", "op_for",
    "check_range", "check_parameters", "multipliers", "sliding", "stream_shape",
    "MAX_SIDE", "MAX_CHANNELS", "MAX_KERNEL", "MAX_MAP_VALUES", "MAX_LAYER_WEIGHTS", "ROLES",
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

#: the mapping roles (hardware stage shapes), see the module docstring
ROLES = ("source", "crossbar", "pool", "gap", "join", "fused")


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


def check_range(layer: str, name: str, value, minimum: int = 1, maximum: int = MAX_KERNEL) -> None:
    """A `UserError` naming ``layer`` unless ``value`` is an integer in ``minimum..maximum``."""
    check_int(f"layer {layer!r}: {name}", value, minimum, maximum)


def check_parameters(layer, rows: int, cols: int) -> None:
    """The weight count bound and finite ``weight`` and ``bias`` of a layer with weights."""
    if rows * cols > MAX_LAYER_WEIGHTS:
        raise layer.error(f"has {rows * cols} weights; at most {MAX_LAYER_WEIGHTS}")
    for name in ("weight", "bias"):
        value = getattr(layer, name)
        if value is not None and not np.all(np.isfinite(value)):
            raise layer.error(f"{name} has NaN or infinite values")


@dataclass(eq=False)
class Layer:
    """Base class of the IR layers. ``kind`` is the layer's name in TOML files and reports;
    ``op`` is its `Op` (set by `register`)."""

    name: str
    kind: ClassVar[str] = "layer"
    op: ClassVar["Op"] = None

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
class QLayer:
    """A quantized layer.

    Attributes
    ----------
    name : str, the IR layer's name
    inputs : tuple of input layer names
    shape : `Shape` of the output
    scale : float, real value of one output code
    signed : bool, output codes are signed ``act_bits`` (else unsigned, after a ReLU)
    """

    name: str
    inputs: tuple[str, ...]
    shape: Shape
    scale: float
    signed: bool
    kind: ClassVar[str] = "layer"
    op: ClassVar["Op"] = None


@dataclass
class QuantContext:
    """What `Op.quantize` reads (`imcflow.sw.quant.from_scales` builds it once per network).

    Attributes
    ----------
    net : the float `Network`
    arch : `Arch`
    signed : layer name -> its output codes are signed
    scales : layer name -> output scale of every requantizing layer
    scale_of : layer name -> output scale of every layer quantized so far
    weight_scales : optional per-output-channel weight scales
    adc_shifts : given ADC gain shifts
    outs : integer outputs of the layers so far on the calibration images, or None
    percentile : calibration percentile
    input_scale : real value of one 8-bit input pixel code
    index : the layer's position in the network (seeds its weight noise)
    """

    net: object
    arch: object
    signed: dict
    scales: dict
    scale_of: dict
    weight_scales: dict
    adc_shifts: dict
    outs: dict | None
    percentile: float
    input_scale: float
    index: int = 0

    def common(self, layer) -> dict:
        """The `QLayer` fields every kind shares (scale aside)."""
        return dict(name=layer.name, inputs=layer.inputs, shape=self.net.shapes[layer.name],
                    signed=self.signed[layer.name])

    def scales_in(self, layer) -> list[float]:
        return [self.scale_of[s] for s in layer.inputs]


class Op:
    """One layer kind (see the module docstring). Subclasses set the class attributes and
    override the methods their role needs; `register` makes one instance the kind's op.

    Attributes
    ----------
    kind : str
        Name in TOML files, reports and mappings.
    layer, qlayer : type
        The IR class (a `Layer`) and the quantized class (a `QLayer`).
    role : str
        Mapping role, one of `ROLES`.
    toml_keys : dict
        TOML keys besides ``name`` and ``kind``: key -> (type, required).
    onnx_ops : tuple of str
        ONNX op types whose nodes `onnx` imports (`onnx_accepts` may narrow them by attribute).
    rtl : str or None
        ``"module:function"`` of the RTL factory (`rtl_block`); imported only when called, so
        that the software stack never loads Amaranth.
    requantizing : bool
        Has an output scale of its own (calibrated, or given by a QDQ model).
    activation : bool
        Fuses into the layer producing its input (a ReLU): that layer's output is unsigned.
    passthrough : bool
        Passes its input's codes and scale through (max pooling, flatten); an activation after
        it still fuses into the layer before it.
    weighted : bool
        Has ``weight`` and ``bias`` arrays (`weight_shape`).
    """

    kind: ClassVar[str] = ""
    layer: ClassVar[type] = Layer
    qlayer: ClassVar[type] = QLayer
    role: ClassVar[str] = "fused"
    toml_keys: ClassVar[dict] = {}
    onnx_ops: ClassVar[tuple[str, ...]] = ()
    rtl: ClassVar[str | None] = None
    requantizing: ClassVar[bool] = False
    activation: ClassVar[bool] = False
    passthrough: ClassVar[bool] = False
    weighted: ClassVar[bool] = False

    # schema ------------------------------------------------------------------------------------

    def from_toml(self, name: str, args: dict, where: str) -> Layer:
        """The IR layer of a TOML table whose keys passed the `toml_keys` checks (``input``
        defaulted to the previous layer); ``where`` names the table for errors."""
        return self.layer(name, **args)

    def weight_shape(self, layer, in_shape: Shape) -> tuple[int, ...] | None:
        """Shape of the float ``weight`` array (``weighted`` kinds)."""
        return None

    def fan_in(self, layer, in_shape: Shape) -> int:
        """Inputs of one output value (He initialisation)."""
        return 0

    # ONNX --------------------------------------------------------------------------------------

    def onnx_accepts(self, importer, node) -> bool:
        """Whether this op imports ``node`` (one of `onnx_ops`; its constant inputs are
        ``importer.param(node, i)``)."""
        return True

    def onnx(self, importer, node) -> None:
        """Import ``node`` through the `imcflow.sw.onnx_import` importer's helpers."""
        raise NotImplementedError

    # quantization and golden -------------------------------------------------------------------

    def signed(self, layer, src: list[bool], feeds_activations: bool) -> bool:
        """Whether the output codes are signed, given the inputs' and whether every path from the
        output reaches an activation through passthrough layers only."""
        return src[0]

    def ceiling(self, layer) -> float:
        """An activation's largest real output value (inf for a ReLU)."""
        return np.inf

    def quantize(self, layer, ctx: QuantContext) -> QLayer:
        """The quantized layer; ``ctx`` holds the network, arch, scales and calibration."""
        return self.qlayer(**ctx.common(layer), scale=ctx.scales_in(layer)[0])

    def forward(self, q, inputs: list[np.ndarray], arch) -> np.ndarray:
        """Integer output ``(N, H, W, C)`` of ``q`` on its integer inputs (the golden model)."""
        return inputs[0]

    def float_forward(self, layer, xs: list[np.ndarray]) -> np.ndarray:
        """Float output ``(N, H, W, C)`` of ``layer`` on its float inputs."""
        raise NotImplementedError

    # mapping -----------------------------------------------------------------------------------

    def window(self, layer) -> tuple[int, int, int]:
        """``(kernel, stride, padding)`` of the windows the stage reads (0s without windows)."""
        return (0, 0, 0)

    def matrix(self, layer, kernel: int, stream: Shape, out: Shape, arch) -> tuple[int, int, int]:
        """A crossbar stage's matrix ``(rows, cols, weights)``: ``rows`` and ``cols`` as laid out
        on the crossbars (tiled by ``arch.rows`` and ``arch.cols``), ``weights`` the cells that
        hold a weight."""
        rows, cols = kernel * kernel * stream.c, out.c
        return rows, cols, rows * cols

    def empty_tiles(self, layer, kernel: int, stream: Shape, out: Shape,
                    arch) -> tuple[tuple[int, int], ...]:
        """The tiles (``arch.rows x arch.cols`` blocks, as ``(row tile, column tile)``) of the
        `matrix` that hold no weight by construction: `imcflow.hw.core.CrossbarLayer` does not
        build them."""
        return ()

    # timing ------------------------------------------------------------------------------------

    def latency(self, layer, arch, timing) -> int:
        """Cycles from the stage's engine taking an input (a window; a pixel for joins and global
        pooling) to its output handshake, when nothing stalls (``layer`` a `LayerMapping`,
        ``timing`` a `~imcflow.sw.timing.BlockTiming`): the role's block by default
        (`~imcflow.sw.timing.ROLE_LATENCY`); a kind with a block of its own returns that
        block's number from ``timing``."""
        if self.role not in ROLE_LATENCY:
            raise NotImplementedError(f"Layer kind {self.kind!r} (role {self.role!r}) declares "
                                      f"no latency")
        return ROLE_LATENCY[self.role](layer, arch, timing)

    # RTL ---------------------------------------------------------------------------------------

    def rtl_factory(self) -> Callable:
        """The RTL factory named by `rtl`: ``factory(mapping_layer, q, sources, arch, target)``
        returns the stage's Amaranth component."""
        if self.rtl is None:
            raise ValueError(f"Layer kind {self.kind!r} has no RTL block of its own "
                             f"(role {self.role!r})")
        module, _, name = self.rtl.partition(":")
        return getattr(importlib.import_module(module), name)


_REGISTRY: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: make an instance of ``cls`` the op of its kind."""
    if cls.role not in ROLES:
        raise ValueError(f"Op {cls.__name__}: role must be one of {', '.join(ROLES)}, "
                         f"not {cls.role!r}")
    if cls.kind in _REGISTRY:
        raise ValueError(f"Op {cls.__name__}: kind {cls.kind!r} is registered twice")
    op = cls()
    _REGISTRY[cls.kind] = op
    cls.layer.op = op
    cls.qlayer.op = op
    return cls


def registry() -> dict[str, Op]:
    """Every registered op by kind, in registration order."""
    return dict(_REGISTRY)


def op_for(kind: str) -> Op:
    """The op of ``kind``; `KeyError` if none is registered."""
    return _REGISTRY[kind]


def multipliers(layer, ratios) -> tuple[np.ndarray, int]:
    """`imcflow.sw.arith.quantize_multipliers` of ``ratios`` (real value of one input unit in
    output codes), or a `UserError` naming ``layer`` when they do not fit."""
    try:
        return quantize_multipliers(ratios)
    except ValueError:
        raise layer.error(f"requantization scale {float(np.max(ratios)):.6g} does not fit an "
                          f"unsigned multiplier (output scale too small for its input)") from None


def sliding(x, kernel: int, stride: int, padding: int, pad_value: float = 0.0) -> np.ndarray:
    """Windows of a float batch ``(N, H, W, C)`` as ``(N, OH, OW, C, k, k)`` (float references)."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), constant_values=pad_value)
    return sliding_window_view(x, (kernel, kernel), axis=(1, 2))[:, ::stride, ::stride]


def stream_shape(net, name: str) -> Shape:
    """The shape of the pixel stream carrying layer ``name``'s output: that of the stage producing
    it, through fused layers (a flatten does not change the stream, only how it is read)."""
    layer = net[name]
    while layer.op.role == "fused":
        layer = net[layer.inputs[0]]
    return net.shapes[layer.name]
