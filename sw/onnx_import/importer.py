"""The walk over an ONNX graph that builds the IR network, and the model it gives.

`import_onnx` reads the graph (`imcflow.sw.onnx_import.graph.read_graph`) and hands each node,
in order, to its handler: the layer kind that claims its op type (`imcflow.sw.ops`: the
`~imcflow.sw.ops.Op.onnx` of the first kind whose ``onnx_accepts`` takes the node), or the
plumbing (`imcflow.sw.onnx_import.plumbing`, `imcflow.sw.onnx_import.qdq`). The handlers build
the network through the `Importer`'s helpers: the node's operands (`Importer.value`,
`Importer.param`, `Importer.map_input`), a new IR layer checked and its shape inferred
(`Importer.add`), the value a node's output becomes (`Importer.emit`, `Importer.set`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from imcflow.errors import UserError
from imcflow.sw.ir import Input, Layer, Network, ReLU, Shape
from imcflow.sw.onnx_import import plumbing, qdq, shapes
from imcflow.sw.onnx_import.constants import Param
from imcflow.sw.onnx_import.graph import Graph, Node, dims, read_graph
from imcflow.sw.onnx_import.shapes import Quant, Value
from imcflow.sw.ops import registry

__all__ = ["OnnxModel", "Importer", "import_onnx", "SUPPORTED_OPS"]


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
        return Importer(read_graph(source, None, source.graph.name or "onnx")).run()
    path = Path(source)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except OSError as e:
        raise UserError(f"--network: cannot read {str(path)!r}: {e.strerror or e}") from None
    except DecodeError as e:
        raise UserError(f"--network: {path.name} is not an ONNX model ({e})") from None
    return Importer(read_graph(model, path.parent, path.stem)).run()


class Importer:
    """The network being built from a `Graph`: the IR ``layers`` and their ``shapes``, the
    ``values`` and ``params`` of the tensors seen so far, and the quantization met on the way
    (``quant`` by layer, ``weight_scales``, ``weight_peaks``)."""

    #: ``(kernel, stride, padding)`` of a conv or pooling node (`imcflow.sw.onnx_import.shapes`)
    window = staticmethod(shapes.window)
    #: keep the weight scales of a layer whose weights were integer codes (`qdq.record_codes`)
    record_codes = qdq.record_codes

    def __init__(self, graph: Graph):
        self.name, self.input, self.output = graph.name, graph.input, graph.output
        self.nodes, self.uses = graph.nodes, graph.uses
        self.params: dict[str, Param] = dict(graph.params)
        self.values: dict[str, Value] = {}
        self.layers: list[Layer] = []
        self.shapes: dict[str, Shape] = {}
        self.quant: dict[str, Quant] = {}
        self.weight_scales: dict[str, np.ndarray] = {}
        self.weight_peaks: dict[str, int] = {}

    def run(self) -> OnnxModel:
        size = dims(self.input)
        if len(size) != 4 or not all(isinstance(d, int) and d > 0 for d in size[1:]):
            raise UserError(f"onnx model {self.name!r}: input {self.input.name!r} has shape "
                            f"{size}; an NCHW image (N, C, H, W) with fixed C, H, W is needed")
        c, h, w = size[1:]
        layer = self.add(Input(self.input.name, Shape(h, w, c)))
        self.values[self.input.name] = Value(layer.name, (c, h, w), nonneg=True)
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
        if not self.quant:
            return OnnxModel(net)
        return OnnxModel(net, *qdq.scales(self, net), self.weight_scales, self.weight_peaks)

    # building the network -----------------------------------------------------------------------

    def add(self, layer: Layer) -> Layer:
        """Add IR ``layer`` (renamed when a layer has its name), checked, its shape inferred."""
        base, i = layer.name, 1
        while layer.name in self.shapes:  # a node named like the input or another layer
            layer.name, i = f"{base}_{i}", i + 1
        layer.check()
        self.shapes[layer.name] = layer.infer([self.shapes[s] for s in layer.inputs])
        self.layers.append(layer)
        return layer

    def set(self, node: Node, value) -> None:
        """Make ``value`` (a `Value` or a `Param`) that of ``node``'s output."""
        (self.params if isinstance(value, Param) else self.values)[node.outputs[0]] = value

    def emit(self, node: Node, layer: Layer, *, shape: tuple | None = None, nonneg: bool = False,
             chw: tuple | None = None, fold: Layer | None = None) -> None:
        """Make IR ``layer`` the value of ``node``'s output: a map of ONNX ``shape`` (by default
        the (C, H, W) of the layer's output) or a vector, with the `Value` flags."""
        shape = shapes.chw(self.shapes[layer.name]) if shape is None else shape
        self.set(node, Value(layer.name, shape, nonneg, chw, fold))

    def relu(self, node: Node, x: Value) -> Value:
        """A ReLU layer named after ``node`` on ``x``, and its value."""
        layer = self.add(ReLU(node.name, x.layer))
        return dataclasses.replace(x, layer=layer.name, nonneg=True, fold=None, quant=None)

    @staticmethod
    def derive(value: Value, **changes) -> Value:
        """``value`` with some of its `Value` fields changed."""
        return dataclasses.replace(value, **changes)

    @staticmethod
    def is_map(operand) -> bool:
        """Whether an operand is a feature map or vector (not a constant)."""
        return isinstance(operand, Value)

    # a node's operands --------------------------------------------------------------------------

    def operand(self, node: Node, i: int):
        """Input ``i`` of ``node``: a `Value` or a `Param`."""
        name = node.inputs[i] if i < len(node.inputs) else ""
        if name in self.values:
            return self.values[name]
        if name in self.params:
            return self.params[name]
        if not name:
            raise node.error(f"input {i} is missing")
        raise node.error(f"input {name!r} is produced by no earlier node, initializer or graph input "
                         f"(nodes must be in topological order)")

    def value(self, node: Node, i: int = 0) -> Value:
        """Input ``i`` of ``node``, which must be computed from the network input."""
        v = self.operand(node, i)
        if isinstance(v, Param):
            raise node.error(f"input {node.inputs[i]!r} is a constant or a second graph input; "
                             f"only one network input is supported")
        return v

    def param(self, node: Node, i: int, optional: bool = False) -> Param | None:
        """Input ``i`` of ``node``, which must be a constant (None if ``optional`` and absent)."""
        if optional and (i >= len(node.inputs) or not node.inputs[i]):
            return None
        p = self.operand(node, i)
        if isinstance(p, Value):
            raise node.error(f"input {node.inputs[i]!r} must be a constant (an initializer), "
                             f"not a feature map")
        return p

    def map_input(self, node: Node) -> Value:
        """Input 0 of ``node``, which must be a feature map."""
        x = self.value(node)
        if len(x.shape) != 3:
            raise node.error(f"input {node.inputs[0]!r} is a vector; {node.op} needs an NCHW map")
        return x


#: ONNX ops that make no layer of their own (the importer's graph plumbing)
_PLUMBING = {
    "BatchNormalization": plumbing.batch_norm, "Identity": plumbing.identity,
    "Dropout": plumbing.dropout, "Constant": plumbing.constant,
    "QuantizeLinear": qdq.quantize_linear, "DequantizeLinear": qdq.dequantize_linear,
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
