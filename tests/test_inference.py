"""The whole-network golden model against references written independently of sw/golden.py.

The references below use direct loops or ``np.einsum`` over padded float64 arrays (never
`imcflow.sw.golden.windows`), and their own rounding (``floor(v / 2**s + 1/2)`` in float64), so
an indexing or rounding mistake in the golden model cannot hide in a shared helper.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from imcflow.errors import UserError
from imcflow.sw import golden
from imcflow.sw.arch import Arch
from imcflow.sw.arith import crossbar_mvm
from imcflow.sw.inference import float_run, float_trace, run, trace
from imcflow.sw.ir import Shape
from imcflow.sw.quant import calibrate_scales, from_scales, quantize

from small_networks import small_net


# independent references --------------------------------------------------------------------------

def ref_conv(x, w, stride, pad):
    """Direct convolution of x (H, W, C) with w (k, k, C, O) in float64."""
    k = w.shape[0]
    xp = np.pad(np.asarray(x, np.float64), ((pad, pad), (pad, pad), (0, 0)))
    oh, ow = (xp.shape[0] - k) // stride + 1, (xp.shape[1] - k) // stride + 1
    out = np.zeros((oh, ow, w.shape[3]))
    for oy in range(oh):
        for ox in range(ow):
            patch = xp[oy * stride:oy * stride + k, ox * stride:ox * stride + k]
            out[oy, ox] = np.einsum("ijc,ijco->o", patch, np.asarray(w, np.float64))
    return out


def ref_pool(x, k, stride, pad, op, pad_value=0):
    xp = np.pad(np.asarray(x, np.float64), ((pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
    oh, ow = (xp.shape[0] - k) // stride + 1, (xp.shape[1] - k) // stride + 1
    out = np.zeros((oh, ow, x.shape[2]))
    for oy in range(oh):
        for ox in range(ow):
            for c in range(x.shape[2]):
                out[oy, ox, c] = op(xp[oy * stride:oy * stride + k, ox * stride:ox * stride + k, c])
    return out


def ref_round(v, s):
    return np.floor(np.asarray(v, np.float64) / 2.0 ** s + 0.5)


def ref_requant(acc, mult, shift, lo, hi):
    return np.clip(ref_round(np.asarray(acc, np.float64) * mult, shift), lo, hi)


# block checks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,stride,pad,rows", [(3, 1, 1, 7), (3, 2, 1, 256), (1, 2, 0, 3), (5, 1, 2, 20)])
def test_conv_equals_direct_convolution(rng, k, stride, pad, rows):
    # With an ADC that can neither round (shift 0) nor saturate (24 bits), windows + crossbar tiles
    # + partial sums are exactly a convolution, whatever the row tiling.
    x = rng.integers(0, 256, (7, 6, 3))
    w = rng.integers(-7, 8, (k, k, 3, 5))
    win = golden.windows(x, k, stride, pad)
    psum = golden.crossbar_tiles(win, w.reshape(-1, 5), xbar_rows=rows, encoding="pwm", act_bits=8,
                                 adc_bits=24, adc_shift=0).sum(axis=0)
    ref = ref_conv(x, w, stride, pad)
    assert np.array_equal(psum.reshape(ref.shape), ref)


def test_bit_serial_equals_pwm_without_adc_loss(rng):
    x = rng.integers(0, 256, (40, 100))
    w = rng.integers(-127, 128, (100, 9))
    pwm = crossbar_mvm(x, w, encoding="pwm", act_bits=8, adc_bits=32, adc_shift=0)
    serial = crossbar_mvm(x, w, encoding="bit_serial", act_bits=8, adc_bits=32, adc_shift=0)
    assert np.array_equal(pwm, serial)
    assert np.array_equal(pwm, x.astype(np.float64) @ w)


@pytest.mark.parametrize("k,stride,pad", [(2, 2, 0), (3, 1, 1), (3, 2, 1)])
def test_max_pool_equals_loops(rng, k, stride, pad):
    x = rng.integers(-128, 128, (2, 7, 7, 4))
    out = golden.max_pool(x, k, stride, pad, pad_value=-128)
    for i in range(2):
        assert np.array_equal(out[i], ref_pool(x[i], k, stride, pad, np.max, -128))


@pytest.mark.parametrize("signed", [False, True])
def test_avg_pools_equal_loops(rng, signed):
    lo, hi = (-128, 127) if signed else (0, 255)
    x = rng.integers(lo, hi + 1, (3, 6, 6, 5))
    mult, shift = int(rng.integers(1, 1 << 16)), int(rng.integers(16, 22))
    out = golden.avg_pool(x, 2, 2, mult, shift, act_bits=8, signed=signed)
    gap = golden.global_avg_pool(x, mult, shift, act_bits=8, signed=signed)
    for i in range(3):
        sums = ref_pool(x[i], 2, 2, 0, np.sum)
        assert np.array_equal(out[i], ref_requant(sums, mult, shift, lo, hi))
        total = x[i].astype(np.float64).sum(axis=(0, 1))
        assert np.array_equal(gap[i, 0, 0], ref_requant(total, mult, shift, lo, hi))


def test_join_equals_reference(rng):
    a = rng.integers(-128, 128, (4, 5, 5, 3))
    b = rng.integers(0, 256, (4, 5, 5, 3))
    ma, mb, shift = 30000, 41000, 16
    for signed, (lo, hi) in ((True, (-128, 127)), (False, (0, 255))):
        ref = np.clip(ref_round(a * float(ma) + b * float(mb), shift), lo, hi)
        assert np.array_equal(golden.join(a, b, ma, mb, shift, act_bits=8, signed=signed), ref)


# saturation edges --------------------------------------------------------------------------------

def test_adc_saturation_at_the_extremes():
    x = np.full(256, 255)
    for sign in (1, -1):
        w = np.full((256, 1), 7 * sign)  # dot = +-456960
        assert crossbar_mvm(x, w, encoding="pwm", act_bits=8, adc_bits=8, adc_shift=0)[0] == \
            (127 if sign > 0 else -128)
        # 456960 / 2**12 = 111.5625: rounds to 112, and -111.5625 rounds half up to -112
        assert crossbar_mvm(x, w, encoding="pwm", act_bits=8, adc_bits=8, adc_shift=12)[0] == 112 * sign
        # bit serial: every plane dot is +-1792 and saturates; 127 * (1 + 2 + ... + 128) = 32385
        assert crossbar_mvm(x, w, encoding="bit_serial", act_bits=8, adc_bits=8, adc_shift=0)[0] == \
            (127 * 255 if sign > 0 else -128 * 255)


def test_layer_saturation_at_the_extremes():
    x = np.full((1, 300), 255)  # two row tiles of 256 and 44 rows
    w = np.full((300, 2), 7)
    w[:, 1] = -7
    out = golden.crossbar_layer(x, w, np.array([0, 0]), np.array([65535, 65535]), 8, signed=True,
                                xbar_rows=256, encoding="pwm", act_bits=8, adc_bits=8, adc_shift=0)
    assert out.tolist() == [[127, -128]]
    relu = golden.crossbar_layer(x, w, np.array([0, 0]), np.array([1, 1]), 0, signed=False,
                                 xbar_rows=256, encoding="pwm", act_bits=8, adc_bits=8, adc_shift=0)
    # both tiles saturate (456960 and 78540 -> 127 each; negatives -> -128 each): the partial sum
    # is 254 (kept by the ReLU) and -256 (clipped to 0 by it)
    assert relu.tolist() == [[254, 0]]


# the whole network -------------------------------------------------------------------------------

def check_layer_by_layer(qnet, images):
    """Each layer's traced output recomputed from its traced inputs with the references."""
    arch = qnet.arch
    out = trace(qnet, images)
    for q in qnet:
        got = out[q.name]
        assert got.shape == (len(images), q.shape.h, q.shape.w, q.shape.c), q.name
        xs = [out[s] for s in q.inputs]
        lo, hi = (-128, 127) if q.signed else (0, 255)
        for i in range(len(images)):
            if q.kind == "input":
                ref = images[i]
            elif q.kind in ("conv", "dense"):
                x = xs[0][i].reshape(q.in_shape.h, q.in_shape.w, q.in_shape.c)
                w = q.weight.reshape(q.kernel, q.kernel, q.in_shape.c, q.cols)
                psum = 0
                for t in range(0, q.rows, arch.rows):  # one ADC conversion per row tile
                    wt = np.zeros_like(w).reshape(-1, q.cols)
                    wt[t:t + arch.rows] = q.weight[t:t + arch.rows]
                    dot = ref_conv(x, wt.reshape(w.shape), q.stride, q.padding)
                    psum = psum + np.clip(ref_round(dot, q.adc_shift), -2 ** (arch.adc_bits - 1),
                                          2 ** (arch.adc_bits - 1) - 1)
                ref = ref_requant(psum + q.bias, q.mult.astype(np.float64), q.shift, lo, hi)
            elif q.kind == "add":
                ref = np.clip(ref_round(xs[0][i] * float(q.mult_a) + xs[1][i] * float(q.mult_b),
                                        q.shift), lo, hi)
            elif q.kind == "maxpool":
                ref = ref_pool(xs[0][i], q.kernel, q.stride, q.padding, np.max, q.pad_value)
            elif q.kind == "avgpool":
                ref = ref_requant(ref_pool(xs[0][i], q.kernel, q.stride, 0, np.sum), q.mult, q.shift, lo, hi)
            elif q.kind == "global_avg_pool":
                ref = ref_requant(xs[0][i].sum(axis=(0, 1), keepdims=True), q.mult, q.shift, lo, hi)
            elif q.kind == "flatten":
                ref = xs[0][i].reshape(1, 1, -1)
            else:
                assert q.kind == "relu" and not q.signed
                ref = xs[0][i]
            assert np.array_equal(got[i], ref), q.name
    return out


