"""Import of ONNX CNNs into the network IR: float models and QDQ-quantized models.

`import_onnx` reads an NCHW model (opset >= 11) into an `OnnxModel`: the float `Network` (conv
weights transposed from OIHW to HWIO, BatchNormalization folded into the conv before it, the
rows of a Gemm or MatMul after a Flatten permuted from the CHW to the IR's HWC order) and, for a
QDQ model (QuantizeLinear/DequantizeLinear pairs as onnxruntime's static quantizer writes them),
the model's own activation and weight scales. `quantize_onnx` turns it into a `QNetwork`: a
float model by calibration (`imcflow.sw.quant.quantize`), a QDQ model with its own scales
(`imcflow.sw.quant.from_scales`). docs/onnx.md lists the supported ops and attributes, the zero
point rules and how closely the golden model follows onnxruntime.

A model without weight values (weights as graph inputs with shapes, or missing external data)
imports as a topology, enough for the mapper. An unsupported op, attribute or form is a one-line
`UserError` naming the node, the op and what is supported.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from imcflow.errors import UserError
from imcflow.sw.arch import Arch
from imcflow.sw.calibration import calibration_images
from imcflow.sw.arith import weight_range
from imcflow.sw.ir import Input, Layer, Network, ReLU, Shape
from imcflow.sw.ops import registry
from imcflow.sw.quant import QNetwork, from_scales, output_signed, quantize

__all__ = ["OnnxModel", "import_onnx", "quantize_onnx", "SUPPORTED_OPS", "MIN_OPSET"]

#: lowest opset of the default domain that is read
MIN_OPSET = 11


@dataclass(frozen=True, eq=False)
class OnnxModel:
    """An imported ONNX model.

    Attributes
    ----------
    network : the float `Network`; conv and dense weights are None in a topology-only model
    input_scale : real value of one input code (QDQ models; None for float models)
    scales : output scale of every conv, dense, add, avgpool and global_avg_pool (QDQ models)
    weight_scales : per-output-channel weight scale of every conv and dense (QDQ models)
    weight_peaks : largest weight code magnitude of every conv and dense (QDQ models)
    """

    network: Network
    input_scale: float | None = None
    scales: dict[str, float] = field(default_factory=dict)
    weight_scales: dict[str, np.ndarray] = field(default_factory=dict)
    weight_peaks: dict[str, int] = field(default_factory=dict)

    @property
    def qdq(self) -> bool:
        """Whether the model carries its own quantization (QuantizeLinear/DequantizeLinear)."""
        return self.input_scale is not None


def import_onnx(source) -> OnnxModel:
    """Import ``source``, a path to an ``.onnx`` file or an `onnx.ModelProto`.

    External weight data is read from the model's directory; missing files leave the weights
    out (a topology). Raises `UserError` for an unreadable file or an unsupported model.
    """
    if isinstance(source, onnx.ModelProto):
        return _Importer(source, None, source.graph.name or "onnx").run()
    path = Path(source)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except OSError as e:
        raise UserError(f"--network: cannot read {str(path)!r}: {e.strerror or e}") from None
    except DecodeError as e:
        raise UserError(f"--network: {path.name} is not an ONNX model ({e})") from None
    return _Importer(model, path.parent, path.stem).run()


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


# the graph walk ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Param:
    """A constant tensor: its ``shape`` (None when unknown) and ``value`` (None without data);
    ``codes`` = ``(q, scale, zero_point, axis)`` when it was dequantized from integers."""

    shape: tuple | None
    value: np.ndarray | None
    codes: tuple | None = None


@dataclass(frozen=True)
class _Quant:
    """The quantization of an activation tensor by QuantizeLinear node ``node``."""

    scale: float
    zero_point: int
    node: str


@dataclass(frozen=True)
class _Value:
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
    quant: _Quant | None = None


class _Node:
    """A node with its (possibly generated) name, decoded attributes and one-line errors."""

    def __init__(self, index: int, proto: onnx.NodeProto):
        self.name = proto.name or f"{proto.op_type}_{index}"
        self.op = proto.op_type
        self.domain = proto.domain or "ai.onnx"
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self.attrs = {a.name: _decode(helper.get_attribute_value(a)) for a in proto.attribute}

    def error(self, message: str) -> UserError:
        return UserError(f"onnx node {self.name!r} ({self.op}): {message}")

    def allow(self, *names: str) -> dict:
        """The attributes, after checking that each is one of ``names``."""
        for name in self.attrs:
            if name not in names:
                raise self.error(f"attribute {name!r} is not supported (supported: "
                                 f"{', '.join(names) or 'none'})")
        return self.attrs


def _decode(value):
    return value.decode() if isinstance(value, bytes) else value


def _dims(info: onnx.ValueInfoProto) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in info.type.tensor_type.shape.dim]


def _initializer(tensor: onnx.TensorProto, base_dir: Path | None) -> _Param:
    """The initializer ``tensor`` with its value (None when its external data file is missing).

    External data must lie inside ``base_dir`` (the model's folder) and hold the whole tensor;
    float values must be finite. Anything else is a `UserError` naming the tensor.
    """
    where = f"onnx initializer {tensor.name!r}"
    dims = tuple(tensor.dims)
    if tensor.data_location == TensorProto.EXTERNAL:
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if base_dir is None:
            return _Param(dims, None)
        root = base_dir.resolve()
        path = (root / location).resolve()
        if not path.is_relative_to(root) or path == root:
            raise UserError(f"{where}: external data {location!r} is outside the model's folder "
                            f"{str(base_dir)!r}")
        if not path.is_file():
            return _Param(dims, None)
        try:
            offset = int(info.get("offset", 0))
            need = math.prod(dims) * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
            length = int(info.get("length", need))
        except (ValueError, TypeError, KeyError) as e:
            raise UserError(f"{where}: unreadable external data entry ({e})") from None
        available = max(path.stat().st_size - offset, 0)
        if length != need or available < need:
            raise UserError(f"{where}: external data {location} holds {min(length, available)} "
                            f"bytes from offset {offset}; the {list(dims)} tensor needs {need}")
        external_data_helper.load_external_data_for_tensor(tensor, str(base_dir))
    try:
        value = numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as e:
        raise UserError(f"{where}: unreadable data ({e})") from None
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise UserError(f"{where}: has NaN or infinite values")
    return _Param(dims, value)


def _needed(nodes: list[_Node], output: str) -> list[_Node]:
    """The nodes the output depends on, in graph order."""
    needed, kept = {output}, []
    for node in reversed(nodes):
        if needed.intersection(node.outputs):
            kept.append(node)
            needed.update(node.inputs)
    return kept[::-1]


def _f64(array):
    return None if array is None else np.array(array, dtype=np.float64)


def _chw(shape: Shape) -> tuple:
    return (shape.c, shape.h, shape.w)


class _Importer:
    def __init__(self, model: onnx.ModelProto, base_dir: Path | None, name: str):
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
        if opset is None or opset < MIN_OPSET:
            raise UserError(f"onnx model {name!r}: opset {opset} is not supported (opset >= {MIN_OPSET})")
        graph = model.graph
        if len(graph.output) != 1:
            raise UserError(f"onnx model {name!r}: has {len(graph.output)} outputs; one is supported")
        self.name = name
        self.output = graph.output[0].name
        self.params = {t.name: _initializer(t, base_dir) for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in self.params]
        if not inputs:
            raise UserError(f"onnx model {name!r}: has no input")
        self.input, *extra = inputs
        for info in extra:  # weights without values (export_params=False)
            dims = _dims(info)
            self.params[info.name] = _Param(tuple(dims) if all(isinstance(d, int) for d in dims)
                                            else None, None)
        self.nodes = _needed([_Node(i, n) for i, n in enumerate(graph.node)], self.output)
        self.uses = Counter(t for n in self.nodes for t in n.inputs if t)
        self.uses[self.output] += 1
        self.values: dict[str, _Value] = {}
        self.layers: list[Layer] = []
        self.shapes: dict[str, Shape] = {}
        self.quant: dict[str, _Quant] = {}
        self.weight_scales: dict[str, np.ndarray] = {}
        self.weight_peaks: dict[str, int] = {}

    def run(self) -> OnnxModel:
        dims = _dims(self.input)
        if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            raise UserError(f"onnx model {self.name!r}: input {self.input.name!r} has shape "
                            f"{dims}; an NCHW image (N, C, H, W) with fixed C, H, W is needed")
        c, h, w = dims[1:]
        layer = self.add(Input(self.input.name, Shape(h, w, c)))
        self.values[self.input.name] = _Value(layer.name, (c, h, w), nonneg=True)
        handlers = _handlers()
        for node in self.nodes:
            if node.op not in handlers or node.domain not in _DOMAINS.get(node.op, ("ai.onnx",)):
                op = node.op if node.domain == "ai.onnx" else f"{node.domain}.{node.op}"
                raise node.error(f"op {op} is not supported; supported: {', '.join(SUPPORTED_OPS)}")
            handlers[node.op](self, node)
        if self.output not in self.values:
            raise UserError(f"onnx model {self.name!r}: the output {self.output!r} is not a feature "
                            f"map or vector computed from the input")
        net = Network(self.name, self.layers)
        return self.quantization(net) if self.quant else OnnxModel(net)

    # helpers -----------------------------------------------------------------------------------

    def add(self, layer: Layer) -> Layer:
        base, i = layer.name, 1
        while layer.name in self.shapes:  # a node named like the input or another layer
            layer.name, i = f"{base}_{i}", i + 1
        layer.check()
        self.shapes[layer.name] = layer.infer([self.shapes[s] for s in layer.inputs])
        self.layers.append(layer)
        return layer

    def set(self, node: _Node, value) -> None:
        (self.params if isinstance(value, _Param) else self.values)[node.outputs[0]] = value

    def emit(self, node: _Node, layer: Layer, *, shape: tuple | None = None, nonneg: bool = False,
             chw: tuple | None = None, fold: Layer | None = None) -> None:
        """Make IR ``layer`` the value of ``node``'s output: a map of ONNX ``shape`` (by default
        the (C, H, W) of the layer's output) or a vector, with the `_Value` flags."""
        shape = _chw(self.shapes[layer.name]) if shape is None else shape
        self.set(node, _Value(layer.name, shape, nonneg, chw, fold))

    @staticmethod
    def derive(value: _Value, **changes) -> _Value:
        """``value`` with some of its `_Value` fields changed."""
        return dataclasses.replace(value, **changes)

    @staticmethod
    def is_map(operand) -> bool:
        """Whether an operand is a feature map or vector (not a constant)."""
        return isinstance(operand, _Value)

    def operand(self, node: _Node, i: int):
        name = node.inputs[i] if i < len(node.inputs) else ""
        if name in self.values:
            return self.values[name]
        if name in self.params:
            return self.params[name]
        if not name:
            raise node.error(f"input {i} is missing")
        raise node.error(f"input {name!r} is produced by no earlier node, initializer or graph input "
                         f"(nodes must be in topological order)")

    def value(self, node: _Node, i: int = 0) -> _Value:
        v = self.operand(node, i)
        if isinstance(v, _Param):
            raise node.error(f"input {node.inputs[i]!r} is a constant or a second graph input; "
                             f"only one network input is supported")
        return v

    def param(self, node: _Node, i: int, optional: bool = False) -> _Param | None:
        if optional and (i >= len(node.inputs) or not node.inputs[i]):
            return None
        p = self.operand(node, i)
        if isinstance(p, _Value):
            raise node.error(f"input {node.inputs[i]!r} must be a constant (an initializer), "
                             f"not a feature map")
        return p

    def map_input(self, node: _Node) -> _Value:
        x = self.value(node)
        if len(x.shape) != 3:
            raise node.error(f"input {node.inputs[0]!r} is a vector; {node.op} needs an NCHW map")
        return x

    def window(self, node: _Node, x: _Value, kernel=None) -> tuple[int, int, int]:
        """``(kernel, stride, padding)`` of a conv or pooling node on map ``x``."""
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

    def record_codes(self, node: _Node, layer: Layer, weight: _Param, axis: int, alpha: float = 1.0):
        """Keep the weight scales of a layer whose weights were dequantized from integer codes;
        ``axis`` is the output-channel axis of the ONNX weight."""
        if weight.codes is None:
            return
        q, scale, zero_point, q_axis = weight.codes
        if np.any(zero_point != 0):
            raise node.error("weight zero points must be 0 (symmetric weights)")
        cols = self.shapes[layer.name].c
        if scale.size != 1 and (q_axis != axis or scale.size != cols):
            raise node.error(f"weight scales along axis {q_axis} are not supported (one per tensor "
                             f"or one per output channel, axis {axis})")
        self.weight_scales[layer.name] = np.broadcast_to(np.abs(alpha) * scale.reshape(-1), (cols,)).copy()
        self.weight_peaks[layer.name] = int(np.abs(q).max(initial=0))

    def relu(self, node: _Node, x: _Value) -> _Value:
        layer = self.add(ReLU(node.name, x.layer))
        return dataclasses.replace(x, layer=layer.name, nonneg=True, fold=None, quant=None)

    # graph plumbing (nodes that make no layer of their own) ----------------------------------

    def batch_norm(self, node: _Node) -> None:
        a = node.allow("epsilon", "momentum", "spatial", "training_mode")
        if a.get("training_mode", 0) or a.get("spatial", 1) != 1:
            raise node.error("training_mode=1 and spatial=0 are not supported (inference, per channel)")
        x = self.map_input(node)
        conv = x.fold
        if conv is None or self.uses[node.inputs[0]] != 1:
            raise node.error("only a BatchNormalization right after a Conv whose output feeds "
                             "nothing else is supported (it is folded into the Conv)")
        if conv.name in self.weight_scales:
            raise node.error(f"cannot be folded into the quantized Conv {conv.name!r} (its weight "
                             f"codes would change); fold it before quantizing")
        params = [self.param(node, i) for i in range(1, 5)]
        if any(p.shape not in (None, (x.shape[0],)) for p in params):
            raise node.error(f"scale, bias, mean and var must have one value per channel ({x.shape[0]})")
        if conv.weight is None or any(p.value is None for p in params):
            conv.weight = conv.bias = None
        else:
            gamma, beta, mean, var = (_f64(p.value) for p in params)
            scale = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
            conv.weight = conv.weight * scale
            conv.bias = ((0.0 if conv.bias is None else conv.bias) - mean) * scale + beta
        self.set(node, dataclasses.replace(x, nonneg=False))

    def identity(self, node: _Node) -> None:
        node.allow()
        self.set(node, self.operand(node, 0))

    def dropout(self, node: _Node) -> None:
        node.allow("ratio", "seed")   # opset <= 11 gives the ratio as an attribute
        mode = self.param(node, 2, optional=True)
        if mode is not None and (mode.value is None or bool(np.ravel(mode.value)[0])):
            raise node.error("training_mode must be a constant false (inference only)")
        if len(node.outputs) > 1 and self.uses[node.outputs[1]]:
            raise node.error("the mask output is not supported")
        self.set(node, self.value(node))

    def constant(self, node: _Node) -> None:
        a = node.allow("value", "value_float", "value_floats", "value_int", "value_ints")
        ((key, value),) = a.items()
        value = numpy_helper.to_array(value) if key == "value" else np.array(value)
        self.set(node, _Param(value.shape, value))

    def quantize_linear(self, node: _Node) -> None:
        node.allow("axis", "saturate")
        x = self.operand(node, 0)
        if isinstance(x, _Param):
            raise node.error("quantizing a constant is not supported (weights are integer "
                             "initializers read by a DequantizeLinear: AddQDQPairToWeight=False)")
        scale, zp = self.param(node, 1), self.param(node, 2, optional=True)
        if scale.value is None or scale.value.size != 1 or (zp is not None and zp.value is None):
            raise node.error("activations need one constant scale and zero point per tensor")
        dtype = np.dtype(np.uint8) if zp is None else zp.value.dtype
        z = 0 if zp is None else int(np.ravel(zp.value)[0])
        if dtype not in (np.uint8, np.int8):
            raise node.error(f"{dtype} activations are not supported (8-bit: uint8 or int8)")
        lo, mid = int(np.iinfo(dtype).min), int(np.iinfo(dtype).min) + 128
        if x.layer == self.input.name and z != lo:
            raise node.error(f"zero point {z} is not supported for the network input (8-bit pixels: "
                             f"unsigned codes, zero point {lo} for {dtype})")
        if z not in (lo, mid):
            raise node.error(f"zero point {z} is not supported ({lo} for unsigned, {mid} for signed "
                             f"{dtype} codes: quantize with activation_type=QuantType.QUInt8 and "
                             f"extra_options={{'ActivationRestrictedAsymmetric': True}})")
        if z == lo and not x.nonneg:
            x = self.relu(node, x)  # clamping at the lowest code, real value 0, is a ReLU
        quant = _Quant(float(np.ravel(scale.value)[0]), z, node.name)
        known = self.quant.setdefault(x.layer, quant)
        if (known.scale, known.zero_point) != (quant.scale, quant.zero_point):
            raise node.error(f"quantizes the output of layer {x.layer!r} differently from "
                             f"{known.node!r}; one quantization per tensor is supported")
        self.set(node, dataclasses.replace(x, fold=None, quant=quant))

    def dequantize_linear(self, node: _Node) -> None:
        a = node.allow("axis")
        x, scale, zp = self.operand(node, 0), self.param(node, 1), self.param(node, 2, optional=True)
        if isinstance(x, _Value):
            q = x.quant
            if q is None:
                raise node.error(f"input {node.inputs[0]!r} comes from no QuantizeLinear")
            z = 0 if zp is None or zp.value is None else int(np.ravel(zp.value)[0])
            if scale.value is None or (float(np.ravel(scale.value)[0]), z) != (q.scale, q.zero_point):
                raise node.error(f"scale or zero point differs from its QuantizeLinear {q.node!r}")
            self.set(node, dataclasses.replace(x, quant=None))
            return
        if x.value is None or scale.value is None or (zp is not None and zp.value is None):
            self.set(node, _Param(x.shape, None))
            return
        codes = x.value.astype(np.int64)
        axis = a.get("axis", 1) % max(codes.ndim, 1)
        s = _f64(scale.value).reshape(-1)
        z = np.zeros(1, np.int64) if zp is None else zp.value.astype(np.int64).reshape(-1)
        along = [-1 if i == axis else 1 for i in range(codes.ndim)] if s.size > 1 else [1] * codes.ndim
        value = (codes - z.reshape(along if z.size > 1 else [1] * codes.ndim)) * s.reshape(along)
        self.set(node, _Param(x.shape, value, (codes, s, z, axis)))

    # QDQ scales ----------------------------------------------------------------------------------

    def quantization(self, net: Network) -> OnnxModel:
        """The `OnnxModel` of a QDQ model: every requantizing layer's scale from the
        QuantizeLinear of its hardware output (its fused ReLU's, for an unsigned layer)."""
        signed = output_signed(net)
        if net.input.name not in self.quant:
            raise UserError(f"onnx model {self.name!r}: a QDQ model must quantize its input "
                            f"{net.input.name!r} (a QuantizeLinear)")
        scales, scale_of = {}, {}
        for layer in net:
            q = self.quant.get(layer.name)
            if layer.op.weighted and layer.name not in self.weight_scales:
                raise UserError(f"onnx model {self.name!r}: {layer.kind} node {layer.name!r} has float "
                                f"weights; a QDQ model needs integer weights read by a DequantizeLinear")
            if layer.op.requantizing:
                q = (None if signed[layer.name] else self.relu_quant(net, layer.name)) or q
                if q is None:
                    raise UserError(f"onnx model {self.name!r}: the output of {layer.kind} node "
                                    f"{layer.name!r} has no QuantizeLinear; a QDQ model quantizes the "
                                    f"output of every Conv, Gemm, MatMul, Add and average pool")
                scales[layer.name] = scale_of[layer.name] = q.scale
                continue
            scale_of[layer.name] = self.quant[layer.name].scale if not layer.inputs \
                else scale_of[layer.inputs[0]]
            if q is not None and not math.isclose(q.scale, scale_of[layer.name], rel_tol=1e-6):
                raise UserError(f"onnx node {q.node!r} (QuantizeLinear): scale {q.scale:.6g} differs "
                                f"from the scale {scale_of[layer.name]:.6g} of the {layer.kind} codes "
                                f"it quantizes; only Conv, Gemm, MatMul, Add and average pools "
                                f"requantize")
        return OnnxModel(net, self.quant[net.input.name].scale, scales, self.weight_scales,
                         self.weight_peaks)

    def relu_quant(self, net: Network, name: str) -> _Quant | None:
        """The quantization of the first activation (a ReLU) reached from layer ``name`` through
        passthrough layers (max pools, flattens)."""
        for consumer in net.consumers(name):
            if consumer.op.activation and consumer.name in self.quant:
                return self.quant[consumer.name]
            if consumer.op.passthrough:
                found = self.relu_quant(net, consumer.name)
                if found is not None:
                    return found
        return None


#: ONNX ops that make no layer of their own (the importer's graph plumbing)
_PLUMBING = {
    "BatchNormalization": _Importer.batch_norm, "Identity": _Importer.identity,
    "Dropout": _Importer.dropout, "Constant": _Importer.constant,
    "QuantizeLinear": _Importer.quantize_linear, "DequantizeLinear": _Importer.dequantize_linear,
}


def _dispatch(ops: list):
    """The handler of an ONNX op type claimed by the layer kinds ``ops``: the first whose
    `~imcflow.sw.ops.Op.onnx_accepts` takes the node, else the first (which names what it does not
    support)."""
    def handle(importer, node):
        op = next((op for op in ops if op.onnx_accepts(importer, node)), ops[0])
        op.onnx(importer, node)
    return handle


def _handlers() -> dict:
    """ONNX op type -> ``handler(importer, node)``: the layer kinds' (`imcflow.sw.ops`), then
    the plumbing."""
    claims: dict[str, list] = {}
    for op in registry().values():
        for op_type in op.onnx_ops:
            claims.setdefault(op_type, []).append(op)
    return {**{t: _dispatch(ops) for t, ops in claims.items()}, **_PLUMBING}


#: ops the importer converts (docs/onnx.md: their attributes)
SUPPORTED_OPS = tuple(_handlers())
#: domains besides the default: onnxruntime's contrib Q/DQ (4- and 16-bit types, same semantics)
_DOMAINS = {op: ("ai.onnx", "com.microsoft") for op in ("QuantizeLinear", "DequantizeLinear")}
