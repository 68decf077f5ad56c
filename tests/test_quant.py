"""Quantization: integer parameters in range, ReLU fusion and signedness, weight noise, errors."""

from __future__ import annotations

import numpy as np
import pytest

from imcflow.errors import UserError
from imcflow.sw.arch import Arch
from imcflow.sw.arith import MAX_SHIFT, MULT_BITS, signed_range, weight_range
from imcflow.sw.inference import run, trace
from imcflow.sw.ir import Add, Conv2d, GlobalAvgPool, Input, MaxPool, Network, ReLU, Shape
from imcflow.sw.weights import he_init
from imcflow.sw.quant import (QAdd, QConv, calibrate_scales, choose_adc_shift, from_scales,
                              output_signed, program_weights, quantize, quantize_weights)

from small_networks import small_net


@pytest.fixture
def calib(rng):
    return rng.integers(0, 256, (16, 8, 8, 2))


@pytest.mark.parametrize("weight_bits", [2, 4, 8])
@pytest.mark.parametrize("encoding", ["pwm", "bit_serial"])
def test_parameters_within_their_ranges(calib, weight_bits, encoding):
    arch = Arch(weight_bits=weight_bits, input_encoding=encoding, rows=32)
    qnet = quantize(small_net(), arch, calib)
    lo, hi = weight_range(weight_bits)
    for q in qnet.crossbar_layers:
        assert q.weight.dtype == np.int64 and lo <= q.weight.min() and q.weight.max() <= hi
        assert q.weight.max() == hi or q.weight.min() == lo  # max-abs scaling uses the full range
        assert np.all((0 <= q.mult) & (q.mult < 1 << MULT_BITS)) and 0 <= q.shift <= MAX_SHIFT
        blo, bhi = signed_range(q.psum_bits)
        assert blo <= q.bias.min() and q.bias.max() <= bhi
        assert q.adc_shift >= 0 and q.acc_bits + MULT_BITS <= 63
    for q in qnet:
        if isinstance(q, QAdd):
            assert 0 < q.mult_a < 1 << MULT_BITS and 0 < q.mult_b < 1 << MULT_BITS


def test_quantize_weights_rounds_to_per_channel_scales():
    w = np.array([[0.7, -0.1, 0.0], [-0.35, 0.05, 0.0], [0.1, 0.02, 0.0]])
    codes, scale = quantize_weights(w, 4)
    assert np.allclose(scale, [0.1, 0.1 / 7, 1.0])
    assert codes.T.tolist() == [[7, -4, 1], [-7, 4, 1], [0, 0, 0]]  # -3.5 -> -4, 3.5 -> 4, 1.4 -> 1
    codes, _ = quantize_weights(w, 4, scale=0.05)  # a given scale clips to the range
    assert codes[:, 0].tolist() == [7, -7, 2]


def test_relu_fusion_and_signedness():
    signed = output_signed(small_net())
    assert signed == {"in": False, "c1": False, "r1": False, "c2": True, "proj": True, "add": False,
                      "r2": False, "mp": False, "ap": False, "c3": False, "r3": False, "fl": False,
                      "d1": False, "r4": False, "gap": False, "d2": True}


def test_relu_fuses_through_max_pool():
    net = Network("n", [Input("in", Shape(4, 4, 1)), Conv2d("c", "in", 2, kernel=3, padding=1),
                        MaxPool("mp", "c", kernel=2), ReLU("r", "mp"), GlobalAvgPool("g", "r")])
    assert output_signed(net)["c"] is False


def test_conv_on_signed_map_is_an_error():
    net = Network("n", [Input("in", Shape(4, 4, 1)), Conv2d("c1", "in", 2, kernel=3, padding=1),
                        Conv2d("c2", "c1", 2, kernel=3, padding=1)])
    with pytest.raises(UserError, match="layer 'c2' \\(conv\\): input 'c1' is a signed map"):
        output_signed(net)


def test_unfusable_relu_is_an_error():
    # c feeds the add (signed) and a ReLU: the ReLU cannot be fused
    net = Network("n", [Input("in", Shape(4, 4, 1)), Conv2d("c", "in", 2, kernel=1),
                        Conv2d("d", "in", 2, kernel=1), ReLU("r", "c"), Add("a", "c", "d"),
                        Add("b", "a", "r")])
    with pytest.raises(UserError, match="layer 'r' \\(relu\\): input 'c' is a signed map"):
        output_signed(net)


def test_relu_of_unsigned_map_is_identity(rng):
    net = he_init(Network("n", [Input("in", Shape(4, 4, 1)), ReLU("r", "in"),
                                Conv2d("c", "r", 3, kernel=3), ReLU("r2", "c"), ReLU("r3", "r2")]))
    images = rng.integers(0, 256, (5, 4, 4, 1))
    out = trace(quantize(net, Arch(), images), images)
    assert np.array_equal(out["r"], out["in"]) and np.array_equal(out["r3"], out["c"])


def test_noise_is_seeded_and_reproducible():
    codes = np.random.default_rng(1).integers(-7, 8, (144, 16))
    a = program_weights(codes, weight_bits=4, noise=0.1, seed=3, index=2)
    assert np.array_equal(a, program_weights(codes, weight_bits=4, noise=0.1, seed=3, index=2))
    assert not np.array_equal(a, program_weights(codes, weight_bits=4, noise=0.1, seed=4, index=2))
    assert not np.array_equal(a, program_weights(codes, weight_bits=4, noise=0.1, seed=3, index=5))
    assert a.min() >= -7 and a.max() <= 7 and not np.array_equal(a, codes)
    # the noise is about 0.1 * 7 = 0.7 codes (less where clipping bites)
    assert 0.4 < np.std(a - codes) < 0.8
    assert np.array_equal(program_weights(codes, weight_bits=4, noise=0.0, seed=3, index=2), codes)


