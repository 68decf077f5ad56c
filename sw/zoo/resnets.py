"""CIFAR-10 ResNets (He, Zhang, Ren, Sun, "Deep residual learning for image recognition", 2016).

A 3x3 conv to 16 channels, three stages of ``n`` basic blocks with 16, 32 and 64 channels,
global average pooling and a dense layer to 10 classes: ``6n + 2`` layers with weights. A basic
block is conv3x3-ReLU-conv3x3 added to its input, then ReLU; the first block of stages 2 and 3
has stride 2 and a 1x1 stride-2 projection conv on the skip path. There is no batch
normalisation (it would fold into the convs). Weights are He-normal with a fixed seed.
"""

from __future__ import annotations

from imcflow.sw.ir import Add, Conv2d, Dense, GlobalAvgPool, Input, Network, ReLU, Shape
from imcflow.sw.weights import he_init

__all__ = ["RESNET_BLOCKS", "resnet", "SEED"]

#: zoo name -> basic blocks per stage
RESNET_BLOCKS = {"resnet8": 1, "resnet20": 3, "resnet32": 5}
#: seed of the He initialisation
SEED = 0


def resnet(name: str) -> Network:
    """The float ResNet ``name`` (a key of `RESNET_BLOCKS`) with seeded He-normal weights."""
    n = RESNET_BLOCKS[name]
    layers = [Input("input", Shape(32, 32, 3)),
              Conv2d("conv1", "input", 16, kernel=3, padding=1), ReLU("relu1", "conv1")]
    x, channels = "relu1", 16
    for stage, width in enumerate((16, 32, 64), start=1):
        for block in range(1, n + 1):
            p = f"s{stage}b{block}"
            stride = 2 if width != channels else 1
            layers += [Conv2d(f"{p}_conv1", x, width, kernel=3, stride=stride, padding=1),
                       ReLU(f"{p}_relu1", f"{p}_conv1"),
                       Conv2d(f"{p}_conv2", f"{p}_relu1", width, kernel=3, padding=1)]
            skip = x
            if stride != 1:
                layers.append(Conv2d(f"{p}_proj", x, width, kernel=1, stride=stride))
                skip = f"{p}_proj"
            layers += [Add(f"{p}_add", f"{p}_conv2", skip), ReLU(f"{p}_relu2", f"{p}_add")]
            x, channels = f"{p}_relu2", width
    layers += [GlobalAvgPool("gap", x), Dense("fc", "gap", 10)]
    return he_init(Network(name, layers), SEED)
