"""Clipped ReLU (`imcflow.sw.ops.clip`, ReLU6): the float reference, calibration on the clipped
values so that the producer's saturation is the clip, the refusal of a given scale that would need
a clamp, TOML and ONNX import. The RTL runs it in the depthwise-separable example
(tests/test_grouped_conv.py)."""

from __future__ import annotations

import numpy as np
import pytest

from imcflow.errors import UserError
from imcflow.sw.arch import load_arch
from imcflow.sw.inference import float_trace, run
from imcflow.sw.ir import Add, Conv2d, Dense, GlobalAvgPool, Input, Network, ReLU, Shape
from imcflow.sw.weights import he_init
from imcflow.sw.onnx_import import import_onnx
from imcflow.sw.ops.clip import Clip
from imcflow.sw.quant import calibrate_scales, from_scales, quantize
from imcflow.sw.toml_net import loads_network
import onnx_models

ARCH = load_arch("default")


def clipped(act, seed=0):
    """conv -> ``act`` -> global pooling -> dense, on 6x6x2 inputs."""
    layers = [Input("in", Shape(6, 6, 2)), Conv2d("c", "in", 4, kernel=3, padding=1), act,
              GlobalAvgPool("gap", "a"), Dense("fc", "gap", 3)]
    return he_init(Network("clipped", layers), seed)


def images(n=16, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 6, 2))


def test_float_reference_clips_at_both_ends():
    net = clipped(Clip("a", "c", max=0.25))
    out = float_trace(net, images() / 255)
    assert np.array_equal(out["a"], np.clip(out["c"], 0.0, 0.25))
    assert (out["c"] > 0.25).any() and (out["c"] < 0).any()


def test_producer_scale_is_calibrated_on_the_clipped_values():
    # More than 0.01 % of the conv's outputs exceed 0.25, so the calibration peak is the clip and
    # the largest code stands for exactly 0.25; a ReLU there calibrates on the larger peak.
    x = images() / 255
    scale = calibrate_scales(clipped(Clip("a", "c", max=0.25)), x, act_bits=8)["c"]
    relu = calibrate_scales(clipped(ReLU("a", "c")), x, act_bits=8)["c"]
    assert scale == 0.25 / 255 and relu > 2 * scale
    # the integer model saturates at the clip: the largest code, worth 0.25
    qnet = quantize(clipped(Clip("a", "c", max=0.25)), ARCH, images())
    assert qnet["c"].scale * 255 == pytest.approx(0.25, rel=1e-12) and not qnet["c"].signed
    assert run(qnet, images()).shape == (16, 3)


def test_a_scale_below_the_clip_is_refused():
    net = clipped(Clip("a", "c", max=0.25))
    scales = calibrate_scales(net, images() / 255, act_bits=8)
    scales["c"] = 0.32 / 255   # 0.25 is code 199: the clip would need a clamp below code 255
    with pytest.raises(UserError, match=r"layer 'a' \(clip\): max 0.25 is code 199 at the scale "
                                        r"0.0012549 of its input; activations saturate at their "
                                        r"largest code 255 only"):
        from_scales(net, ARCH, scales, calibration=images())


def test_a_clip_of_a_signed_map_is_refused():
    layers = [Input("in", Shape(6, 6, 2)), Conv2d("c", "in", 2, kernel=3, padding=1),
              Clip("a", "c", max=6.0), Add("add", "c", "a"), ReLU("r", "add"),
              GlobalAvgPool("gap", "r"), Dense("fc", "gap", 3)]
    with pytest.raises(UserError, match="layer 'a' \\(clip\\): input 'c' is a signed map that also "
                                        "feeds other layers"):
        quantize(he_init(Network("n", layers)), ARCH, images())


@pytest.mark.parametrize("value, message", [
    ('"6"', "layers\\[1\\].max: must be a number, not '6'"),
    ("0", "layer 'a' \\(clip\\): max must be a finite number > 0, not 0.0"),
    ("true", "layers\\[1\\].max: must be a number, not True"),
])
def test_toml_max(value, message):
    head = '[[layers]]\nname = "in"\nkind = "input"\nshape = [4, 4, 1]\n[[layers]]\nname = "a"\n' \
           'kind = "clip"\nmax = '
    with pytest.raises(UserError, match=message):
        loads_network(head + value + "\n")


def test_toml_integer_max_is_a_number():
    net = loads_network('[[layers]]\nname = "in"\nkind = "input"\nshape = [4, 4, 1]\n[[layers]]\n'
                        'name = "c"\nkind = "conv"\nout_channels = 2\nkernel = 1\n'
                        '[[layers]]\nname = "a"\nkind = "clip"\nmax = 6\n')
    assert net["a"].max == 6.0 and isinstance(net["a"].max, float)


def test_onnx_clip_bounds():
    def model(*bounds):
        g = onnx_models.Graph(["N", 2, 4, 4])
        consts = [g.const(f"b{i}", np.float32(b)) if b is not None else "" for i, b in
                  enumerate(bounds)]
        x = g.node("Clip", [g.conv("input", 2, 1, "c"), *consts], "clip")
        return g.model(g.node("Flatten", [g.node("GlobalAveragePool", [x], "gap")], "f", axis=1))

    relu6 = import_onnx(model(0.0, 6.0)).network["clip"]
    assert (relu6.kind, relu6.max) == ("clip", 6.0)
    assert import_onnx(model(0.0)).network["clip"].kind == "relu"
    with pytest.raises(UserError, match=r"Clip\(min=1.0, max=6.0\) is not supported \(min=0 only: "
                                        r"a clipped ReLU\)"):
        import_onnx(model(1.0, 6.0))
