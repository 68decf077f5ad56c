"""QDQ models: the quantization an ONNX model carries, and a `QNetwork` from an imported model.

A QDQ model (onnxruntime's static quantizer) quantizes activations with QuantizeLinear /
DequantizeLinear pairs and stores weights as integer codes read by a DequantizeLinear. The
handlers here follow those pairs through the graph (`quantize_linear`, `dequantize_linear`),
keep each layer's weight codes (`record_codes`) and give the model's scales once the network is
built (`scales`). `quantize_onnx` turns an imported model into a `QNetwork`, by calibration or
with the model's own scales.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.arch import Arch
from imcflow.sw.arith import weight_range
from imcflow.sw.calibration import calibration_images
from imcflow.sw.ir import Layer, Network
from imcflow.sw.onnx_import.constants import Param
from imcflow.sw.onnx_import.graph import Node
from imcflow.sw.onnx_import.shapes import Quant, Value
from imcflow.sw.quant import QNetwork, from_scales, output_signed, quantize

if TYPE_CHECKING:
    from imcflow.sw.onnx_import.importer import OnnxModel

__all__ = ["quantize_onnx", "quantize_linear", "dequantize_linear", "record_codes", "scales"]


def quantize_onnx(model: OnnxModel, arch: Arch, images=None) -> QNetwork:
    """The `QNetwork` of an imported model for ``arch``.

    A float model is quantized by calibration on the 8-bit ``images`` (N, H, W, C) (default:
    `imcflow.sw.calibration.calibration_images`); a QDQ model keeps its own activation and weight
    scales, and the images only choose the ADC gain shifts.
    """
    net = model.network
    images = calibration_images(net) if images is None else images
    if not model.qdq:
        return quantize(net, arch, images)
    if arch.act_bits != 8:
        raise UserError(f"arch.act_bits: a QDQ model has 8-bit activations; it needs act_bits = 8, "
                        f"not {arch.act_bits}")
    top = weight_range(arch.weight_bits)[1]
    for name, peak in model.weight_peaks.items():
        if peak > top:
            raise UserError(f"arch.weight_bits: the weight codes of layer {name!r} reach {peak}; "
                            f"{arch.weight_bits} bits hold up to {top} (use weight_bits >= "
                            f"{peak.bit_length() + 1})")
    return from_scales(net, arch, model.scales, input_scale=model.input_scale,
                       weight_scales=model.weight_scales, calibration=images)


# the handlers -----------------------------------------------------------------------------------

def quantize_linear(imp, node: Node) -> None:
    node.allow("axis", "saturate")
    x = imp.operand(node, 0)
    if isinstance(x, Param):
        raise node.error("quantizing a constant is not supported (weights are integer "
                         "initializers read by a DequantizeLinear: AddQDQPairToWeight=False)")
    scale, zp = imp.param(node, 1), imp.param(node, 2, optional=True)
    if scale.value is None or scale.value.size != 1 or (zp is not None and zp.value is None):
        raise node.error("activations need one constant scale and zero point per tensor")
    dtype = np.dtype(np.uint8) if zp is None else zp.value.dtype
    z = 0 if zp is None else int(np.ravel(zp.value)[0])
    if dtype not in (np.uint8, np.int8):
        raise node.error(f"{dtype} activations are not supported (8-bit: uint8 or int8)")
    lo, mid = int(np.iinfo(dtype).min), int(np.iinfo(dtype).min) + 128
    if x.layer == imp.input.name and z != lo:
        raise node.error(f"zero point {z} is not supported for the network input (8-bit pixels: "
                         f"unsigned codes, zero point {lo} for {dtype})")
    if z not in (lo, mid):
        raise node.error(f"zero point {z} is not supported ({lo} for unsigned, {mid} for signed "
                         f"{dtype} codes: quantize with activation_type=QuantType.QUInt8 and "
                         f"extra_options={{'ActivationRestrictedAsymmetric': True}})")
    if z == lo and not x.nonneg:
        x = imp.relu(node, x)  # clamping at the lowest code, real value 0, is a ReLU
    quant = Quant(float(np.ravel(scale.value)[0]), z, node.name)
    known = imp.quant.setdefault(x.layer, quant)
    if (known.scale, known.zero_point) != (quant.scale, quant.zero_point):
        raise node.error(f"quantizes the output of layer {x.layer!r} differently from "
                         f"{known.node!r}; one quantization per tensor is supported")
    imp.set(node, dataclasses.replace(x, fold=None, quant=quant))


def dequantize_linear(imp, node: Node) -> None:
    a = node.allow("axis")
    x, scale, zp = imp.operand(node, 0), imp.param(node, 1), imp.param(node, 2, optional=True)
    if isinstance(x, Value):
        q = x.quant
        if q is None:
            raise node.error(f"input {node.inputs[0]!r} comes from no QuantizeLinear")
        z = 0 if zp is None or zp.value is None else int(np.ravel(zp.value)[0])
        if scale.value is None or (float(np.ravel(scale.value)[0]), z) != (q.scale, q.zero_point):
            raise node.error(f"scale or zero point differs from its QuantizeLinear {q.node!r}")
        imp.set(node, dataclasses.replace(x, quant=None))
        return
    if x.value is None or scale.value is None or (zp is not None and zp.value is None):
        imp.set(node, Param(x.shape, None))
        return
    codes = x.value.astype(np.int64)
    axis = a.get("axis", 1) % max(codes.ndim, 1)
    s = np.array(scale.value, dtype=np.float64).reshape(-1)
    z = np.zeros(1, np.int64) if zp is None else zp.value.astype(np.int64).reshape(-1)
    along = [-1 if i == axis else 1 for i in range(codes.ndim)] if s.size > 1 else [1] * codes.ndim
    value = (codes - z.reshape(along if z.size > 1 else [1] * codes.ndim)) * s.reshape(along)
    imp.set(node, Param(x.shape, value, (codes, s, z, axis)))


def record_codes(imp, node: Node, layer: Layer, weight: Param, axis: int, alpha: float = 1.0):
    """Keep the weight scales of a layer whose weights were dequantized from integer codes;
    ``axis`` is the output-channel axis of the ONNX weight (the layer kinds call it as
    ``importer.record_codes``)."""
    if weight.codes is None:
        return
    q, scale, zero_point, q_axis = weight.codes
    if np.any(zero_point != 0):
        raise node.error("weight zero points must be 0 (symmetric weights)")
    cols = imp.shapes[layer.name].c
    if scale.size != 1 and (q_axis != axis or scale.size != cols):
        raise node.error(f"weight scales along axis {q_axis} are not supported (one per tensor "
                         f"or one per output channel, axis {axis})")
    imp.weight_scales[layer.name] = np.broadcast_to(np.abs(alpha) * scale.reshape(-1), (cols,)).copy()
    imp.weight_peaks[layer.name] = int(np.abs(q).max(initial=0))


# the model's scales -----------------------------------------------------------------------------

def scales(imp, net: Network) -> tuple[float, dict[str, float]]:
    """``(input scale, scale of every requantizing layer)`` of a QDQ model: each from the
    QuantizeLinear of the layer's hardware output (its fused ReLU's, for an unsigned layer)."""
    signed = output_signed(net)
    if net.input.name not in imp.quant:
        raise UserError(f"onnx model {imp.name!r}: a QDQ model must quantize its input "
                        f"{net.input.name!r} (a QuantizeLinear)")
    found, scale_of = {}, {}
    for layer in net:
        q = imp.quant.get(layer.name)
        if layer.op.weighted and layer.name not in imp.weight_scales:
            raise UserError(f"onnx model {imp.name!r}: {layer.kind} node {layer.name!r} has float "
                            f"weights; a QDQ model needs integer weights read by a DequantizeLinear")
        if layer.op.requantizing:
            q = (None if signed[layer.name] else _relu_quant(imp, net, layer.name)) or q
            if q is None:
                raise UserError(f"onnx model {imp.name!r}: the output of {layer.kind} node "
                                f"{layer.name!r} has no QuantizeLinear; a QDQ model quantizes the "
                                f"output of every Conv, Gemm, MatMul, Add and average pool")
            found[layer.name] = scale_of[layer.name] = q.scale
            continue
        scale_of[layer.name] = imp.quant[layer.name].scale if not layer.inputs \
            else scale_of[layer.inputs[0]]
        if q is not None and not math.isclose(q.scale, scale_of[layer.name], rel_tol=1e-6):
            raise UserError(f"onnx node {q.node!r} (QuantizeLinear): scale {q.scale:.6g} differs "
                            f"from the scale {scale_of[layer.name]:.6g} of the {layer.kind} codes "
                            f"it quantizes; only Conv, Gemm, MatMul, Add and average pools "
                            f"requantize")
    return imp.quant[net.input.name].scale, found


def _relu_quant(imp, net: Network, name: str) -> Quant | None:
    """The quantization of the first activation (a ReLU) reached from layer ``name`` through
    passthrough layers (max pools, flattens)."""
    for consumer in net.consumers(name):
        if consumer.op.activation and consumer.name in imp.quant:
            return imp.quant[consumer.name]
        if consumer.op.passthrough:
            found = _relu_quant(imp, net, consumer.name)
            if found is not None:
                return found
    return None
