"""Finding a network by name: the zoo, a TOML or an ONNX file; weights, calibration images,
quantization.

`load_network` accepts a zoo name (`imcflow.sw.zoo.names`) or a path ending in ``.toml`` or
``.onnx``. `load_qnetwork` also quantizes it for an architecture, calibrating on the training
images of a zoo network's data set and on seeded random images otherwise (a QDQ ONNX model keeps
its own scales, `imcflow.sw.onnx_import.quantize_onnx`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.ir import Network

__all__ = ["he_init", "with_weights", "load_network", "calibration_images", "load_qnetwork",
           "CALIBRATION_IMAGES", "RANDOM_CALIBRATION_IMAGES"]

#: training images used to calibrate scales and ADC shifts
CALIBRATION_IMAGES = 64
#: random images used instead for a network without a data set
RANDOM_CALIBRATION_IMAGES = 16


def _weighted(net: Network):
    return [l for l in net if l.op.weighted]


def he_init(net: Network, seed: int = 0) -> Network:
    """A copy of ``net`` with He-normal weights (std ``sqrt(2 / fan_in)``) and zero biases, drawn
    in layer order from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    params = {}
    for layer in _weighted(net):
        in_shape = net.shapes[layer.inputs[0]]
        rows, cols = layer.op.fan_in(layer, in_shape), net.shapes[layer.name].c
        w = rng.normal(0.0, np.sqrt(2.0 / rows), (rows, cols))
        params[f"{layer.name}.weight"] = w.reshape(layer.op.weight_shape(layer, in_shape))
        params[f"{layer.name}.bias"] = np.zeros(cols)
    return with_weights(net, params)


def with_weights(net: Network, params: dict[str, np.ndarray]) -> Network:
    """A copy of ``net`` whose conv and dense layers take ``<name>.weight`` and the optional
    ``<name>.bias`` from ``params``; a missing weight, an unused array or one that holds anything
    but finite numbers is a `UserError`."""
    layers, used = [], set()
    for layer in net:
        if layer.op.weighted:
            key = f"{layer.name}.weight"
            if key not in params:
                raise UserError(f"weights: no array {key!r} for the {layer.kind} layer")
            bias = f"{layer.name}.bias"
            used |= {key, bias}
            layer = dataclasses.replace(layer, weight=_finite(key, params[key]),
                                        bias=_finite(bias, params[bias]) if bias in params else None)
        layers.append(layer)
    unused = sorted(set(params) - used)
    if unused:
        raise UserError(f"weights: array {unused[0]!r} belongs to no conv or dense layer "
                        f"(names are <layer>.weight and <layer>.bias)")
    return Network(net.name, layers)


def _finite(name: str, array) -> np.ndarray:
    """``array`` as float64, or a `UserError` naming it if it holds no numbers or NaN/Inf."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise UserError(f"weights: array {name!r} must hold numbers, not {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise UserError(f"weights: array {name!r} has NaN or infinite values")
    return array


def load_network(spec: str | Path) -> Network:
    """The float network named by ``spec``: a zoo name, a ``.toml`` or an ``.onnx`` path."""
    from imcflow.sw import zoo
    if str(spec) in zoo.names():
        return zoo.network(str(spec))
    if str(spec).endswith(".toml"):
        from imcflow.sw.toml_net import load_toml
        return load_toml(spec)
    if str(spec).endswith(".onnx"):
        from imcflow.sw.onnx_import import import_onnx
        return import_onnx(spec).network
    raise UserError(f"--network: {str(spec)!r} is neither a zoo network ({', '.join(zoo.names())}) "
                    f"nor a .toml or .onnx file")


def calibration_images(net: Network, dataset=None, count: int | None = None,
                       seed: int = 0) -> np.ndarray:
    """8-bit calibration images for ``net``: the first ``count`` (default `CALIBRATION_IMAGES`)
    training images of ``dataset`` (a `imcflow.sw.zoo.Dataset`), or ``count`` (default
    `RANDOM_CALIBRATION_IMAGES`) seeded uniformly random images without one."""
    if dataset is not None:
        return dataset.train_images[:count or CALIBRATION_IMAGES]
    count = count or RANDOM_CALIBRATION_IMAGES
    s = net.shapes[net.input.name]
    return np.random.default_rng(seed).integers(0, 256, (count, s.h, s.w, s.c), dtype=np.int64)


def load_qnetwork(spec, arch=None, images=None):
    """``spec`` loaded (a `Network`, zoo name, .toml or .onnx path) and quantized for ``arch`` (an
    `Arch`, preset name, TOML path or None for the default) on the 8-bit calibration ``images``
    (default: its `calibration_images`)."""
    from imcflow.sw import zoo
    from imcflow.sw.arch import load_arch
    from imcflow.sw.quant import quantize
    if not isinstance(spec, Network) and str(spec).endswith(".onnx"):
        from imcflow.sw.onnx_import import import_onnx, quantize_onnx
        return quantize_onnx(import_onnx(spec), load_arch(arch), images)
    net = spec if isinstance(spec, Network) else load_network(spec)
    dataset = zoo.dataset(str(spec)) if str(spec) in zoo.names() else None
    images = calibration_images(net, dataset) if images is None else images
    return quantize(net, load_arch(arch), images)
