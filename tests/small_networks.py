"""A small network with every layer kind, shared by the golden-model and quantization tests."""

from __future__ import annotations

import numpy as np

from imcflow.sw.ir import (Add, AvgPool, Conv2d, Dense, Flatten, GlobalAvgPool, Input, MaxPool, Network,
                           ReLU, Shape)
from imcflow.sw.weights import he_init


def small_net(seed=0):
    """Every layer kind: conv (strided, padded, projection), relu, add, max/avg pool, GAP,
    flatten + dense, and a dense on a vector."""
    layers = [
        Input("in", Shape(8, 8, 2)),
        Conv2d("c1", "in", 6, kernel=3, padding=1), ReLU("r1", "c1"),
        Conv2d("c2", "r1", 6, kernel=3, stride=2, padding=1),
        Conv2d("proj", "r1", 6, kernel=1, stride=2),
        Add("add", "c2", "proj"), ReLU("r2", "add"),
        MaxPool("mp", "r2", kernel=3, stride=1, padding=1),
        AvgPool("ap", "mp", kernel=2),
        Conv2d("c3", "ap", 4, kernel=1), ReLU("r3", "c3"),
        Flatten("fl", "r3"), Dense("d1", "fl", 8), ReLU("r4", "d1"),
        GlobalAvgPool("gap", "r4"), Dense("d2", "gap", 3),
    ]
    net = he_init(Network("small", layers), seed)
    for layer in net:  # non-zero biases exercise the bias path
        if getattr(layer, "bias", None) is not None:
            layer.bias[:] = np.random.default_rng(seed).normal(0, 0.1, layer.bias.shape)
    return net
