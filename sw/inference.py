"""Inference of a whole network: the bit-exact integer golden model and the float reference.

`run` and `trace` evaluate a quantized network (`imcflow.sw.quant.QNetwork`) on a batch of 8-bit
images, layer by layer through each kind's golden forward (`imcflow.sw.ops.Op.forward`), composing only the block functions of `imcflow.sw.golden` and the rules
of `imcflow.sw.arith`: windows in line-buffer (im2col) order, crossbar MVMs per row tile with
``pwm`` or ``bit_serial`` input, the ADC with its gain shift, partial-sum accumulation, bias,
requantization with ReLU, pooling and the residual join (docs/arithmetic.md). A Dense layer is the
``H x H`` window of the map before its Flatten (or the 1x1 window of a ``1 x 1 x C`` vector).

`float_run` and `float_trace` evaluate the float network for the float accuracy.
Feature maps are ``(N, H, W, C)`` arrays: a batch of images in raster order, channels last.
"""

from __future__ import annotations

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.ir import Network

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
    """Integer output ``(N, H, W, C)`` of one quantized layer ``q`` on its integer ``inputs`` (its
    op's golden forward, `imcflow.sw.ops.Op.forward`)."""
    return q.op.forward(q, inputs, arch)


def trace(qnet, images) -> dict[str, np.ndarray]:
    """Integer output ``(N, H, W, C)`` of every layer of ``qnet`` on 8-bit ``images`` (N, H, W, C)."""
    images = check_images(qnet.network.shapes[qnet.input.name], images)
    out: dict[str, np.ndarray] = {}
    for q in qnet.layers:
        args = [images] if not q.inputs else [out[s] for s in q.inputs]
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


# float reference --------------------------------------------------------------------------------

def float_trace(net: Network, x) -> dict[str, np.ndarray]:
    """Float output ``(N, H, W, C)`` of every layer of ``net`` on float inputs ``x`` (N, H, W, C)."""
    s = net.shapes[net.input.name]
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or x.shape[1:] != (s.h, s.w, s.c):
        raise UserError(f"inputs: expected an (N, {s.h}, {s.w}, {s.c}) array, not shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise UserError("inputs: has NaN or infinite values")
    for layer in net:
        if layer.op.weighted and layer.weight is None:
            raise layer.error("has no weights (a topology only network cannot be evaluated)")
    out: dict[str, np.ndarray] = {}
    for layer in net:
        out[layer.name] = layer.op.float_forward(layer, [out[s] for s in layer.inputs] or [x])
    return out


def float_run(net: Network, x) -> np.ndarray:
    """Float outputs ``(N, classes)`` of ``net`` on float inputs ``x`` (N, H, W, C)."""
    y = float_trace(net, x)[net.output.name]
    return y.reshape(len(y), -1)