@pytest.mark.parametrize("arch", [Arch(), Arch(rows=16, adc_bits=6), Arch(rows=40, input_encoding="bit_serial")],
                         ids=["default", "rows16_adc6", "rows40_bit_serial"])
def test_network_layers_equal_references(seeds, arch):
    seed = seeds(1)[0]
    net = small_net(seed)
    rng = np.random.default_rng(seed)
    qnet = quantize(net, arch, rng.integers(0, 256, (16, 8, 8, 2)))
    images = rng.integers(0, 256, (3, 8, 8, 2))
    if arch.input_encoding == "bit_serial":
        # the reference above converts whole dots; make the ADC lossless to compare
        for q in qnet.crossbar_layers:
            q.adc_shift = 0
        qnet = type(qnet)(qnet.name, arch.replace(adc_bits=16), qnet.layers, qnet.network, qnet.input_scale)
    out = check_layer_by_layer(qnet, images)
    assert np.array_equal(run(qnet, images), out["d2"].reshape(3, 3))


def test_dense_after_flatten_is_the_flattened_vector_times_the_matrix(rng):
    net = small_net()
    qnet = quantize(net, Arch(adc_bits=16), rng.integers(0, 256, (8, 8, 8, 2)))
    q = qnet["d1"]
    assert (q.kernel, q.in_shape) == (2, Shape(2, 2, 4))
    for layer in qnet.crossbar_layers:
        layer.adc_shift = 0
    out = trace(qnet, rng.integers(0, 256, (2, 8, 8, 2)))
    vec = out["r3"].reshape(2, -1).astype(np.float64)  # raster order, channels last
    ref = ref_requant(vec @ q.weight + q.bias, q.mult.astype(np.float64), q.shift, 0, 255)
    assert np.array_equal(out["d1"].reshape(2, -1), ref)


