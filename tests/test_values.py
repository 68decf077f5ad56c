"""The value objects the blocks share: WindowGeometry, Requantizer and CrossbarParams.

Each validates at construction with the one validator family (`imcflow.validate`): a bad field is
a one-line `UserError` naming it, which the CLI prints and exits 2 on. Their derived sizes are
checked against independent formulations (the golden model's windows, explicit numbers).
"""

import numpy as np
import pytest

from imcflow.errors import UserError
from imcflow.sw.arch import PRESETS, Arch, CrossbarParams
from imcflow.sw.arith import Requantizer, requantize
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.golden import windows
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_network


# --- WindowGeometry -----------------------------------------------------------------------------

@pytest.mark.parametrize("h, w, c, k, s, p", [
    (5, 5, 3, 3, 1, 1), (7, 4, 2, 3, 2, 0), (4, 4, 1, 4, 1, 0), (6, 9, 2, 2, 2, 1),
    (1, 1, 5, 1, 1, 0), (3, 8, 1, 3, 3, 2),
])
def test_geometry_sizes_are_those_of_the_golden_windows(h, w, c, k, s, p):
    # The windows of a map, cut out by the golden model, have the geometry's count and lanes.
    g = WindowGeometry(h, w, c, k, s, p)
    out = windows(np.zeros((h, w, c), dtype=np.int64), k, s, p)
    assert out.shape == (g.windows, g.lanes)
    assert g.windows == g.out_h * g.out_w and g.pixels == h * w and g.taps == k * k
    # ...the last window fits the padded map, one more would not
    assert (g.out_h - 1) * s + k <= h + 2 * p < g.out_h * s + k
    assert (g.out_w - 1) * s + k <= w + 2 * p < g.out_w * s + k
    first, last = g.input_range()
    assert len(first) == len(last) == g.windows
    # the line buffer holds at least one whole window span, at most the map
    assert int((last - first).max()) + 1 <= g.line_words <= max(h * w, 1)


def test_geometry_line_words_of_a_window_inside_the_map():
    # (k-1) rows plus k pixels
    assert WindowGeometry(8, 10, 1, 3).line_words == 2 * 10 + 3
    assert WindowGeometry(8, 10, 1, 1).line_words == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(h=0), "window.h: must be a positive integer, not 0"),
    (dict(w=4.0), "window.w: must be a positive integer, not 4.0"),
    (dict(channels=True), "window.channels: must be a positive integer, not True"),
    (dict(kernel=-3), "window.kernel: must be a positive integer, not -3"),
    (dict(stride=0), "window.stride: must be a positive integer, not 0"),
    (dict(padding=-1), "window.padding: must be an integer in 0..2, not -1"),
    (dict(padding=3), "window.padding: must be an integer in 0..2, not 3"),
    (dict(w=2), "window.kernel: 3 with padding 0 does not fit a 4x2 map"),
])
def test_a_bad_geometry_is_a_one_line_error_naming_the_field(kwargs, message):
    with pytest.raises(UserError) as info:
        WindowGeometry(**(dict(h=4, w=4, channels=1, kernel=3) | kwargs))
    assert str(info.value) == message


def test_geometry_is_a_value():
    a, b = WindowGeometry(4, 4, 2, 3, 1, 1), WindowGeometry(4, 4, 2, 3, padding=1)
    assert a == b and hash(a) == hash(b) and a != WindowGeometry(4, 4, 2, 3)
    assert WindowGeometry(np.int64(4), 4, 2, 3).h.__class__ is int  # NumPy sizes become ints
    with pytest.raises(AttributeError):
        a.h = 5


# --- Requantizer --------------------------------------------------------------------------------

