"""Grouped and depthwise convolution on crossbars in a block-diagonal layout.

A grouped convolution splits the ``C_in`` input and ``C_out`` output channels into ``groups``
groups; output channel ``o`` of group ``g = o // (C_out / groups)`` reads only input channels
``[g * C_in / groups, (g + 1) * C_in / groups)``. ``groups = C_in = C_out`` is the depthwise
convolution of MobileNets. The weight is ``(k, k, C_in / groups, C_out)`` (HWIO, as ONNX's
``(C_out, C_in / groups, k, k)`` transposed).

Crossbar layout (docs/mapper.md, "Grouped convolution"): group ``g`` is a small conv of
``R_g = k*k*C_in/groups`` rows (its window lanes in im2col order) and ``C_g = C_out/groups``
columns. ``P = min(arch.rows // R_g, arch.cols // C_g)`` groups (at least 1) share a crossbar side by
side on its diagonal, a *pack*; pack ``p`` starts at row ``p * ceil(P * R_g / arch.rows) *
arch.rows``, so every row tile of ``arch.rows`` holds whole groups of one pack and each column's dot
product is converted by the ADC in one tile (in ``ceil(R_g / arch.rows)`` when a group is taller
than a crossbar). The rows read the window's lanes through ``lanes`` (padding rows read 0); cells
outside the diagonal blocks hold 0 and stay 0 under programming noise, so a column's other row
tiles add exactly 0: the arithmetic is that of each group on its own crossbars.

The RTL is the conv stage (`imcflow.gen.stages.crossbar_stage`) with this matrix: a
`~imcflow.hw.lanes.LaneMap` (wiring) before a `~imcflow.hw.core.CrossbarLayer` that tiles the
matrix by ``arch.rows`` and ``arch.cols`` and builds only the tiles holding a weight: one per pack,
two where a pack's columns straddle a column tile boundary (`GroupedConvOp.empty_tiles` counts the
others for the mapping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from imcflow.sw.ops.base import MAX_CHANNELS, check_range, register, sliding
from imcflow.sw.ops.conv import Conv2d, ConvOp
from imcflow.sw.ops.crossbar import QCrossbar

__all__ = ["GroupedConv2d", "QGroupedConv", "GroupedConvOp", "block_diagonal"]


@dataclass(eq=False)
class GroupedConv2d(Conv2d):
    """A grouped convolution (``groups = C_in = out_channels``: depthwise): a `Conv2d` whose
    ``groups`` split the channels; the checks and the shape are the conv's (its op gives the
    weight's shape and fan-in) plus those of ``groups``. A dense conv is the kind ``conv``."""

    groups: int = 1
    kind: ClassVar[str] = "grouped_conv"

    def check(self):
        super().check()
        check_range(self.name, "groups", self.groups, maximum=MAX_CHANNELS)
        if self.out_channels % self.groups:
            raise self.error(f"out_channels {self.out_channels} is not a multiple of groups "
                             f"{self.groups}")

    def infer(self, shapes):
        (s,) = shapes
        if s.c % self.groups:
            raise self.error(f"the {s} input's {s.c} channels are not a multiple of groups "
                             f"{self.groups}")
        return super().infer(shapes)


@dataclass(eq=False)
class QGroupedConv(QCrossbar):
    """A grouped conv on crossbars: ``weight`` is the block-diagonal matrix, ``lanes`` the window
    lane of each of its rows (-1: a padding row)."""

    kind: ClassVar[str] = "grouped_conv"