def test_bit_serial_network_equals_pwm_network_without_adc_loss(rng):
    net = small_net()
    calib = rng.integers(0, 256, (8, 8, 8, 2))
    arch = Arch(weight_bits=2, adc_bits=16, rows=20)  # |dot| <= 20 * 255 fits 16 bits
    shifts = {q.name: 0 for q in quantize(net, arch, calib).crossbar_layers}
    scales = calibrate_scales(net, calib / 255, act_bits=8)
    pwm = from_scales(net, arch, scales, adc_shifts=shifts)
    serial = from_scales(net, arch.replace(input_encoding="bit_serial"), scales, adc_shifts=shifts)
    images = rng.integers(0, 256, (4, 8, 8, 2))
    a, b = trace(pwm, images), trace(serial, images)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_float_forward_equals_references(rng):
    net = small_net()
    x = rng.random((2, 8, 8, 2))
    out = float_trace(net, x)
    c1 = net["c1"]
    for i in range(2):
        assert np.allclose(out["c1"][i], ref_conv(x[i], c1.weight, 1, 1) + c1.bias)
        assert np.allclose(out["mp"][i], ref_pool(out["r2"][i], 3, 1, 1, np.max, -np.inf))
        assert np.allclose(out["ap"][i], ref_pool(out["mp"][i], 2, 2, 0, np.mean))
    d1 = net["d1"]
    assert np.allclose(out["d1"].reshape(2, -1), out["r3"].reshape(2, -1) @ d1.weight + d1.bias)
    assert float_run(net, x).shape == (2, 3)


def test_quantized_outputs_track_the_float_network(rng):
    # dequantized integer activations follow the float ones (a loose sanity bound)
    net = small_net()
    calib = rng.integers(0, 256, (32, 8, 8, 2))
    qnet = quantize(net, Arch(), calib)
    out, ref = trace(qnet, calib), float_trace(net, calib / 255)
    for q in qnet:
        f = ref[q.name] if q.signed else np.maximum(ref[q.name], 0)
        err = np.abs(out[q.name] * q.scale - f).mean() / (np.abs(f).mean() + 1e-12)
        assert err < 0.1, (q.name, err)


@pytest.mark.parametrize("images,field", [
    (np.zeros((2, 8, 8, 1), np.int64), "images: expected an (N, 8, 8, 2) array"),
    (np.full((2, 8, 8, 2), 256), "images: pixels must be in 0..255"),
    (np.zeros((2, 8, 8, 2)), "images: expected integer pixels"),
])
def test_bad_images(rng, images, field):
    qnet = quantize(small_net(), Arch(), rng.integers(0, 256, (4, 8, 8, 2)))
    with pytest.raises(UserError, match=re.escape(field)):
        run(qnet, images)


@pytest.mark.parametrize("scale", [1, 2 ** 20, 2 ** 40])
def test_crossbar_dot_products_are_exact_at_any_magnitude(rng, scale):
    # small values take a float64 path, huge ones int64: both must equal Python integers
    x = rng.integers(0, 256, (3, 50)) * scale
    w = rng.integers(-7, 8, (50, 4))
    ref = [[sum(int(a) * int(b) for a, b in zip(row, col)) for col in w.T] for row in x]
    got = crossbar_mvm(x, w, encoding="pwm", act_bits=8, adc_bits=63, adc_shift=0)
    assert got.tolist() == ref
