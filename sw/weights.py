"""The weights of a float network: He-normal initialization (`he_init`) and given arrays checked and
attached to the weighted layers (`with_weights`). The network loaders (`imcflow.sw.toml_net`,
`imcflow.sw.zoo`) use these, so they sit below `imcflow.sw.networks`, which dispatches to the
loaders.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.ir import Network

__all__ = ["he_init", "with_weights"]


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
