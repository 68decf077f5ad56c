"""What flows between the nodes of an imported graph, and the shapes of windows.

A tensor computed from the network input is a `Value`: the IR layer whose output codes it is,
with its ONNX shape, ``(C, H, W)`` for a feature map (`chw` of an IR `Shape`) or ``(F,)`` for a
vector, and what the importer knows about it (non-negative, flattened from a map, foldable into
a conv or dense layer, between a QuantizeLinear and its DequantizeLinear: `Quant`). `window` reads
the attributes that shape a conv's or pool's window (kernel, strides, dilations, pads, auto_pad,
ceil_mode) into the IR's ``(kernel, stride, padding)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from imcflow.sw.ir import Layer, Shape
from imcflow.sw.onnx_import.graph import Node

__all__ = ["Quant", "Value", "chw", "window"]


@dataclass(frozen=True)
class Quant:
    """The quantization of an activation tensor by QuantizeLinear node ``node``."""

    scale: float
    zero_point: int
    node: str


@dataclass(frozen=True)
class Value:
    """A feature map (ONNX ``shape`` (C, H, W)) or vector ((F,)) whose codes are the output of IR
    layer ``layer``.

    ``nonneg``: no element is negative; ``chw``: the (C, H, W) map this vector was flattened from
    (its order differs from the IR's when H*W > 1); ``fold``: the conv or dense layer whose raw
    output this is (a BatchNormalization or a bias Add folds into it); ``quant``: set between a
    QuantizeLinear and its DequantizeLinear.
    """

    layer: str
    shape: tuple
    nonneg: bool = False
    chw: tuple | None = None
    fold: Layer | None = None
    quant: Quant | None = None


def chw(shape: Shape) -> tuple:
    """The ONNX ``(C, H, W)`` of an IR shape."""
    return (shape.c, shape.h, shape.w)


def window(node: Node, x: Value, kernel=None) -> tuple[int, int, int]:
    """``(kernel, stride, padding)`` of a conv or pooling node on map ``x`` (``kernel``: the
    weight's spatial shape, which ``kernel_shape`` must match)."""
    a = node.attrs
    k = list(a.get("kernel_shape", kernel or []))
    if kernel is not None and k != list(kernel):
        raise node.error(f"kernel_shape={k} does not match the weight's {list(kernel)}")
    if len(k) != 2 or k[0] != k[1]:
        raise node.error(f"kernel_shape={k} is not supported (square 2-D kernels only)")
    strides = list(a.get("strides", [1, 1]))
    if len(strides) != 2 or strides[0] != strides[1]:
        raise node.error(f"strides={strides} is not supported (equal strides only)")
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise node.error(f"dilations={list(a['dilations'])} is not supported (1 only)")
    k, s = k[0], strides[0]
    mode = a.get("auto_pad", "NOTSET")
    if mode == "VALID":
        pad = 0
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        totals = [max((-(-n // s) - 1) * s + k - n, 0) for n in x.shape[1:]]
        if totals[0] != totals[1] or totals[0] % 2:
            raise node.error(f"auto_pad={mode} pads this {x.shape[1]}x{x.shape[2]} input by "
                             f"{totals[0]} rows and {totals[1]} columns in total; only symmetric "
                             f"padding is supported")
        pad = totals[0] // 2
    elif mode == "NOTSET":
        pads = list(a.get("pads", [0] * 4))
        if len(pads) != 4 or len(set(pads)) != 1:
            raise node.error(f"pads={pads} is not supported (symmetric padding only: all four equal)")
        pad = pads[0]
    else:
        raise node.error(f"auto_pad={mode!r} is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER)")
    if a.get("ceil_mode", 0) and any((n + 2 * pad - k) % s for n in x.shape[1:]):
        raise node.error("ceil_mode=1 is not supported where it changes the output size "
                         "(floor only)")
    return k, s, pad
