# amaranth: UnusedElaboratable=no
"""The iCEBreaker configuration: the ``digits_ice40`` zoo network on the ``ice40`` preset.

Its weights are the trainer's (retrained here, bit for bit; the trainer's flatten is checked
against finite differences) and its accuracy is the documented one. Its RTL (both crossbar flavours) is bit-exact and on the performance model's cycles under
Verilator, with random idle cycles and backpressure; the multiplier plan keeps exactly as many
requantization multiplies in DSPs as the board has (Yosys run on a small design); the fit check
counts the same; and the whole board top is synthesized, placed and routed for the iCE40 UP5K,
where it must fit and meet the board's 12 MHz (about 2 minutes of CPU).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil

from imcflow import cli, toolchain
from imcflow.fpga.boards import board
from imcflow.fpga.design import prepare_design
from imcflow.fpga.resources import MULT_LUTS, estimate, multiplier_plan, multipliers, yosys_script
from imcflow.sw import zoo
from imcflow.sw.arch import PRESETS
from imcflow.sw.inference import float_run, run
from imcflow.sw.ir import Conv2d, Dense, Flatten, Input, Network, ReLU, Shape
from imcflow.sw.networks import load_network, load_qnetwork
from imcflow.sw.weights import he_init, with_weights
from imcflow.sw.zoo import train_digits

NETWORK, ARCH = "digits_ice40", "ice40"


def test_the_stored_weights_are_the_trainers():
    params = train_digits.train(network=NETWORK, log=lambda line: None)
    stored = np.load(zoo.DIGITS_ICE40_TOML.with_suffix(".npz"))
    assert sorted(stored.files) == sorted(params)
    assert all(np.array_equal(stored[k], params[k].astype(np.float32)) for k in params)


def test_the_trainer_flattens_into_the_dense_layer(rng):
    net = he_init(Network("t", [
        Input("in", Shape(5, 5, 2)), Conv2d("c", "in", 3, kernel=3, stride=2), ReLU("r", "c"),
        Flatten("f", "r"), Dense("d", "f", 4)]), seed=3)
    params = {f"{l.name}.{p}": getattr(l, p) + rng.normal(0, 0.1, getattr(l, p).shape)
              for l in net if l.op.weighted for p in ("weight", "bias")}
    x, probe = rng.random((3, 5, 5, 2)), rng.normal(size=(3, 1, 1, 4))
    acts, cache = train_digits.forward(net, params, x)
    # the dense layer reads the flattened map in raster order, channels last, as float_run does
    assert np.allclose(acts["d"].reshape(3, 4), float_run(with_weights(net, params), x))
    grads = train_digits.backward(net, acts, cache, probe)
    for key, value in params.items():
        for idx in np.ndindex(value.shape):
            bumped = {k: v.copy() for k, v in params.items()}
            bumped[key][idx] += 1e-6
            lowered = {k: v.copy() for k, v in params.items()}
            lowered[key][idx] -= 1e-6
            numeric = ((train_digits.forward(net, bumped, x)[0]["d"] * probe).sum()
                       - (train_digits.forward(net, lowered, x)[0]["d"] * probe).sum()) / 2e-6
            assert abs(numeric - grads[key][idx]) < 1e-5 * max(1.0, abs(numeric)), (key, idx)


def test_digits_ice40_accuracy():
    # 360 held-out digits: 342 right in float, 332 on the ice40 arithmetic (docs/fpga.md)
    data = zoo.dataset(NETWORK)
    float_right = (float_run(load_network(NETWORK), data.test_images / 255).argmax(axis=1)
                   == data.test_labels).sum()
    imc_right = (run(load_qnetwork(NETWORK, ARCH), data.test_images).argmax(axis=1)
                 == data.test_labels).sum()
    assert (float_right, imc_right, len(data.test_labels)) == (342, 332, 360)


@pytest.mark.parametrize("target", ["sim", "fpga"])
def test_digits_ice40_rtl_is_bit_exact_on_the_model_timing(tmp_path, capsys, seeds, target):
    # `imcflow gen` then `imcflow sim`: held-out digits, random idle input cycles and output
    # backpressure; the model, given the same stall masks, predicts every image's cycles.
    out, (seed,) = tmp_path / target, seeds(1)
    assert cli.main(["gen", "--network", NETWORK, "--arch", ARCH, "--target", target,
                     "-o", str(out), "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["sim", str(out), "--images", "12", "--seed", str(seed), "--idle", "0.3",
                     "--backpressure", "0.5", "--json"]) == 0
    f = json.loads(capsys.readouterr().out)
    assert f["bit_exact"] == f["images"] == 12 and f["first_mismatch"] is None
    assert f["layers_checked"] == 2 and f["layer_mismatches"] == {}
    assert f["model_completion_error_cycles"] == 0 and f["first_timing_mismatch"] is None
    assert f["model_handshake_error_cycles"] == 0 and f["first_handshake_mismatch"] is None
    assert f["latency_cycles"] == f["model_latency_cycles"]


def test_the_multiplier_plan_keeps_the_dsps_it_has(tmp_path):
    # digits_ice40 has 14 requantization products (conv1 4, fc 10). The plan keeps the first
    # `dsps` of them in SB_MAC16s and maps the others to logic, where `synth_ice40 -dsp` leaves
    # them (without the plan's commands it would take 14 DSPs).
    accelerator = prepare_design(NETWORK, ARCH).accelerator
    products = multipliers(accelerator, "t")
    assert products == [f"t.conv1.layer.accumulator_0/w:prod{c}" for c in range(4)] + \
        [f"t.fc.layer.accumulator_0/w:prod{c}" for c in range(10)]
    ice = board("icebreaker")
    plan = multiplier_plan(products, ice)
    assert (plan["dsp"], plan["logic"], plan["dsps"]) == (products[:8], products[8:], 8)
    assert multiplier_plan(products, board("ulx3s-85f"))["logic"] == []

    script = yosys_script({"placements": []}, multiplier_plan(products, replace(ice, dsps=3)))
    assert script.count("techmap") == 11
    (tmp_path / "t.il").write_text(rtlil.convert(accelerator, name="t"))
    subprocess.run([toolchain.require("yosys"), "-q", "-p",     # yowasp sees the working directory
                    f"read_rtlil t.il; {script}; synth_ice40 -dsp -top t; tee -q -o stat.txt stat"],
                   check=True, capture_output=True, cwd=tmp_path, env=toolchain.environ())
    cells = dict((name, int(n)) for n, name in
                 re.findall(r"^\s+(\d+)\s+(\w+)\s*$", (tmp_path / "stat.txt").read_text(), re.M))
    assert cells.get("SB_MAC16") == 3


def test_a_product_the_plan_cannot_find_fails_the_build(tmp_path):
    # (the fc layer has products 0..9)
    accelerator = prepare_design(NETWORK, ARCH).accelerator
    script = yosys_script({"placements": []}, {"logic": ["t.fc.layer.accumulator_0/w:prod10"]})
    (tmp_path / "t.il").write_text(rtlil.convert(accelerator, name="t"))
    done = subprocess.run([toolchain.require("yosys"), "-q", "-p", f"read_rtlil t.il; {script}"],
                          capture_output=True, text=True, cwd=tmp_path, env=toolchain.environ())
    assert done.returncode != 0 and "Assertion failed: selection" in done.stdout + done.stderr


def test_the_fit_check_counts_the_dsps_of_an_ice40():
    design = prepare_design(NETWORK, ARCH)
    ice, ecp5 = board("icebreaker"), board("ulx3s-85f")
    on_ice, on_ecp5 = estimate(design.generated.mapping, ice), estimate(design.generated.mapping, ecp5)
    assert (on_ecp5.dsps, on_ice.dsps) == (14, 8)
    # the 6 multiplies beyond the 8 DSPs in logic, and the weight memories each family places
    # its own way (block RAM addressing or LUT-RAM), are the only differences
    assert on_ice.consumers["multiplies in logic"] == 6 * MULT_LUTS
    assert on_ice.luts - on_ecp5.luts == 6 * MULT_LUTS + on_ice.crossbar_luts - on_ecp5.crossbar_luts
    assert on_ice.fits(ice)


def test_digits_ice40_fits_the_icebreaker_and_meets_its_clock(tmp_path, capsys):
    # The whole board top (UART host link at 3 Mbaud, LEDs) around digits_ice40 for the iCE40
    # UP5K: it fits (logic cells, block RAMs, all 8 DSPs) and meets the 12 MHz oscillator.
    out = tmp_path / "out"
    assert cli.main(["fpga", "build", "--board", "icebreaker", "--network", NETWORK,
                     "--arch", ARCH, "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["board"], report["device"], report["arch_name"]) == ("icebreaker", "iCE40UP5K", ARCH)
    assert report["arch"] == PRESETS[ARCH].to_dict() and report["synth_options"] == "-dsp"
    for name, available in (("luts", 5280), ("ffs", 5280), ("brams", 30), ("dsps", 8)):
        assert report[name]["available"] == available and 0 < report[name]["used"] <= available
    assert report["dsps"]["used"] == report["multipliers"]["dsps"] == 8
    assert len(report["multipliers"]["logic"]) == 6
    assert report["target_mhz"] == 12.0 and report["fmax_mhz"] >= 12.0 and report["timing"]["met"]
    assert (report["baud"], report["divisor"]) == (3_000_000, 4)
    bitstream = Path(report["bitstream"])
    assert bitstream == out.resolve() / "top.bin" and bitstream.stat().st_size > 100_000
    print(f"digits_ice40 on the iCEBreaker: {report['luts']['used']} logic cells, "
          f"{report['ffs']['used']} FFs, {report['brams']['used']} BRAMs, {report['dsps']['used']} "
          f"DSPs, Fmax {report['fmax_mhz']} MHz, {report['build_seconds']} s "
          f"(CPU {report['tool_cpu_seconds']})")
