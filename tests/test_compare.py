"""`imcflow.verif.compare` on recordings made from the golden model itself and then corrupted
the ways an RTL goes wrong: a wrong value, a wrong ``last``, a lost beat, an extra beat, a beat
one cycle late. Every one is found, located (layer, image, pixel, channel) and counted; the
untouched recording passes. No simulator: the whole-accelerator runs are tests/test_sim.py.
"""

from __future__ import annotations


import numpy as np
import pytest

from imcflow.sw.arch import load_arch
from imcflow.sw.datasets import calibrated
from imcflow.sw.inference import trace
from imcflow.sw.mapper import map_network
from imcflow.sw.perf import simulate as model
from imcflow.verif import compare
from imcflow.sw.ir import Conv2d, Input, Network, ReLU, Shape
from imcflow.sw.weights import he_init
from small_networks import small_net

IMAGES = 3


def recording(net):
    """``(qnet, schedule, pixels, taps)``: a perfect recording of ``net`` on `IMAGES` random
    images, as the C++ engine returns it (every stage's beats, on the model's cycles)."""
    arch = load_arch("default", buffer="line")
    qnet = calibrated(net, arch, None)[0]
    mapping = map_network(qnet.network, arch)
    s = qnet.network.shapes[qnet.input.name]
    pixels = np.random.default_rng(1).integers(0, 256, (IMAGES, s.h, s.w, s.c))
    golden, schedule = trace(qnet, pixels), model(mapping, IMAGES)

    def stream(name):
        values = golden[name].reshape(-1, golden[name].shape[-1])
        per_image = len(values) // IMAGES
        return (schedule.emit[name].copy(), values.copy(),
                np.arange(len(values)) % per_image == per_image - 1)

    taps = {l.name: stream(l.name) for l in mapping.stages if l.role != "source"}
    return qnet, schedule, pixels, taps


@pytest.fixture(scope="module")
def run():
    return recording(small_net())


def check(run, taps):
    qnet, schedule, pixels, _ = run
    out = taps[qnet.output.name]
    streams = compare.Streams(qnet, pixels, (out[1], out[2]), taps)
    shapes = {name: (qnet[name].shape.h, qnet[name].shape.w, qnet[name].shape.c) for name in taps}
    per_image = len(out[1]) // IMAGES
    return {**streams.figures(),
            **compare.timing(schedule, IMAGES, out[0], per_image, taps, shapes)}


def copy(taps):
    return {k: tuple(a.copy() for a in v) for k, v in taps.items()}


def test_a_perfect_recording_passes(run):
    f = check(run, run[3])
    assert (f["bit_exact"], f["output_bit_exact"], f["layers_checked"]) == (IMAGES, IMAGES, 10)
    assert f["first_mismatch"] is None and f["layer_mismatches"] == {}
    assert (f["missing_beats"], f["extra_beats"], f["extra_layer_beats"]) == (0, 0, 0)
    assert f["model_completion_error_cycles"] == 0 and f["model_handshake_error_cycles"] == 0


def test_a_wrong_value_is_located(run):
    taps = copy(run[3])
    cycles, values, last = taps["c2"]      # 4x4x6 per image: image 1, row 2, col 3, channel 5
    values[16 + 2 * 4 + 3, 5] += 1
    f = check(run, taps)
    assert f["first_mismatch"] == {"layer": "c2", "image": 1, "beat": 27, "pixel": [2, 3],
                                   "channel": 5, "expected": int(values[27, 5] - 1),
                                   "actual": int(values[27, 5])}
    assert f["layer_mismatches"] == {"c2": 1} and f["bit_exact"] == IMAGES - 1
    assert f["output_bit_exact"] == IMAGES and f["mismatched_images"] == 1


def test_the_most_upstream_layer_is_reported_first(run):
    taps = copy(run[3])
    taps["d1"][1][0, 0] += 1               # later in the network, earlier in time
    taps["c1"][1][150, 1] += 1             # image 2, earlier in the network
    f = check(run, taps)
    m = f["first_mismatch"]
    assert (m["layer"], m["image"], m["pixel"], m["channel"]) == ("c1", 2, [2, 6], 1)
    assert set(f["layer_mismatches"]) == {"c1", "d1"}


def test_a_wrong_last_flag_is_reported(run):
    taps = copy(run[3])
    taps["mp"][2][5] = True                # `last` in the middle of image 0
    f = check(run, taps)
    m = f["first_mismatch"]
    assert (m["layer"], m["image"], m["beat"], m["channel"]) == ("mp", 0, 5, None)
    assert (m["expected"], m["actual"]) == ("last=False", "last=True")


def test_lost_and_extra_beats_are_counted(run):
    taps = copy(run[3])
    out = run[0].output.name
    taps["ap"] = tuple(a[:-1] for a in taps["ap"])                       # the last beat lost
    taps[out] = tuple(np.concatenate([a, a[-1:]]) for a in taps[out])   # one beat too many
    f = check(run, taps)
    assert f["layer_mismatches"] == {"ap": 1} and f["bit_exact"] == IMAGES - 1
    assert (f["extra_beats"], f["missing_beats"]) == (1, 0)
    assert f["model_handshake_error_cycles"] is None        # the beats do not pair up


def test_a_late_handshake_is_located(run):
    taps = copy(run[3])
    taps["proj"][0][20:] += 1              # proj is 4x4: from image 1, pixel (1, 0) on
    f = check(run, taps)
    m = f["first_handshake_mismatch"]
    assert (m["layer"], m["image"], m["pixel"], m["difference"]) == ("proj", 1, [1, 0], 1)
    assert f["model_handshake_error_cycles"] == 1 and f["model_completion_error_cycles"] == 0
    assert f["bit_exact"] == IMAGES                        # the data are right


def test_a_late_image_is_located(run):
    taps = copy(run[3])
    out = run[0].output.name
    taps[out][0][2:] += 3                  # the output: image 2 completes 3 cycles late
    f = check(run, taps)
    assert f["first_timing_mismatch"]["image"] == 2
    assert f["first_timing_mismatch"]["difference"] == 3
    assert f["model_completion_error_cycles"] == 3


def test_an_image_completes_with_its_last_output_beat():
    # A network whose output is a feature map (36 beats per image): an image completes with its
    # last beat, so only that beat's delay shows as a completion error.
    layers = [Input("in", Shape(6, 6, 2)), Conv2d("c1", "in", 4, kernel=3, padding=1),
              ReLU("r1", "c1"), Conv2d("c2", "r1", 3, kernel=1)]
    run = recording(he_init(Network("conv_head", layers), seed=5))
    taps = copy(run[3])
    taps["c2"][0][36 + 35] += 2            # image 1's last beat, 2 cycles late
    taps["c2"][0][2 * 36] += 1             # image 2's first beat, 1 cycle late
    f = check(run, taps)
    assert f["first_timing_mismatch"]["image"] == 1 and f["model_completion_error_cycles"] == 2
    assert f["first_handshake_mismatch"]["pixel"] == [5, 5]
