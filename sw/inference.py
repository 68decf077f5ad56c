"""Inference of a whole network: the bit-exact integer golden model and the float reference.

`run` and `trace` evaluate a quantized network (`imcflow.sw.quant.QNetwork`) on a batch of 8-bit
images, layer by layer, composing only the block functions of `imcflow.sw.golden` and the rules
of `imcflow.sw.arith`: windows in line-buffer (im2col) order, crossbar MVMs per row tile with
``pwm`` or ``bit_serial`` input, the ADC with its gain shift, partial-sum accumulation, bias,
requantization with ReLU, pooling and the residual join (docs/arithmetic.md). A Dense layer is the
``H x H`` window of the map before its Flatten (or the 1x1 window of a ``1 x 1 x C`` vector).

`float_run` and `float_trace` evaluate the float network for the float accuracy.
Feature maps are ``(N, H, W, C)`` arrays: a batch of images in raster order, channels last.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from imcflow.errors import UserError
from imcflow.sw.arith import act_range, round_shift, saturate
from imcflow.sw.golden import avg_pool, crossbar_layer, global_avg_pool, join, max_pool, windows
from imcflow.sw.ir import Add, AvgPool, Conv2d, Dense, Flatten, GlobalAvgPool, Input, MaxPool, Network, ReLU

__all__ = ["run", "trace", "layer_forward", "check_images", "float_run", "float_trace"]

#: images per chunk in `run` (bounds the memory of the window arrays)
RUN_BATCH = 256


def check_images(shape, images) -> np.ndarray:
    """``images`` as an int64 ``(N, H, W, C)`` array of 8-bit pixels for an input ``shape``."""
    images = np.asarray(images)
    expect = (shape.h, shape.w, shape.c)
    if images.ndim != 4 or images.shape[1:] != expect:
        raise UserError(f"images: expected an (N, {', '.join(map(str, expect))}) array, "
                        f"not shape {images.shape}")
    if not np.issubdtype(images.dtype, np.integer):
        raise UserError(f"images: expected integer pixels in 0..255, not dtype {images.dtype}")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise UserError(f"images: pixels must be in 0..255, found {images.min()}..{images.max()}")
    return images.astype(np.int64)


def layer_forward(q, inputs: list[np.ndarray], arch) -> np.ndarray:
    """Integer output ``(N, H, W, C)`` of one quantized layer ``q`` on its integer ``inputs``."""
    return _FORWARD[q.kind](q, *inputs, arch=arch)


def trace(qnet, images) -> dict[str, np.ndarray]:
    """Integer output ``(N, H, W, C)`` of every layer of ``qnet`` on 8-bit ``images`` (N, H, W, C)."""
    images = check_images(qnet.network.shapes[qnet.input.name], images)
    out: dict[str, np.ndarray] = {}
    for q in qnet.layers:
        args = [images] if q.kind == "input" else [out[s] for s in q.inputs]
        out[q.name] = layer_forward(q, args, qnet.arch)
    return out


def run(qnet, images) -> np.ndarray:
    """Integer outputs (logits) ``(N, classes)`` of ``qnet`` on 8-bit ``images`` (N, H, W, C)."""
    images = check_images(qnet.network.shapes[qnet.input.name], images)
    out = np.zeros((len(images), qnet.output.shape.size), dtype=np.int64)
    for i in range(0, len(images), RUN_BATCH):
        chunk = trace(qnet, images[i:i + RUN_BATCH])[qnet.output.name]
        out[i:i + len(chunk)] = chunk.reshape(len(chunk), -1)
    return out


# integer layers ---------------------------------------------------------------------------------

def _input(q, x, *, arch):
    # 8-bit pixels to unsigned act_bits codes (the identity for act_bits = 8)
    return saturate(round_shift(x, q.shift), *act_range(arch.act_bits, False))


def _crossbar(q, x, *, arch):
    x = x.reshape(len(x), q.in_shape.h, q.in_shape.w, q.in_shape.c)
    win = windows(x, q.kernel, q.stride, q.padding)
    y = crossbar_layer(win, q.weight, q.bias, q.mult, q.shift, signed=q.signed, xbar_rows=arch.rows,
                       encoding=arch.input_encoding, act_bits=arch.act_bits, adc_bits=arch.adc_bits,
                       adc_shift=q.adc_shift)
    return y.reshape(len(x), q.shape.h, q.shape.w, q.shape.c)


def _add(q, a, b, *, arch):
    return join(a, b, q.mult_a, q.mult_b, q.shift, act_bits=arch.act_bits, signed=q.signed)


def _max_pool(q, x, *, arch):
    return max_pool(x, q.kernel, q.stride, q.padding, pad_value=q.pad_value)


def _avg_pool(q, x, *, arch):
    return avg_pool(x, q.kernel, q.stride, q.mult, q.shift, act_bits=arch.act_bits, signed=q.signed)


def _global_avg_pool(q, x, *, arch):
    return global_avg_pool(x, q.mult, q.shift, act_bits=arch.act_bits, signed=q.signed)


def _flatten(q, x, *, arch):
    return x.reshape(len(x), 1, 1, -1)


def _relu(q, x, *, arch):
    # the ReLU is the unsigned saturation of the layer that produced x (see quant.py)
    return x


_FORWARD = {
    "input": _input, "conv": _crossbar, "dense": _crossbar, "add": _add, "maxpool": _max_pool,
    "avgpool": _avg_pool, "global_avg_pool": _global_avg_pool, "flatten": _flatten, "relu": _relu,
}


# float reference --------------------------------------------------------------------------------

def _sliding(x, kernel, stride, padding, pad_value=0.0):
    """Windows of a float batch as ``(N, OH, OW, C, k, k)``."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), constant_values=pad_value)
    return sliding_window_view(x, (kernel, kernel), axis=(1, 2))[:, ::stride, ::stride]


