"""ONNX CNNs built with `onnx.helper` (no torch): small float networks for the importer tests and
the torchvision ResNet-18/50 and MobileNetV2 ImageNet topologies for the mapper.

`Graph` writes NCHW graphs node by node the way ``torch.onnx.export`` does: weights as
initializers, or, with ``weights=False``, as graph inputs with shapes and no values (what
``export_params=False`` produces), so a topology-only model still has every shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from imcflow.sw.ir import Add, Dense, GlobalAvgPool, Network, ReLU

__all__ = ["Graph", "small_cnn", "flatten_cnn", "resnet", "mobilenet_v2", "from_network",
           "RESNET_BLOCKS", "MOBILENET_V2_SETTINGS", "write"]

#: depth -> (block kind, blocks per stage), as torchvision.models.resnet{18,50}
RESNET_BLOCKS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                 50: ("bottleneck", (3, 4, 6, 3))}


class Graph:
    """A graph under construction: ``graph.conv(x, ...)`` adds nodes and returns the output name.

    Parameters
    ----------
    shape : (N, C, H, W) of the float input ``"input"``; N may be a string (a symbolic batch)
    seed : seed of the random weights
    weights : initializers with values, or (False) graph inputs with shapes only
    """

    def __init__(self, shape, seed: int = 0, weights: bool = True):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))]
        self.rng = np.random.default_rng(seed)
        self.weights = weights
        self.channels = {"input": shape[1]}
        self.batch = shape[0]

    def param(self, name: str, shape, sample) -> str:
        """A float weight of ``shape`` drawn by ``sample(rng, shape)`` (when there are weights)."""
        if self.weights:
            array = np.asarray(sample(self.rng, shape), dtype=np.float32)
            self.initializers.append(numpy_helper.from_array(array, name))
        else:
            self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    def const(self, name: str, array) -> str:
        """An initializer whatever ``weights`` is (a shape, not a weight)."""
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs, name: str, channels: int | None = None, **attrs) -> str:
        out = f"{name}_out"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name, **attrs))
        self.channels[out] = self.channels[inputs[0]] if channels is None and inputs else channels
        return out

    def conv(self, x, out: int, kernel: int, name: str, stride=1, pad=0, bias=True, **attrs) -> str:
        cin = self.channels[x] // attrs.get("group", 1)
        std = np.sqrt(2 / (cin * kernel ** 2))  # He
        inputs = [x, self.param(f"{name}.weight", (out, cin, kernel, kernel),
                                lambda rng, s: rng.normal(0, std, s))]
        if bias:
            inputs.append(self.param(f"{name}.bias", (out,), lambda rng, s: rng.normal(0, 0.1, s)))
        attrs.setdefault("pads", [pad] * 4)
        return self.node("Conv", inputs, name, out, kernel_shape=[kernel, kernel],
                         strides=[stride, stride], **attrs)

    def bn(self, x, name: str) -> str:
        uniform, normal = (lambda rng, s: rng.uniform(0.5, 1.5, s)), (lambda rng, s: rng.normal(0, 0.1, s))
        params = [self.param(f"{name}.{p}", (self.channels[x],), sample) for p, sample in (
            ("weight", uniform), ("bias", normal), ("running_mean", normal), ("running_var", uniform))]
        return self.node("BatchNormalization", [x, *params], name, epsilon=1e-5)

    def gemm(self, x, out: int, name: str, alpha=1.0, beta=1.0) -> str:
        std = np.sqrt(1 / self.channels[x])
        w = self.param(f"{name}.weight", (out, self.channels[x]), lambda rng, s: rng.normal(0, std, s))
        b = self.param(f"{name}.bias", (out,), lambda rng, s: rng.normal(0, 0.1, s))
        return self.node("Gemm", [x, w, b], name, out, alpha=alpha, beta=beta, transB=1)

    def model(self, output: str, name: str = "net", opset: int = 13) -> onnx.ModelProto:
        """The model with ``output``, a ``(N, channels)`` vector, as its only output."""
        out = helper.make_tensor_value_info(output, TensorProto.FLOAT, [self.batch, self.channels[output]])
        graph = helper.make_graph(self.nodes, name, self.inputs, [out], self.initializers)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                 producer_name="imcflow-tests")


def small_cnn(seed: int = 0, channels: int = 8, classes: int = 10, batchnorm: bool = True,
              size: int = 12) -> onnx.ModelProto:
    """A small residual CNN on ``(N, 3, size, size)`` inputs: conv3x3 (+BatchNormalization) + ReLU,
    max pool 3x3/2 pad 1, a basic residual block, a strided block with a 1x1 stride-2 projection
    on its skip path, global average pooling, Flatten and Gemm."""
    g = Graph(["N", 3, size, size], seed)
    x = g.conv("input", channels, 3, "stem", pad=1, bias=not batchnorm)
    if batchnorm:
        x = g.bn(x, "stem_bn")
    x = g.node("MaxPool", [g.node("Relu", [x], "stem_relu")], "pool", kernel_shape=[3, 3],
               strides=[2, 2], pads=[1, 1, 1, 1])
    y = g.node("Relu", [g.conv(x, channels, 3, "b1_conv1", pad=1)], "b1_relu1")
    y = g.conv(y, channels, 3, "b1_conv2", pad=1)
    x = g.node("Relu", [g.node("Add", [y, x], "b1_add")], "b1_relu2")
    y = g.node("Relu", [g.conv(x, 2 * channels, 3, "b2_conv1", stride=2, pad=1)], "b2_relu1")
    y = g.conv(y, 2 * channels, 3, "b2_conv2", pad=1)
    skip = g.conv(x, 2 * channels, 1, "b2_proj", stride=2)
    x = g.node("Relu", [g.node("Add", [y, skip], "b2_add")], "b2_relu2")
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x], "gap")], "flatten", axis=1)
    return g.model(g.gemm(x, classes, "fc"), "small_cnn")


def flatten_cnn(seed: int = 0, classes: int = 5, matmul: bool = True) -> onnx.ModelProto:
    """Flatten of a 3x3x4 map into MatMul + Add (bias; a Gemm with ``matmul=False``), auto_pad
    SAME, an average pool, Identity, Dropout, Clip(min=0), a Reshape to a Constant shape and a
    Gemm with alpha and beta: the index orders and the node forms `small_cnn` does not cover."""
    g = Graph(["N", 2, 8, 8], seed)
    x = g.node("Identity", [g.conv("input", 4, 3, "c1", auto_pad="SAME_UPPER", pads=None)], "id")
    x = g.node("Relu", [g.node("Dropout", [x], "drop")], "r1")
    x = g.node("AveragePool", [x], "ap", kernel_shape=[2, 2], strides=[2, 2])
    x = g.node("Relu", [g.conv(x, 4, 2, "c2", stride=1)], "r2")
    x = g.node("Flatten", [x], "flat", 36, axis=1)
    if matmul:
        w = g.param("fc1.weight", (36, 12), lambda rng, s: rng.normal(0, 1 / 6, s))
        b = g.param("fc1.bias", (12,), lambda rng, s: rng.normal(0, 0.1, s))
        x = g.node("Add", [g.node("MatMul", [x, w], "fc1", 12), b], "fc1_bias")
    else:
        x = g.gemm(x, 12, "fc1")
    shape = g.node("Constant", [], "shape", value=numpy_helper.from_array(np.array([0, -1], np.int64)))
    x = g.node("Clip", [x, g.const("zero", np.float32(0))], "r3")
    x = g.node("Reshape", [x, shape], "reshape")
    return g.model(g.gemm(x, classes, "fc2", alpha=0.5, beta=2.0), "flatten_cnn")


def resnet(depth: int = 18, weights: bool = False, batchnorm: bool = True,
           batch="N") -> onnx.ModelProto:
    """torchvision's ResNet-``depth`` (18, 34 or 50; v1.5: stride on the 3x3 conv) for
    ``(N, 3, 224, 224)`` images as ``torch.onnx.export`` writes it: bias-free convs each followed
    by a BatchNormalization node (or, ``batchnorm=False``, convs with the BN folded into a bias),
    Relu, MaxPool 3x3/2 pad 1, residual Adds with a 1x1 strided projection + BN where the shape
    changes, GlobalAveragePool, Flatten and Gemm to 1000 classes. ``weights=False`` (the default)
    writes the topology only."""
    kind, blocks = RESNET_BLOCKS[depth]
    g = Graph([batch, 3, 224, 224], weights=weights)

    def conv_bn(x, out, kernel, name, stride=1, pad=0):
        if not batchnorm:
            return g.conv(x, out, kernel, name, stride, pad)
        return g.bn(g.conv(x, out, kernel, name, stride, pad, bias=False), name.replace("conv", "bn"))

    x = g.node("Relu", [conv_bn("input", 64, 7, "conv1", 2, 3)], "relu")
    x = g.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    expansion = 1 if kind == "basic" else 4
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for block in range(count):
            p = f"layer{stage}.{block}"
            stride = 2 if block == 0 and stage > 1 else 1
            if kind == "basic":
                y = g.node("Relu", [conv_bn(x, width, 3, f"{p}.conv1", stride, 1)], f"{p}.relu1")
                y = conv_bn(y, width, 3, f"{p}.conv2", 1, 1)
            else:
                y = g.node("Relu", [conv_bn(x, width, 1, f"{p}.conv1")], f"{p}.relu1")
                y = g.node("Relu", [conv_bn(y, width, 3, f"{p}.conv2", stride, 1)], f"{p}.relu2")
                y = conv_bn(y, width * expansion, 1, f"{p}.conv3")
            skip = x
            if stride != 1 or g.channels[x] != width * expansion:
                skip = conv_bn(x, width * expansion, 1, f"{p}.downsample.conv", stride)
            x = g.node("Relu", [g.node("Add", [y, skip], f"{p}.add")], f"{p}.relu")
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x], "avgpool")], "flatten", axis=1)
    return g.model(g.gemm(x, 1000, "fc"), f"resnet{depth}")


#: torchvision.models.mobilenet_v2's inverted residual settings: (expansion t, channels c,
#: blocks n, stride of the first s)
MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                         (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(weights: bool = False, batchnorm: bool = False, batch="N",
                 size: int = 224) -> onnx.ModelProto:
    """torchvision's MobileNetV2 (width 1.0) for ``(N, 3, size, size)`` images as
    ``torch.onnx.export`` writes it in eval mode: a 3x3 stride-2 conv to 32 channels, 17 inverted
    residual blocks (1x1 expansion conv + ReLU6 unless t = 1, 3x3 depthwise conv ``group = C`` +
    ReLU6, linear 1x1 projection conv, an Add where stride 1 keeps the channels), a 1x1 conv to
    1280 + ReLU6, GlobalAveragePool, Flatten and Gemm to 1000 classes. ReLU6 is ``Clip(x, 0, 6)``
    with constant bounds; the BatchNormalization folded into conv biases (``batchnorm=True``:
    bias-free convs each followed by a BatchNormalization node). ``weights=False`` (the default)
    writes the topology only."""
    g = Graph([batch, 3, size, size], weights=weights)
    zero, six = g.const("relu6_min", np.float32(0)), g.const("relu6_max", np.float32(6))

    def conv_bn(x, out, kernel, name, stride=1, pad=0, **attrs):
        if not batchnorm:
            return g.conv(x, out, kernel, name, stride, pad, **attrs)
        return g.bn(g.conv(x, out, kernel, name, stride, pad, bias=False, **attrs), f"{name}.bn")

    def relu6(x, name):
        return g.node("Clip", [x, zero, six], name)

    x = relu6(conv_bn("input", 32, 3, "features.0", 2, 1), "features.0.relu6")
    block = 1
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        for i in range(n):
            p, stride, cin = f"features.{block}", s if i == 0 else 1, g.channels[x]
            y = x if t == 1 else relu6(conv_bn(x, cin * t, 1, f"{p}.expand"), f"{p}.relu6a")
            hidden = g.channels[y]
            y = relu6(conv_bn(y, hidden, 3, f"{p}.dw", stride, 1, group=hidden), f"{p}.relu6b")
            y = conv_bn(y, c, 1, f"{p}.project")
            x = g.node("Add", [x, y], f"{p}.add") if stride == 1 and cin == c else y
            block += 1
    x = relu6(conv_bn(x, 1280, 1, "features.18"), "features.18.relu6")
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x], "avgpool")], "flatten", axis=1)
    return g.model(g.gemm(x, 1000, "classifier.1"), "mobilenet_v2")


def from_network(net: Network) -> onnx.ModelProto:
    """A float IR network of convs, ReLUs, residual adds, global average pooling and dense layers
    (the digits zoo network) written as ONNX, the importer's inverse: HWIO weights to OIHW, a
    Flatten before each dense layer, Gemm with transB=1."""
    s = net.shapes[net.input.name]
    g = Graph(["N", s.c, s.h, s.w])
    out = {net.input.name: "input"}
    for layer in net.layers[1:]:
        x, name = out[layer.inputs[0]], layer.name
        if layer.op.weighted:
            bias = g.const(f"{name}.bias", layer.bias.astype(np.float32))
        if layer.kind == "conv":
            w = g.const(f"{name}.weight", layer.weight.transpose(3, 2, 0, 1).astype(np.float32))
            k = layer.kernel
            out[name] = g.node("Conv", [x, w, bias], name, layer.out_channels, kernel_shape=[k, k],
                               strides=[layer.stride] * 2, pads=[layer.padding] * 4)
        elif isinstance(layer, Dense):
            x = g.node("Flatten", [x], f"{name}_flatten", axis=1)
            w = g.const(f"{name}.weight", layer.weight.T.astype(np.float32))
            out[name] = g.node("Gemm", [x, w, bias], name, layer.out_features, transB=1)
        elif isinstance(layer, Add):
            out[name] = g.node("Add", [x, out[layer.b]], name)
        else:
            out[name] = g.node({ReLU: "Relu", GlobalAvgPool: "GlobalAveragePool"}[type(layer)], [x], name)
    return g.model(out[net.output.name], net.name)


def write(model: onnx.ModelProto, path) -> Path:
    """Save ``model`` to ``path`` and return the path."""
    onnx.save(model, str(path))
    return Path(path)
