"""Bit-exact golden model of each step an RTL block implements.

Feature maps are integer arrays ``(H, W, C)`` in raster order (row-major, channels last), the order
in which pixels travel between cores; the map functions also take a batch ``(..., H, W, C)`` and
keep the leading axes. Every function is vectorized NumPy on ``int64`` and uses the rules of
`imcflow.sw.arith` (see docs/arithmetic.md).

Window vectors use im2col order: element ``((ky * k) + kx) * C + c`` of the window of output pixel
``(oy, ox)`` is input pixel ``(oy*stride - padding + ky, ox*stride - padding + kx)``, channel ``c``,
or 0 outside the image. Crossbar weight rows follow the same order; row tile ``t`` holds rows
``[t*xbar_rows, (t+1)*xbar_rows)``.
"""

from __future__ import annotations

import numpy as np

from imcflow.sw.arith import act_range, crossbar_mvm, requantize, round_shift, saturate

__all__ = [
    "conv_output_size", "window_input_range", "line_buffer_words", "windows", "tile_slices", "crossbar_tiles", "crossbar_layer", "max_pool",
    "avg_pool", "global_avg_pool", "join",
]


def conv_output_size(n: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling along one axis of input length ``n``."""
    return (n + 2 * padding - kernel) // stride + 1


def window_input_range(h: int, w: int, kernel: int, stride: int = 1, padding: int = 0):
    """Raster indices ``(first, last)`` of the first and last input pixel inside each window.

    Arrays of length ``OH*OW`` in output raster order. A window can be emitted once input pixel
    ``last`` has arrived. Neither is monotonic in general: ``first`` drops back where several
    rows of windows clip to input row 0 (``padding > stride``), ``last`` where several clip to row
    ``H-1``; the pixels no longer needed by a window or any later one of the image are those
    before ``np.minimum.accumulate(first[::-1])[::-1]``.
    """
    oh, ow = conv_output_size(h, kernel, stride, padding), conv_output_size(w, kernel, stride, padding)
    y0 = np.clip(np.arange(oh) * stride - padding, 0, h - 1)
    x0 = np.clip(np.arange(ow) * stride - padding, 0, w - 1)
    y1 = np.clip(np.arange(oh) * stride - padding + kernel - 1, 0, h - 1)
    x1 = np.clip(np.arange(ow) * stride - padding + kernel - 1, 0, w - 1)
    first = (y0[:, None] * w + x0[None, :]).reshape(-1)
    last = (y1[:, None] * w + x1[None, :]).reshape(-1)
    return first, last


def line_buffer_words(h: int, w: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Pixels a line buffer must hold: the widest span from the oldest pixel still needed (by a
    window or a later one) to the last pixel of that window.

    ``(k-1) * W + k`` for a window fully inside the map, less where padding or a small map clips
    every window (``k = 1`` needs one pixel, ``k = W = H`` the whole map). For ``k <= min(H, W)``
    this is the widest window span ``last - first + 1``; a kernel larger than the map can need
    more, as pixels of row 0 wait for the next row of windows.
    """
    first, last = window_input_range(h, w, kernel, stride, padding)
    keep = np.minimum.accumulate(first[::-1])[::-1]
    return int((last - keep).max()) + 1


def windows(fmap, kernel: int, stride: int = 1, padding: int = 0, pad_value: int = 0):
    """All windows of ``fmap`` (..., H, W, C) in output raster order: shape ``(..., OH*OW, k*k*C)``."""
    fmap = np.asarray(fmap, dtype=np.int64)
    *lead, h, w, c = fmap.shape
    oh, ow = conv_output_size(h, kernel, stride, padding), conv_output_size(w, kernel, stride, padding)
    pad = [(0, 0)] * len(lead) + [(padding, padding), (padding, padding), (0, 0)]
    padded = np.pad(fmap, pad, constant_values=pad_value)
    out = np.empty((*lead, oh, ow, kernel, kernel, c), dtype=np.int64)
    for ky in range(kernel):
        for kx in range(kernel):
            out[..., ky, kx, :] = padded[..., ky:ky + stride * (oh - 1) + 1:stride,
                                         kx:kx + stride * (ow - 1) + 1:stride, :]
    return out.reshape(*lead, oh * ow, kernel * kernel * c)


def tile_slices(n: int, tile: int) -> list[slice]:
    """Consecutive slices of length ``tile`` covering ``range(n)`` (the last may be shorter)."""
    return [slice(start, min(start + tile, n)) for start in range(0, n, tile)]


def crossbar_tiles(x, weight, *, xbar_rows: int, encoding: str, act_bits: int, adc_bits: int,
                   adc_shift: int):
    """Per-row-tile ADC outputs of a layer whose weight matrix spans several crossbars.

    Returns int64 ``(row_tiles, ..., cols)``: what each row tile's ADCs deliver to the
    accumulator. Column tiles do not change the arithmetic (columns are independent).
    """
    x = np.asarray(x, dtype=np.int64)
    return np.stack([
        crossbar_mvm(x[..., rows], weight[rows], encoding=encoding, act_bits=act_bits,
                     adc_bits=adc_bits, adc_shift=adc_shift)
        for rows in tile_slices(weight.shape[0], xbar_rows)
    ])


def crossbar_layer(x, weight, bias, mult, shift: int, *, signed: bool, xbar_rows: int, encoding: str,
                   act_bits: int, adc_bits: int, adc_shift: int):
    """A whole conv or dense layer on window vectors ``x`` (..., rows): crossbar tiles, partial-sum
    accumulation over row tiles, bias, requantization and ReLU (``signed=False``)."""
    psum = crossbar_tiles(x, weight, xbar_rows=xbar_rows, encoding=encoding, act_bits=act_bits,
                          adc_bits=adc_bits, adc_shift=adc_shift).sum(axis=0)
    return requantize(psum + np.asarray(bias, dtype=np.int64), mult, shift, act_bits=act_bits,
                      signed=signed)


def max_pool(fmap, kernel: int, stride: int, padding: int = 0, *, pad_value: int = 0):
    """Max pooling; padded positions hold ``pad_value`` (0 for unsigned maps, the lowest code for
    signed ones)."""
    fmap = np.asarray(fmap, dtype=np.int64)
    *lead, h, w, c = fmap.shape
    oh, ow = conv_output_size(h, kernel, stride, padding), conv_output_size(w, kernel, stride, padding)
    win = windows(fmap, kernel, stride, padding, pad_value).reshape(*lead, oh, ow, kernel * kernel, c)
    return win.max(axis=-2)


def avg_pool(fmap, kernel: int, stride: int, mult: int, shift: int, *, act_bits: int,
             signed: bool = False):
    """Average pooling without padding: window sums requantized by ``mult / 2**shift`` to an
    unsigned (default) or signed ``act_bits`` map."""
    fmap = np.asarray(fmap, dtype=np.int64)
    *lead, h, w, c = fmap.shape
    oh, ow = conv_output_size(h, kernel, stride, 0), conv_output_size(w, kernel, stride, 0)
    sums = windows(fmap, kernel, stride, 0).reshape(*lead, oh, ow, kernel * kernel, c).sum(axis=-2)
    return requantize(sums, mult, shift, act_bits=act_bits, signed=signed)


def global_avg_pool(fmap, mult: int, shift: int, *, act_bits: int, signed: bool = False):
    """Global average pooling: per-channel sums requantized, as a (..., 1, 1, C) map."""
    sums = np.asarray(fmap, dtype=np.int64).sum(axis=(-3, -2), keepdims=True)
    return requantize(sums, mult, shift, act_bits=act_bits, signed=signed)


def join(a, b, mult_a: int, mult_b: int, shift: int, *, act_bits: int, signed: bool):
    """Residual add with rescaling: ``saturate(round_shift(a*mult_a + b*mult_b, shift))``."""
    total = (np.asarray(a, dtype=np.int64) * mult_a) + (np.asarray(b, dtype=np.int64) * mult_b)
    return saturate(round_shift(total, shift), *act_range(act_bits, signed))
