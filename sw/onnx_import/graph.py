"""The ONNX graph as the importer reads it: checked once, then walked node by node.

`read_graph` checks the opset and the single output, reads the initializers
(`imcflow.sw.onnx_import.constants.initializer`) and the weights given as graph inputs without
values (`~imcflow.sw.onnx_import.constants.Param`), picks the one network input and keeps the nodes the output depends on, in
graph order (`Node`), with how often each tensor is used.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import helper

from imcflow.errors import UserError
from imcflow.sw.onnx_import.constants import Param, initializer

__all__ = ["MIN_OPSET", "Node", "Graph", "read_graph", "dims"]

#: lowest opset of the default domain that is read
MIN_OPSET = 11


class Node:
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


@dataclass(frozen=True)
class Graph:
    """A model's graph: its ``name``, network ``input`` (a value info), ``output`` tensor name,
    constants ``params`` (initializers and weights given as inputs), the ``nodes`` the output
    needs and the ``uses`` of every tensor by them (the output counts once more)."""

    name: str
    input: onnx.ValueInfoProto
    output: str
    params: dict[str, Param]
    nodes: list[Node]
    uses: Counter


def read_graph(model: onnx.ModelProto, base_dir: Path | None, name: str) -> Graph:
    """The `Graph` of ``model`` (external data read from ``base_dir``; None: none is read)."""
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
    if opset is None or opset < MIN_OPSET:
        raise UserError(f"onnx model {name!r}: opset {opset} is not supported (opset >= {MIN_OPSET})")
    graph = model.graph
    if len(graph.output) != 1:
        raise UserError(f"onnx model {name!r}: has {len(graph.output)} outputs; one is supported")
    output = graph.output[0].name
    params = {t.name: initializer(t, base_dir) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in params]
    if not inputs:
        raise UserError(f"onnx model {name!r}: has no input")
    first, *extra = inputs
    for info in extra:  # weights without values (export_params=False)
        shape = dims(info)
        params[info.name] = Param(tuple(shape) if all(isinstance(d, int) for d in shape) else None,
                                  None)
    nodes = _needed([Node(i, n) for i, n in enumerate(graph.node)], output)
    uses = Counter(t for n in nodes for t in n.inputs if t)
    uses[output] += 1
    return Graph(name, first, output, params, nodes, uses)


def dims(info: onnx.ValueInfoProto) -> list:
    """The dimensions of a value info: integers, or the names of symbolic ones (``?`` if none)."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in info.type.tensor_type.shape.dim]


def _decode(value):
    return value.decode() if isinstance(value, bytes) else value


def _needed(nodes: list[Node], output: str) -> list[Node]:
    """The nodes the output depends on, in graph order."""
    needed, kept = {output}, []
    for node in reversed(nodes):
        if needed.intersection(node.outputs):
            kept.append(node)
            needed.update(node.inputs)
    return kept[::-1]
