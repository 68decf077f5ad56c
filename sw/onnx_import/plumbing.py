"""The ONNX nodes that make no IR layer of their own.

Each handler takes the `~imcflow.sw.onnx_import.importer.Importer` and the node:
BatchNormalization is folded into the conv before it, Identity and Dropout (inference) pass
their input on, Constant becomes a constant tensor.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from onnx import numpy_helper

from imcflow.sw.onnx_import.constants import Param
from imcflow.sw.onnx_import.graph import Node

__all__ = ["batch_norm", "identity", "dropout", "constant"]


def batch_norm(imp, node: Node) -> None:
    a = node.allow("epsilon", "momentum", "spatial", "training_mode")
    if a.get("training_mode", 0) or a.get("spatial", 1) != 1:
        raise node.error("training_mode=1 and spatial=0 are not supported (inference, per channel)")
    x = imp.map_input(node)
    conv = x.fold
    if conv is None or imp.uses[node.inputs[0]] != 1:
        raise node.error("only a BatchNormalization right after a Conv whose output feeds "
                         "nothing else is supported (it is folded into the Conv)")
    if conv.name in imp.weight_scales:
        raise node.error(f"cannot be folded into the quantized Conv {conv.name!r} (its weight "
                         f"codes would change); fold it before quantizing")
    params = [imp.param(node, i) for i in range(1, 5)]
    if any(p.shape not in (None, (x.shape[0],)) for p in params):
        raise node.error(f"scale, bias, mean and var must have one value per channel ({x.shape[0]})")
    if conv.weight is None or any(p.value is None for p in params):
        conv.weight = conv.bias = None
    else:
        gamma, beta, mean, var = (np.array(p.value, dtype=np.float64) for p in params)
        scale = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
        conv.weight = conv.weight * scale
        conv.bias = ((0.0 if conv.bias is None else conv.bias) - mean) * scale + beta
    imp.set(node, dataclasses.replace(x, nonneg=False))


def identity(imp, node: Node) -> None:
    node.allow()
    imp.set(node, imp.operand(node, 0))


def dropout(imp, node: Node) -> None:
    node.allow("ratio", "seed")   # opset <= 11 gives the ratio as an attribute
    mode = imp.param(node, 2, optional=True)
    if mode is not None and (mode.value is None or bool(np.ravel(mode.value)[0])):
        raise node.error("training_mode must be a constant false (inference only)")
    if len(node.outputs) > 1 and imp.uses[node.outputs[1]]:
        raise node.error("the mask output is not supported")
    imp.set(node, imp.value(node))


def constant(imp, node: Node) -> None:
    a = node.allow("value", "value_float", "value_floats", "value_int", "value_ints")
    ((key, value),) = a.items()
    value = numpy_helper.to_array(value) if key == "value" else np.array(value)
    imp.set(node, Param(value.shape, value))
