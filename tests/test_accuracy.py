"""`imcflow accuracy`: JSON and table output, sweeps, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imcflow.cli import main
from imcflow.errors import UserError
from imcflow.sw.accuracy import accuracy
from imcflow.sw import zoo
from imcflow.sw.arch import load_arch


def run_cli(capsys, *argv):
    code = main(["accuracy", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_single_setting(capsys):
    code, out, err = run_cli(capsys, "--network", "digits", "--json")
    assert code == 0 and "quantizing" in err
    report = json.loads(out)
    assert report["network"] == "digits" and report["images"] >= 300
    assert report["float_accuracy"] >= 0.95 and report["imc_accuracy"] >= 0.95
    assert (report["adc_bits"], report["weight_bits"], report["input_encoding"], report["rows"]) == \
        (8, 4, "pwm", 256)
    # the result names the arch it used and every resolved field
    assert report["arch_name"] == "default" and report["arch"] == load_arch("default").to_dict()


def test_json_sweep_is_the_cartesian_product(capsys):
    code, out, _ = run_cli(capsys, "--adc-bits", "3,8", "--weight-bits", "2,4", "--json")
    assert code == 0
    report = json.loads(out)
    settings = [(r["adc_bits"], r["weight_bits"]) for r in report["results"]]
    assert settings == [(3, 2), (3, 4), (8, 2), (8, 4)]
    assert "adc_bits" not in report and report["input_encoding"] == "pwm"
    acc = {s: r["imc_accuracy"] for s, r in zip(settings, report["results"])}
    # a 3-bit ADC and 2-bit weights cost accuracy; the default settings do not
    assert acc[(8, 4)] >= 0.95 and acc[(3, 2)] < acc[(8, 4)]


def test_weight_noise_lowers_accuracy():
    report = accuracy("digits", sweep={"weight_noise": [0.0, 0.3]})
    clean, noisy = (r.imc_accuracy for r in report.results)
    assert noisy < clean


def test_table(capsys):
    code, out, _ = run_cli(capsys, "--encoding", "pwm", "--arch", "small")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("network digits, arch small: 360 held-out images of "
                                             "digits, float accuracy ")
    assert "rows 64" in lines[1] and lines[2].split() == ["input_encoding", "imc_accuracy"]
    assert lines[3].split()[0] == "pwm" and 0.9 < float(lines[3].split()[1]) <= 1


@pytest.mark.parametrize("argv,message", [
    (["--network", "resnet20"], "--network: accuracy needs labelled held-out images, and resnet20 "
                                "has no labelled data set; give --dataset"),
    (["--network", "digits", "--dataset", "cifar"], "--dataset: must be a zoo data set ("
     + ", ".join(n for n in zoo.names() if zoo.dataset(n) is not None)
     + ") or a .npz or .npy file of images, not 'cifar'"),
    (["--adc-bits", "4,x"], "--adc-bits: expected comma-separated int values, not '4,x'"),
    (["--adc-bits", "1"], "arch.adc_bits: must be an integer in 2..16, not 1"),
    (["--encoding", "analog"], "arch.input_encoding: must be one of 'pwm', 'bit_serial', not 'analog'"),
    (["--weight-noise", "2"], "arch.weight_noise: must be a number in [0.0, 1.0], not 2.0"),
    (["--arch", "huge"], "--arch: 'huge' is neither a preset"),
])
def test_errors_are_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("imcflow accuracy: error: ") and message in last


def test_library_rejects_networks_without_data():
    with pytest.raises(UserError, match="resnet8 has no labelled data set"):
        accuracy("resnet8")


def test_own_labelled_images_as_npz(tmp_path, capsys):
    # The digits data set written as a user's file scores like the zoo data set once the split
    # matches: the first 64 images calibrate (the zoo's first 64 training images), the rest are
    # held out (the zoo's 360 test images).
    data = zoo.dataset("digits")
    np.savez(tmp_path / "mine.npz", images=np.concatenate([data.train_images[:64],
                                                             data.test_images])[..., 0],
             labels=np.concatenate([data.train_labels[:64], data.test_labels]))
    zoo_report = accuracy("digits")
    mine = accuracy("digits", dataset=str(tmp_path / "mine.npz"))
    assert mine.images == 360 and mine.imc_accuracy == zoo_report.imc_accuracy

    np.save(tmp_path / "unlabelled.npy", data.test_images)
    code, out, err = run_cli(capsys, "--dataset", str(tmp_path / "unlabelled.npy"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "unlabelled.npy has no labels" in err