def _float_layer(layer, xs):
    if isinstance(layer, Conv2d):
        win = _sliding(xs[0], layer.kernel, layer.stride, layer.padding)
        y = np.tensordot(win, np.asarray(layer.weight, np.float64), axes=([3, 4, 5], [2, 0, 1]))
        return y + (0.0 if layer.bias is None else layer.bias)
    if isinstance(layer, Dense):
        x = xs[0].reshape(len(xs[0]), -1)
        y = x @ np.asarray(layer.weight, np.float64) + (0.0 if layer.bias is None else layer.bias)
        return y.reshape(len(x), 1, 1, -1)
    if isinstance(layer, ReLU):
        return np.maximum(xs[0], 0.0)
    if isinstance(layer, MaxPool):
        return _sliding(xs[0], layer.kernel, layer.stride, layer.padding, -np.inf).max(axis=(4, 5))
    if isinstance(layer, AvgPool):
        return _sliding(xs[0], layer.kernel, layer.stride, 0).mean(axis=(4, 5))
    if isinstance(layer, GlobalAvgPool):
        return xs[0].mean(axis=(1, 2), keepdims=True)
    if isinstance(layer, Add):
        return xs[0] + xs[1]
    if isinstance(layer, Flatten):
        return xs[0].reshape(len(xs[0]), 1, 1, -1)
    raise UserError(f"layer {layer.name!r} ({layer.kind}): not supported by the float reference")


def float_trace(net: Network, x) -> dict[str, np.ndarray]:
    """Float output ``(N, H, W, C)`` of every layer of ``net`` on float inputs ``x`` (N, H, W, C)."""
    s = net.shapes[net.input.name]
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or x.shape[1:] != (s.h, s.w, s.c):
        raise UserError(f"inputs: expected an (N, {s.h}, {s.w}, {s.c}) array, not shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise UserError("inputs: has NaN or infinite values")
    for layer in net:
        if isinstance(layer, (Conv2d, Dense)) and layer.weight is None:
            raise layer.error("has no weights (a topology only network cannot be evaluated)")
    out: dict[str, np.ndarray] = {}
    for layer in net:
        out[layer.name] = x if isinstance(layer, Input) else \
            _float_layer(layer, [out[s] for s in layer.inputs])
    return out


def float_run(net: Network, x) -> np.ndarray:
    """Float outputs ``(N, classes)`` of ``net`` on float inputs ``x`` (N, H, W, C)."""
    y = float_trace(net, x)[net.output.name]
    return y.reshape(len(y), -1)