def block_diagonal(in_channels: int, out_channels: int, kernel: int, groups: int, xbar_rows: int,
                   xbar_cols: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The block-diagonal layout: ``(row_of, lanes, per_pack)``.

    ``row_of[g]`` is the first matrix row of group ``g`` (its ``k*k*C_in/groups`` rows follow in
    im2col order), ``lanes`` the window lane of every matrix row (-1 for padding), ``per_pack``
    the groups that share a crossbar.
    """
    rows_g, cols_g, cin_g = kernel * kernel * in_channels // groups, out_channels // groups, \
        in_channels // groups
    per_pack = max(1, min(xbar_rows // rows_g, xbar_cols // cols_g))
    pack_rows = -(-per_pack * rows_g // xbar_rows) * xbar_rows
    g = np.arange(groups)
    row_of = (g // per_pack) * pack_rows + (g % per_pack) * rows_g
    lanes = np.full(int(row_of[-1]) + rows_g, -1, dtype=np.int64)
    taps, c = np.divmod(np.arange(rows_g), cin_g)  # group row r: tap r // cin_g, channel r % cin_g
    for group in g:
        lanes[row_of[group] + np.arange(rows_g)] = taps * in_channels + group * cin_g + c
    return row_of, lanes, per_pack


@register
class GroupedConvOp(ConvOp):
    """The conv's op (its windows, geometry and ONNX import) with the groups' weight shape,
    crossbar layout and float forward; it imports the Conv nodes with ``group > 1``."""

    kind = "grouped_conv"
    layer = GroupedConv2d
    qlayer = QGroupedConv
    toml_keys = {**ConvOp.toml_keys, "groups": (int, True)}
    weight_axes = "(k, k, C_in / groups, C_out)"
    onnx_weight_axes = "(M, C/group, kH, kW)"

    def weight_shape(self, layer, in_shape):
        return (layer.kernel, layer.kernel, in_shape.c // layer.groups, layer.out_channels)

    def fan_in(self, layer, in_shape):
        return layer.kernel ** 2 * in_shape.c // layer.groups

    def matrix(self, layer, kernel, stream, out, arch):
        _, lanes, _ = block_diagonal(stream.c, out.c, kernel, layer.groups, arch.rows, arch.cols)
        return len(lanes), out.c, kernel * kernel * stream.c // layer.groups * out.c

    def empty_tiles(self, layer, kernel, stream, out, arch):
        row_of, lanes, _ = block_diagonal(stream.c, out.c, kernel, layer.groups, arch.rows, arch.cols)
        rows_g, cols_g = kernel * kernel * stream.c // layer.groups, out.c // layer.groups
        used = set()
        for g, first in enumerate(row_of):
            for t in range(first // arch.rows, (first + rows_g - 1) // arch.rows + 1):
                for u in range(g * cols_g // arch.cols, ((g + 1) * cols_g - 1) // arch.cols + 1):
                    used.add((t, u))
        return tuple((t, u) for t in range(-(-len(lanes) // arch.rows))
                     for u in range(-(-out.c // arch.cols)) if (t, u) not in used)

    def layout(self, layer, net, matrix, arch):
        c_in, c_out, groups = net.shapes[layer.input].c, layer.out_channels, layer.groups
        row_of, lanes, _ = block_diagonal(c_in, c_out, layer.kernel, groups, arch.rows, arch.cols)
        rows_g, cols_g = matrix.shape[0], c_out // groups
        full = np.zeros((len(lanes), c_out))
        used = np.zeros(full.shape, dtype=bool)
        for g in range(groups):
            rows, cols = slice(row_of[g], row_of[g] + rows_g), slice(g * cols_g, (g + 1) * cols_g)
            full[rows, cols] = matrix[:, cols]
            used[rows, cols] = True
        return full, lanes, used

    def float_forward(self, layer, xs):
        groups, (n, h, w, c) = layer.groups, xs[0].shape
        win = sliding(xs[0], layer.kernel, layer.stride, layer.padding)  # (N, OH, OW, C, k, k)
        win = win.reshape(*win.shape[:3], groups, c // groups, layer.kernel, layer.kernel)
        weight = np.asarray(layer.weight, np.float64)
        weight = weight.reshape(*weight.shape[:3], groups, layer.out_channels // groups)
        y = np.einsum("nhwgcyx,yxcgo->nhwgo", win, weight).reshape(*win.shape[:3], -1)
        return y + (0.0 if layer.bias is None else layer.bias)

    def onnx_accepts(self, imp, node):
        return node.attrs.get("group", 1) != 1
