"""What every crossbar layer kind shares: `QCrossbar`, weight quantization, the ADC gain, the
golden crossbar forward, and `CrossbarOp`, the base of the crossbar kinds (conv, dense).

A crossbar layer applies windows of ``kernel x kernel`` pixels of its ``in_shape`` map
(im2col order, `imcflow.sw.golden.windows`) to a weight matrix split into row tiles of
``arch.rows`` and column tiles of ``arch.cols``. A kind whose matrix rows are not the window's
lanes in order (a block-diagonal layout, say) gives ``lanes``: for each matrix row the
window lane it reads, or -1 for a row that reads 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from imcflow.sw.arith import bit_planes, round_shift, signed_range, weight_range
from imcflow.sw.golden import crossbar_layer, tile_slices, windows
from imcflow.sw.ops.base import Op, QLayer, QuantContext, Shape, multipliers

__all__ = ["QCrossbar", "CrossbarOp", "DEFAULT_PERCENTILE", "quantize_weights", "program_weights",
           "choose_adc_shift", "psum_bits", "gather_lanes"]

#: percentile of the calibration values that maps to the largest code (activations and ADC)
DEFAULT_PERCENTILE = 99.99


@dataclass(eq=False)
class QCrossbar(QLayer):
    """A layer on crossbars.

    Windows of ``kernel x kernel`` pixels of the ``in_shape`` map (im2col order) are applied to
    the crossbar rows. A dense layer is the ``H x H`` window of the map before its flatten (or the
    1x1 window of a vector), so ``in_shape`` is that map.

    Attributes
    ----------
    in_shape : `Shape` of the map the windows are taken from
    kernel, stride, padding : int
    weight : int64 (rows, cols), the programmed weight image (noise included), im2col row order
        (or the order ``lanes`` gives)
    weight_scale : float64 (cols,), real value of one weight code per output channel
    adc_shift : int, the ADC gain shift
    bias : int64 (cols,), in accumulator units (one unit = one ADC code), within ``psum_bits``
    mult : int64 (cols,), unsigned ``MULT_BITS``-bit requantization multipliers
    shift : int, the requantization shift shared by all columns
    psum_bits : int, signed width of the partial sum over row tiles (and of ``bias``)
    lanes : int64 (rows,) or None, the window lane each row reads (-1: the row reads 0); None
        for the window's lanes in order
    """

    in_shape: Shape = None
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    weight: np.ndarray = field(default=None, repr=False)
    weight_scale: np.ndarray = field(default=None, repr=False)
    adc_shift: int = 0
    bias: np.ndarray = field(default=None, repr=False)
    mult: np.ndarray = field(default=None, repr=False)
    shift: int = 0
    psum_bits: int = 0
    lanes: np.ndarray | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return self.weight.shape[0]

    @property
    def cols(self) -> int:
        return self.weight.shape[1]

    @property
    def acc_bits(self) -> int:
        """Signed width of ``psum + bias``."""
        return self.psum_bits + 1


def gather_lanes(win: np.ndarray, lanes: np.ndarray | None) -> np.ndarray:
    """Window vectors ``(..., lanes_in)`` as the crossbar rows see them: lane ``lanes[r]`` in row
    ``r``, 0 where ``lanes[r] < 0`` (``win`` itself when ``lanes`` is None)."""
    if lanes is None:
        return win
    padded = np.concatenate([win, np.zeros((*win.shape[:-1], 1), dtype=win.dtype)], axis=-1)
    return padded[..., np.where(lanes < 0, win.shape[-1], lanes)]


def quantize_weights(weight, weight_bits: int, scale=None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-column quantization of a float ``(rows, cols)`` matrix.

    Returns ``(codes, scale)``: int64 codes in `weight_range` and the float scale per column,
    by default ``max|w| / (2**(weight_bits-1) - 1)`` (1 for an all-zero column).
    """
    weight = np.asarray(weight, dtype=np.float64)
    lo, hi = weight_range(weight_bits)
    if scale is None:
        peak = np.abs(weight).max(axis=0)
        scale = np.where(peak > 0, peak / hi, 1.0)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), weight.shape[1:]).copy()
    codes = np.clip(np.round(weight / scale), lo, hi).astype(np.int64)
    return codes, scale


def program_weights(codes, *, weight_bits: int, noise: float, seed: int, index: int) -> np.ndarray:
    """The weight image as programmed into the crossbar: ``codes`` plus seeded Gaussian noise.

    The noise has standard deviation ``noise * max|codes|`` (the arch's ``weight_noise``, relative
    to the largest weight magnitude); the sum is rounded and clipped back into `weight_range`.
    The generator is seeded by ``(seed, index)`` with ``index`` the layer's position in the
    network, so every layer draws reproducibly. ``noise = 0`` returns the codes unchanged.
    """
    codes = np.asarray(codes, dtype=np.int64)
    peak = int(np.abs(codes).max(initial=0))
    if noise == 0 or peak == 0:
        return codes.copy()
    rng = np.random.default_rng([seed, index])
    noisy = np.round(codes + rng.normal(0.0, noise * peak, codes.shape))
    return np.clip(noisy, *weight_range(weight_bits)).astype(np.int64)


