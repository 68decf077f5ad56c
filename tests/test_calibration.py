"""Calibration follows the design: ``imcflow gen --dataset`` quantizes a network exactly as
``imcflow accuracy --dataset`` scores it, the directory records the data, and `held_out` gives
`imcflow sim` the same held-out images (`imcflow.sw.datasets`, `imcflow.gen.project`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from imcflow import cli
from imcflow.errors import UserError
from imcflow.gen.project import held_out, load
from imcflow.sw import zoo
from imcflow.sw.datasets import calibrated, calibration, load_dataset
from imcflow.sw.inference import run
from imcflow.sw.networks import load_network
from onnx_models import from_network, write

TINY = str(Path(__file__).parents[1] / "docs" / "examples" / "tiny_cnn.toml")


@pytest.fixture(scope="module")
def onnx_digits(tmp_path_factory):
    """The digits zoo network exported to ONNX (as a user would bring it) and generated with
    ``--dataset digits``; the CLI line is the one the issue found argparse confusing."""
    root = tmp_path_factory.mktemp("calib")
    path = write(from_network(zoo.network("digits")), root / "digits.onnx")
    out = root / "D"
    assert cli.main(["gen", "--network", str(path), "--dataset", "digits", "-o", str(out)]) == 0
    return path, out


def _sha(images) -> str:
    return hashlib.sha256(np.ascontiguousarray(images, np.int64).tobytes()).hexdigest()


def test_zoo_and_files_calibrate_on_their_training_images():
    data = zoo.dataset("digits")
    _, _, record = calibrated("digits", "default")
    assert record["dataset"] == "digits" and record["sha256"] == _sha(data.train_images[:64])
    _, _, record = calibrated(TINY, "default", "digits")      # a file network with --dataset
    assert record["sha256"] == _sha(data.train_images[:64])
    _, none, record = calibrated(TINY, "default")             # without: random, and it says so
    assert none is None and record["dataset"] is None and record["sha256"] != _sha(data.train_images[:64])


def _same_qnet(a, b):
    assert a.arch == b.arch and [l.name for l in a.layers] == [l.name for l in b.layers]
    for x, y in zip(a.layers, b.layers):
        for f in dataclasses.fields(x):
            u, v = getattr(x, f.name), getattr(y, f.name)
            assert np.array_equal(u, v) if isinstance(u, np.ndarray) else u == v, (x.name, f.name)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")   # load()'s unbuilt top
def test_gen_calibrates_as_accuracy_scores(onnx_digits, capsys):
    path, out = onnx_digits
    capsys.readouterr()
    gen = load(out)
    # The quantized network gen wrote is the one `imcflow accuracy` scores ...
    qnet, data, record = calibrated(str(path), "default", "digits")
    _same_qnet(gen.qnet, qnet)
    assert gen.manifest["calibration"] == record and record["dataset"] == "digits"
    assert record["images"] == 64 and record["held_out"] == 360 and record["labels"]
    assert record["sha256"] == _sha(zoo.dataset("digits").train_images[:64])   # digits' own
    assert gen.manifest["arch_name"] == "default"

    # ... and the held-out images sim streams by default are the ones accuracy uses, so the golden
    # model's accuracy on them is `imcflow accuracy`'s figure (sim checks the RTL against it).
    images, labels = held_out(gen.manifest)
    assert np.array_equal(images, data.test_images) and np.array_equal(labels, data.test_labels)
    assert cli.main(["accuracy", "--network", str(path), "--dataset", "digits", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    golden = float(np.mean(run(gen.qnet, images).reshape(len(images), -1).argmax(1) == labels))
    assert golden == report["imc_accuracy"] >= 0.95
    assert held_out(gen.manifest, 5)[0].shape == (5, 8, 8, 1)
    with pytest.raises(UserError, match="holds 360 held-out images, not 361"):
        held_out(gen.manifest, 361)


def test_without_data_the_directory_says_so(tmp_path):
    images, record = calibration(load_network("resnet8"), None)
    assert record["dataset"] is None and not record["labels"] and len(images) == 16
    assert held_out({"calibration": record}) == (None, None)


def test_own_images_npz_and_npy(tmp_path):
    data = zoo.dataset("digits")
    images = np.concatenate([data.train_images[:64], data.test_images[:10]])
    np.save(tmp_path / "x.npy", images[..., 0].astype(np.uint8))
    own = load_dataset(str(tmp_path / "x.npy"))
    assert np.array_equal(own.train_images, data.train_images[:64])
    assert np.array_equal(own.test_images, data.test_images[:10]) and own.test_labels is None
    # a changed file is noticed by the directory it calibrated
    _, _, record = calibrated("digits", "default", str(tmp_path / "x.npy"))
    assert record["path"] == str(tmp_path / "x.npy") and held_out({"calibration": record})[0].shape[0] == 10
    np.save(tmp_path / "x.npy", images[::-1, ..., 0].astype(np.uint8))
    with pytest.raises(UserError, match="is not the data that calibrated this directory"):
        held_out({"calibration": record})


@pytest.mark.parametrize("content, message", [
    ({"pixels": np.zeros((70, 8, 8), np.uint8)}, "has no array 'images'"),
    ({"images": np.zeros((10, 8, 8), np.uint8)}, "has 10 images; the first 64 calibrate"),
    ({"images": np.full((70, 8, 8), 300)}, "images must be integers 0..255"),
    ({"images": np.zeros((70, 8, 8), np.uint8), "labels": np.zeros(3, int)}, "labels must be 70"),
])
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    np.savez(tmp_path / "bad.npz", **content)
    with pytest.raises(UserError, match=f"^--dataset: bad.npz: .*{message}|^--dataset: bad.npz {message}"):
        load_dataset(str(tmp_path / "bad.npz"))


def test_images_must_fit_the_network(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((70, 16, 16, 1), np.uint8))
    with pytest.raises(UserError, match="--dataset: .*big.npy images are 16x16x1, the network takes 8x8x1"):
        calibrated("digits", "default", str(tmp_path / "big.npy"))
