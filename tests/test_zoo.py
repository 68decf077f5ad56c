"""The zoo: topologies, the digits data split, the trainer, and digits accuracy after quantization."""

from __future__ import annotations

import numpy as np
import pytest

from imcflow.errors import UserError
from imcflow.sw import zoo
from imcflow.sw.arch import Arch
from imcflow.sw.inference import float_run, run
from imcflow.sw.ir import Add, Conv2d, Dense, GlobalAvgPool, Input, Network, ReLU, Shape
from imcflow.sw.calibration import calibration_images
from imcflow.sw.networks import load_network, load_qnetwork
from imcflow.sw.weights import he_init
from imcflow.sw.quant import quantize
from imcflow.sw.zoo import train_digits


def test_names():
    assert zoo.names() == ["digits", "digits_dw", "digits_ice40", "resnet8", "resnet20",
                           "resnet32"]
    with pytest.raises(UserError, match="'vgg' is not a zoo network; choose from digits, "
                                        "digits_dw, digits_ice40, resnet8"):
        zoo.network("vgg")


@pytest.mark.parametrize("name,blocks", [("resnet8", 1), ("resnet20", 3), ("resnet32", 5)])
def test_resnet_topology(name, blocks):
    net = zoo.network(name)
    convs = [l for l in net if l.kind == "conv"]
    projections = [l for l in convs if l.name.endswith("_proj")]
    assert len(convs) - len(projections) + 1 == 6 * blocks + 2  # He et al.: 6n + 2 weighted layers
    assert [(p.kernel, p.stride) for p in projections] == [(1, 2), (1, 2)]
    assert len([l for l in net if isinstance(l, Add)]) == 3 * blocks
    assert net.shapes["input"] == Shape(32, 32, 3)
    for stage, shape in ((1, Shape(32, 32, 16)), (2, Shape(16, 16, 32)), (3, Shape(8, 8, 64))):
        assert net.shapes[f"s{stage}b{blocks}_relu2"] == shape
    assert isinstance(net["gap"], GlobalAvgPool) and net.shapes["fc"] == Shape(1, 1, 10)
    first = net["conv1"].weight
    assert np.array_equal(first, zoo.network(name)["conv1"].weight)  # seeded
    assert 0.5 < first.std() / np.sqrt(2 / 27) < 1.5  # He-normal


def test_resnet8_quantizes_and_runs():
    net = zoo.network("resnet8")
    images = calibration_images(net, count=4)
    qnet = quantize(net, Arch(), images)
    logits = run(qnet, images[:2])
    assert logits.shape == (2, 10) and len(np.unique(logits)) > 1


def test_digits_split_is_deterministic_and_disjoint():
    data = zoo.dataset("digits")
    assert len(data.test_images) >= 300 and len(data.train_images) + len(data.test_images) == 1797
    assert data.test_images.shape[1:] == (8, 8, 1) and data.test_images.max() == 255
    train = {img.tobytes() for img in data.train_images}
    assert sum(img.tobytes() in train for img in data.test_images) < 10  # only duplicate drawings
    zoo._digits.cache_clear()
    assert np.array_equal(zoo.dataset("digits").test_labels, data.test_labels)
    assert zoo.dataset("resnet20") is None


def test_digits_topology():
    net = load_network("digits")
    kinds = [l.kind for l in net]
    assert net.shapes["input"] == Shape(8, 8, 1) and kinds.count("add") == 1
    assert [l.kernel for l in net if l.kind == "conv"].count(3) >= 2
    assert kinds[-2:] == ["global_avg_pool", "dense"] and net.shapes["fc"] == Shape(1, 1, 10)


def test_quantized_digits_accuracy():
    data = zoo.dataset("digits")
    net = load_network("digits")
    float_acc = np.mean(float_run(net, data.test_images / 255).argmax(axis=1) == data.test_labels)
    qnet = load_qnetwork("digits", Arch())
    imc_acc = np.mean(run(qnet, data.test_images).argmax(axis=1) == data.test_labels)
    print(f"digits: float {float_acc:.4f}, imc {imc_acc:.4f}")
    assert float_acc >= 0.95 and imc_acc >= 0.95


def test_trainer_gradients_match_finite_differences(rng):
    net = he_init(Network("t", [
        Input("in", Shape(5, 5, 2)), Conv2d("c1", "in", 3, kernel=3, stride=2, padding=1),
        ReLU("r1", "c1"), Conv2d("c2", "r1", 3, kernel=3, padding=1), Add("a", "c2", "r1"),
        ReLU("r2", "a"), GlobalAvgPool("g", "r2"), Dense("d", "g", 4)]), seed=3)
    params = {f"{l.name}.{p}": getattr(l, p) + rng.normal(0, 0.1, getattr(l, p).shape)
              for l in net if l.op.weighted for p in ("weight", "bias")}
    x, probe = rng.random((3, 5, 5, 2)), rng.normal(size=(3, 1, 1, 4))

    def loss(p):
        return float((train_digits.forward(net, p, x)[0]["d"] * probe).sum())

    acts, cache = train_digits.forward(net, params, x)
    grads = train_digits.backward(net, acts, cache, probe)
    for key, value in params.items():
        for idx in list(np.ndindex(value.shape))[::5]:
            bumped = {k: v.copy() for k, v in params.items()}
            bumped[key][idx] += 1e-6
            lowered = {k: v.copy() for k, v in params.items()}
            lowered[key][idx] -= 1e-6
            numeric = (loss(bumped) - loss(lowered)) / 2e-6
            assert abs(numeric - grads[key][idx]) < 1e-5 * max(1.0, abs(numeric)), (key, idx)


def test_trainer_is_deterministic():
    def train(seed):
        return train_digits.train(seed=seed, epochs=2, qat_epochs=1, train_images=96, log=lambda s: None)

    a, b, c = train(4), train(4), train(5)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["fc.weight"], c["fc.weight"])