def choose_adc_shift(x, weight, arch, percentile: float = DEFAULT_PERCENTILE) -> int:
    """Smallest ADC gain shift that converts the ``percentile`` of the calibration dot products
    ``|dot|`` without saturation.

    ``x`` (..., rows) are the layer's window vectors and ``weight`` its weight image; the dot
    products are those the ADCs see: per row tile of ``arch.rows`` and, for ``bit_serial`` input,
    per bit plane.
    """
    x = np.asarray(x, dtype=np.int64).reshape(-1, weight.shape[0])
    if arch.input_encoding == "bit_serial":
        x = bit_planes(x, arch.act_bits).reshape(-1, weight.shape[0])
    # float64 sums are exact here (|dot| < 2**8 * 2**7 * rows, far below 2**53) and use BLAS
    x, weight = x.astype(np.float64), np.asarray(weight, dtype=np.float64)
    dots = np.concatenate([np.abs(x[:, rows] @ weight[rows]).ravel()
                           for rows in tile_slices(weight.shape[0], arch.rows)])
    peak = int(math.ceil(np.percentile(dots, percentile))) if dots.size else 0
    limit = signed_range(arch.adc_bits)[1]
    shift = 0
    while round_shift(peak, shift) > limit:
        shift += 1
    return shift


def psum_bits(arch, rows: int) -> int:
    """Signed width of the partial sum of a ``rows``-row matrix over its row tiles."""
    tiles = len(tile_slices(rows, arch.rows))
    bits = arch.adc_bits + (arch.act_bits if arch.input_encoding == "bit_serial" else 0)
    return bits + math.ceil(math.log2(tiles))


class CrossbarOp(Op):
    """Base of the kinds mapped onto crossbars. A subclass gives `geometry` (and, for a layout
    other than the window's lanes in order, `layout`) and the float reference."""

    role: ClassVar[str] = "crossbar"
    rtl: ClassVar[str] = "imcflow.gen.stages:crossbar_stage"
    requantizing: ClassVar[bool] = True
    weighted: ClassVar[bool] = True

    def geometry(self, layer, net) -> tuple[Shape, int, int, int]:
        """``(in_shape, kernel, stride, padding)`` of the windows the layer reads."""
        raise NotImplementedError

    def layout(self, layer, net, matrix: np.ndarray, arch):
        """``(matrix, lanes, used)``: the float ``(rows, cols)`` matrix as laid out on the
        crossbars, its ``lanes`` (None: the window's lanes in order) and the bool mask of the
        cells that hold a weight (None: all; the others stay 0 when weights are programmed with
        noise); ``matrix`` is ``weight.reshape(-1, cols)``."""
        return matrix, None, None

    def signed(self, layer, src, feeds_activations):
        if src[0]:
            raise layer.error(f"input {layer.inputs[0]!r} is a signed map (no ReLU before this "
                              f"layer); crossbar inputs are unsigned")
        return not feeds_activations

    def quantize(self, layer, ctx: QuantContext) -> QCrossbar:
        arch = ctx.arch
        in_shape, kernel, stride, padding = self.geometry(layer, ctx.net)
        matrix = np.asarray(layer.weight, np.float64).reshape(-1, ctx.net.shapes[layer.name].c)
        matrix, lanes, used = self.layout(layer, ctx.net, matrix, arch)
        codes, w_scale = quantize_weights(matrix, arch.weight_bits, ctx.weight_scales.get(layer.name))
        weight = program_weights(codes, weight_bits=arch.weight_bits, noise=arch.weight_noise,
                                 seed=arch.noise_seed, index=ctx.index)
        if used is not None:
            weight = np.where(used, weight, 0)
        if layer.name in ctx.adc_shifts:
            adc_shift = int(ctx.adc_shifts[layer.name])
        else:
            x = ctx.outs[layer.inputs[0]].reshape(-1, in_shape.h, in_shape.w, in_shape.c)
            adc_shift = choose_adc_shift(gather_lanes(windows(x, kernel, stride, padding), lanes),
                                         weight, arch, ctx.percentile)
        scale = ctx.scales[layer.name]
        unit = 2.0 ** adc_shift * ctx.scales_in(layer)[0] * w_scale  # one accumulator unit
        bits = psum_bits(arch, matrix.shape[0])
        bias = np.zeros(matrix.shape[1]) if layer.bias is None else np.asarray(layer.bias, np.float64)
        bias = np.clip(np.round(bias / unit), *signed_range(bits)).astype(np.int64)
        mult, shift = multipliers(layer, unit / scale)
        return self.qlayer(**ctx.common(layer), scale=scale, in_shape=in_shape, kernel=kernel,
                           stride=stride, padding=padding, weight=weight, weight_scale=w_scale,
                           adc_shift=adc_shift, bias=bias, mult=mult, shift=shift, psum_bits=bits,
                           lanes=lanes)

    def forward(self, q, inputs, arch):
        (x,) = inputs
        x = x.reshape(len(x), q.in_shape.h, q.in_shape.w, q.in_shape.c)
        win = gather_lanes(windows(x, q.kernel, q.stride, q.padding), q.lanes)
        y = crossbar_layer(win, q.weight, q.bias, q.mult, q.shift, signed=q.signed,
                           xbar_rows=arch.rows, encoding=arch.input_encoding,
                           act_bits=arch.act_bits, adc_bits=arch.adc_bits, adc_shift=q.adc_shift)
        return y.reshape(len(x), q.shape.h, q.shape.w, q.shape.c)

