"""The ``digits_dw`` zoo network (depthwise-separable, ReLU6) and what trains it: the trainer's
gradients through grouped convs and clipped ReLUs, and its accuracy after quantization."""

from __future__ import annotations

import numpy as np

from imcflow.sw import zoo
from imcflow.sw.arch import Arch
from imcflow.sw.inference import float_run, run
from imcflow.sw.ir import Conv2d, Dense, GlobalAvgPool, Input, Network, Shape
from imcflow.sw.networks import load_network, load_qnetwork
from imcflow.sw.ops.clip import Clip
from imcflow.sw.ops.grouped_conv import GroupedConv2d
from imcflow.sw.weights import he_init, with_weights
from imcflow.sw.zoo import train_digits


def test_digits_dw_topology():
    net = load_network("digits_dw")
    kinds = [l.kind for l in net]
    assert net.shapes["input"] == Shape(8, 8, 1) and net.shapes["fc"] == Shape(1, 1, 10)
    depthwise = [l for l in net if l.kind == "grouped_conv"]
    assert len(depthwise) == 2 and all(l.groups == net.shapes[l.input].c for l in depthwise)
    assert kinds.count("clip") == 5 and kinds[-2:] == ["global_avg_pool", "dense"]


def test_trainer_gradients_through_grouped_convs_and_clips(rng):
    net = he_init(Network("t", [
        Input("in", Shape(5, 5, 4)), Conv2d("c1", "in", 4, kernel=3, padding=1),
        Clip("r1", "c1", max=0.6), GroupedConv2d("g", "r1", 8, kernel=3, stride=2, padding=1, groups=2),
        Clip("r2", "g", max=0.8), GlobalAvgPool("p", "r2"), Dense("d", "p", 3)]), seed=3)
    params = {f"{l.name}.{p}": getattr(l, p) + rng.normal(0, 0.1, getattr(l, p).shape)
              for l in net if l.op.weighted for p in ("weight", "bias")}
    x, probe = rng.random((3, 5, 5, 4)), rng.normal(size=(3, 1, 1, 3))

    def loss(p):
        return float((train_digits.forward(net, p, x)[0]["d"] * probe).sum())

    acts, cache = train_digits.forward(net, params, x)
    # the clips clip somewhere, and the trainer's forward is the float reference
    assert (acts["c1"] > 0.6).any() and (acts["g"] > 0.8).any()
    assert np.allclose(acts["d"].reshape(3, -1), float_run(with_weights(net, params), x),
                       rtol=0, atol=1e-12)
    grads = train_digits.backward(net, acts, cache, probe)
    assert grads["g.weight"].shape == (3, 3, 2, 8)
    for key, value in params.items():
        for idx in list(np.ndindex(value.shape))[::7]:
            bumped = {k: v.copy() for k, v in params.items()}
            bumped[key][idx] += 1e-6
            lowered = {k: v.copy() for k, v in params.items()}
            lowered[key][idx] -= 1e-6
            numeric = (loss(bumped) - loss(lowered)) / 2e-6
            assert abs(numeric - grads[key][idx]) < 1e-5 * max(1.0, abs(numeric)), (key, idx)


def test_quantized_digits_dw_accuracy():
    data = zoo.dataset("digits_dw")
    net = load_network("digits_dw")
    float_acc = np.mean(float_run(net, data.test_images / 255).argmax(axis=1) == data.test_labels)
    qnet = load_qnetwork("digits_dw", Arch())
    imc_acc = np.mean(run(qnet, data.test_images).argmax(axis=1) == data.test_labels)
    print(f"digits_dw: float {float_acc:.4f}, imc {imc_acc:.4f}")
    assert float_acc >= 0.95 and imc_acc >= 0.93