def test_network_noise_applies_to_the_weight_image(calib):
    net = small_net()
    clean = quantize(net, Arch(), calib)
    same = quantize(net, Arch(weight_noise=0.0, noise_seed=99), calib)
    noisy = quantize(net, Arch(weight_noise=0.05, noise_seed=7), calib)
    again = quantize(net, Arch(weight_noise=0.05, noise_seed=7), calib)
    for c, s, n, a in zip(clean.crossbar_layers, same.crossbar_layers, noisy.crossbar_layers,
                          again.crossbar_layers):
        assert np.array_equal(c.weight, s.weight)
        assert np.array_equal(n.weight, a.weight)
    assert any(not np.array_equal(c.weight, n.weight)
               for c, n in zip(clean.crossbar_layers, noisy.crossbar_layers))


def test_adc_shift_is_the_smallest_without_saturation():
    arch = Arch(adc_bits=8, rows=4)
    w = np.ones((8, 1), np.int64)
    x = np.full((1, 8), 100)  # each 4-row tile sees a dot of 400: 400 / 4 = 100 <= 127, 400 / 2 = 200
    assert choose_adc_shift(x, w, arch, percentile=100) == 2
    x = np.full((1, 8), 63)  # 252 / 2 = 126
    assert choose_adc_shift(x, w, arch, percentile=100) == 1
    # bit serial sees one plane at a time: 63 = 0b111111, each plane dot is 4
    assert choose_adc_shift(x, w, arch.replace(input_encoding="bit_serial"), percentile=100) == 0


def test_from_scales_derives_parameters_from_given_scales(calib):
    net = small_net()
    scales = calibrate_scales(net, calib / 255, act_bits=8)
    shifts = {"c1": 3, "c2": 4, "proj": 2, "c3": 5, "d1": 5, "d2": 1}
    qnet = from_scales(net, Arch(), scales, adc_shifts=shifts)
    c1 = qnet["c1"]
    assert isinstance(c1, QConv) and c1.adc_shift == 3 and c1.scale == scales["c1"]
    # one accumulator unit is 2**adc_shift * input scale * weight scale; mult / 2**shift maps it
    # to output codes
    unit = 2 ** 3 * (1 / 255) * c1.weight_scale
    assert np.allclose(c1.mult / 2 ** c1.shift, unit / scales["c1"], rtol=2 ** -15)
    assert np.allclose(c1.bias * unit, net["c1"].bias, atol=unit / 2 + 1e-12)
    add = qnet["add"]
    assert np.isclose(add.mult_a / 2 ** add.shift, scales["c2"] / scales["add"], rtol=2 ** -15)
    assert np.isclose(add.mult_b / 2 ** add.shift, scales["proj"] / scales["add"], rtol=2 ** -15)
    gap = qnet["gap"]
    assert np.isclose(gap.mult / 2 ** gap.shift, scales["d1"] / scales["gap"], rtol=2 ** -15)
    assert qnet["mp"].scale == qnet["r2"].scale == scales["add"]
    assert run(qnet, calib[:2]).shape == (2, 3)


def test_from_scales_errors(calib):
    net = small_net()
    scales = calibrate_scales(net, calib / 255, act_bits=8)
    with pytest.raises(UserError, match="calibration: images are needed .* layer 'c1'"):
        from_scales(net, Arch(), scales)
    del scales["add"]
    with pytest.raises(UserError, match="scales\\['add'\\]: needs a positive output scale"):
        from_scales(net, Arch(), scales, calibration=calib)


def test_network_without_weights_is_an_error(calib):
    net = Network("n", [Input("in", Shape(8, 8, 2)), Conv2d("c", "in", 2, kernel=3)])
    with pytest.raises(UserError, match="layer 'c' \\(conv\\): has no weights"):
        quantize(net, Arch(), calib)


def test_input_requantized_to_act_bits(rng):
    net = he_init(Network("n", [Input("in", Shape(2, 2, 1)), Conv2d("c", "in", 2, kernel=1)]))
    images = np.array([[[[0], [1]], [[254], [255]]]])
    out = trace(quantize(net, Arch(act_bits=6), images), images)
    assert out["in"].ravel().tolist() == [0, 0, 63, 63]  # (x + 2) >> 2, saturated to 63


def test_given_weight_scales_are_used(calib):
    net = small_net()
    scales = calibrate_scales(net, calib / 255, act_bits=8)
    qnet = from_scales(net, Arch(), scales, weight_scales={"c1": np.full(6, 0.05)}, calibration=calib)
    expect = np.clip(np.round(net["c1"].weight.reshape(-1, 6) / 0.05), -7, 7)
    assert np.array_equal(qnet["c1"].weight, expect) and np.allclose(qnet["c1"].weight_scale, 0.05)


@pytest.mark.parametrize("kwargs,message", [
    (dict(adc_shifts={"c1": -1}), "adc_shifts['c1']: must be a non-negative integer, not -1"),
    (dict(adc_shifts={"c1": 1.5}), "adc_shifts['c1']: must be a non-negative integer, not 1.5"),
    (dict(weight_scales={"c1": np.zeros(6)}), "weight_scales['c1']: must be positive"),
    (dict(weight_scales={"c1": np.ones(5)}), "weight_scales['c1']: must be positive, one per output channel (6)"),
])
def test_bad_given_parameters(calib, kwargs, message):
    net = small_net()
    scales = calibrate_scales(net, calib / 255, act_bits=8)
    with pytest.raises(UserError) as e:
        from_scales(net, Arch(), scales, calibration=calib, **kwargs)
    assert message in str(e.value)