def test_requantizer_applies_the_arithmetic_contract():
    rng = np.random.default_rng(0)
    acc = rng.integers(-5000, 5000, size=(50, 3))
    for signed in (False, True):
        r = Requantizer(np.array([300, 17, 65535]), 9, 6, signed)
        assert r.mult == (300, 17, 65535) and r.channels == 3
        # saturate(round_shift(acc * mult, shift)) written out: floor((x + 256) / 512), clipped
        x = acc * np.array([300, 17, 65535])
        lo, hi = (-32, 31) if signed else (0, 63)
        assert r.range == (lo, hi)
        assert np.array_equal(r.apply(acc), np.clip((x + 256) // 512, lo, hi))
        assert np.array_equal(r.apply(acc), requantize(acc, np.array(r.mult), 9, act_bits=6,
                                                       signed=signed))
    one = Requantizer(5, 0, 8)
    assert one.channels is None and one.apply(60).item() == 255 and one.apply(-1).item() == 0
    assert Requantizer([1, 2, 3], 1, 8).select(slice(1, 3)) == Requantizer((2, 3), 1, 8)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mult=-1), "requantizer.mult: must be an integer in 0..65535, not -1"),
    (dict(mult=[1, 65536]), "requantizer.mult: must have every element in 0..65535, not 1..65536"),
    (dict(mult=[0.5]), "requantizer.mult: must be an array of integers, not [0.5]"),
    (dict(shift=48), "requantizer.shift: must be an integer in 0..47, not 48"),
    (dict(shift="3"), "requantizer.shift: must be an integer in 0..47, not '3'"),
    (dict(bits=0), "requantizer.bits: must be a positive integer, not 0"),
    (dict(signed=1), "requantizer.signed: must be a bool, not 1"),
])
def test_a_bad_requantizer_is_a_one_line_error_naming_the_field(kwargs, message):
    with pytest.raises(UserError) as info:
        Requantizer(**(dict(mult=1, shift=0, bits=8, signed=False) | kwargs))
    assert str(info.value) == message


# --- CrossbarParams -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_crossbar_params_of_an_arch_are_its_crossbar_fields(name):
    arch = PRESETS[name]
    params = arch.crossbar
    assert params is arch.crossbar  # computed once per Arch
    assert (params.rows, params.cols, params.act_bits, params.adc_bits, params.mac_stages) == \
        (arch.rows, arch.cols, arch.act_bits, arch.adc_bits, arch.mac_stages)
    assert arch.replace(clock_mhz=1.0, core_budget=5).crossbar == params  # not a crossbar field


@pytest.mark.parametrize("params, planes, output_range, cols, per_cycle, interval", [
    # pwm: one conversion, signed 8-bit codes; 8 cycles per MVM: ceil(20/8) = 3 columns per cycle
    (CrossbarParams(), 1, (-128, 127), 20, 3, 8),
    # bit_serial 4-bit inputs: 4 planes of 6-bit codes shift-added (times 15); 8 // 4 = 2 steps
    (CrossbarParams(act_bits=4, adc_bits=6, input_encoding="bit_serial"), 4, (-480, 465), 20, 10,
     8),
    # one column per cycle: 20 steps, longer than the analog interval
    (CrossbarParams(col_parallelism=1), 1, (-128, 127), 20, 1, 20),
])
def test_crossbar_params_derived(params, planes, output_range, cols, per_cycle, interval):
    assert params.planes == planes and params.output_range == output_range
    assert params.columns_per_cycle(cols) == per_cycle and params.mvm_interval(cols) == interval


@pytest.mark.parametrize("kwargs, message", [
    (dict(rows=0), "crossbar.rows: must be an integer in 1..4096, not 0"),
    (dict(adc_bits=17), "crossbar.adc_bits: must be an integer in 2..16, not 17"),
    (dict(input_encoding="pcm"),
     "crossbar.input_encoding: must be one of 'pwm', 'bit_serial', not 'pcm'"),
    (dict(col_parallelism=0), "crossbar.col_parallelism: must be an integer in 1..4096, not 0"),
    (dict(input_encoding="bit_serial", mvm_cycles=4),
     "crossbar.mvm_cycles: bit_serial input needs at least act_bits = 8 cycles per MVM (one bit "
     "plane per cycle), not 4"),
])
def test_bad_crossbar_params_are_a_one_line_error_naming_the_field(kwargs, message):
    with pytest.raises(UserError) as info:
        CrossbarParams(**kwargs)
    assert str(info.value) == message
    # the same field of an Arch is named as the arch's
    with pytest.raises(UserError, match=r"^arch\."):
        Arch(**kwargs)


def test_a_mapping_gives_the_geometry_of_its_window_stages():
    net = load_network("digits")
    mapping = map_network(net, Arch())
    stages = {l.role: l for l in mapping.layers}
    conv = stages["crossbar"]
    assert conv.geometry == WindowGeometry(conv.in_shape.h, conv.in_shape.w, conv.in_shape.c,
                                           conv.kernel, conv.stride, conv.padding)
    assert (conv.geometry.out_h, conv.geometry.out_w, conv.geometry.channels) == \
        (conv.out_shape.h, conv.out_shape.w, conv.in_shape.c)
    assert stages["source"].geometry is None
