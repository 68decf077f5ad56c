"""The images that calibrate a network and the held-out images that score it: ``--dataset``.

``imcflow gen``, ``imcflow accuracy`` and ``imcflow fpga build`` take the same ``--dataset``:

- a zoo data set by the name of its network (``digits``): calibration on the first
  `~imcflow.sw.calibration.CALIBRATION_IMAGES` training images, scoring on the held-out test images;
- your own images as a ``.npz`` file with an array ``images`` of shape ``(N, H, W, C)`` or
  ``(N, H, W)`` (integers 0..255, channels last, the network's input size) and optionally
  ``labels`` of shape ``(N,)`` (integer classes): the first ``CALIBRATION_IMAGES`` images
  calibrate, the other ``N - CALIBRATION_IMAGES`` are held out (so ``N`` must exceed it);
- a ``.npy`` file holding such an ``images`` array alone (no labels: it calibrates and can be
  simulated, but gives no accuracy).

Without ``--dataset`` a zoo network uses its own data set and a ``.toml`` or ``.onnx`` network is
calibrated on seeded random images (`~imcflow.sw.calibration.calibration_images`): a network with
no labelled data has no accuracy, and the commands say so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from imcflow.errors import UserError
from imcflow.sw import zoo
from imcflow.sw.calibration import CALIBRATION_IMAGES, calibration_images
from imcflow.sw.ir import Network
from imcflow.sw.networks import load_network, load_qnetwork

__all__ = ["load_dataset", "dataset_for", "calibration", "calibrated"]


def load_dataset(spec: str, field: str = "--dataset"):
    """The `~imcflow.sw.zoo.Dataset` named by ``spec``: a zoo network with a data set, or a
    ``.npz``/``.npy`` file in the format of the module docstring (labels None when it has none).

    Raises
    ------
    UserError
        Naming ``field``, for an unknown name or a file that cannot be read or has the wrong form.
    """
    spec = str(spec)
    with_data = [n for n in zoo.names() if zoo.dataset(n) is not None]
    if not spec.endswith((".npz", ".npy")):
        if spec in zoo.names() and zoo.dataset(spec) is not None:
            return zoo.dataset(spec)
        raise UserError(f"{field}: must be a zoo data set ({', '.join(with_data)}) or a .npz or "
                        f".npy file of images, not {spec!r}")
    path = Path(spec)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{field}: cannot read {spec!r}: {getattr(e, 'strerror', None) or e}") from None
    if isinstance(loaded, np.ndarray):
        images, labels = loaded, None
    else:
        with loaded:
            if "images" not in loaded.files:
                raise UserError(f"{field}: {path.name} has no array 'images' (it has "
                                f"{', '.join(loaded.files) or 'none'})")
            images = loaded["images"]
            labels = loaded["labels"] if "labels" in loaded.files else None
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.dtype.kind not in "iu" or images.size == 0 \
            or images.min() < 0 or images.max() > 255:
        raise UserError(f"{field}: {path.name}: images must be integers 0..255 of shape "
                        f"(N, H, W, C) or (N, H, W), not {images.dtype} {images.shape}")
    if len(images) <= CALIBRATION_IMAGES:
        raise UserError(f"{field}: {path.name} has {len(images)} images; the first "
                        f"{CALIBRATION_IMAGES} calibrate, so it needs more to hold some out")
    if labels is not None and (labels.shape != (len(images),) or labels.dtype.kind not in "iu"):
        raise UserError(f"{field}: {path.name}: labels must be {len(images)} integers, not "
                        f"{labels.dtype} {labels.shape}")
    images = images.astype(np.int64)
    labels = None if labels is None else labels.astype(np.int64)
    n = CALIBRATION_IMAGES
    return zoo.Dataset(spec, images[:n], None if labels is None else labels[:n],
                       images[n:], None if labels is None else labels[n:])


def dataset_for(network, dataset: str | None, net=None):
    """The data set of ``network`` (zoo name or path): ``dataset`` when given, else a zoo
    network's own, else None. Checks that its images fit the network's input (``net``, the
    loaded float network, when it is at hand)."""
    if dataset is not None:
        data = load_dataset(dataset)
    elif str(network) in zoo.names():
        data = zoo.dataset(str(network))
    else:
        return None
    if data is not None:
        net = net if net is not None else load_network(network)
        s = net.shapes[net.input.name]
        if data.test_images.shape[1:] != (s.h, s.w, s.c):
            raise UserError(f"--dataset: {data.name} images are "
                            f"{'x'.join(map(str, data.test_images.shape[1:]))}, the network "
                            f"takes {s.h}x{s.w}x{s.c}")
    return data


def calibration(net, data) -> tuple[np.ndarray, dict]:
    """``(images, record)``: the calibration images of ``net`` from ``data`` (a `Dataset` or
    None) and what a generated directory records about them (``manifest["calibration"]``):
    ``dataset`` (its name, or None for seeded random images), ``images``, ``held_out``,
    ``labels`` (whether the held-out images are labelled) and ``sha256`` of the calibration
    images."""
    images = calibration_images(net, data)
    record = {"dataset": None if data is None else data.name, "images": len(images),
              "held_out": 0 if data is None else len(data.test_images),
              "labels": data is not None and data.test_labels is not None,
              "sha256": hashlib.sha256(np.ascontiguousarray(images, np.int64).tobytes()).hexdigest()}
    if data is not None and data.name.endswith((".npz", ".npy")):
        record["path"] = str(Path(data.name).resolve())
    return images, record


def calibrated(network, arch=None, dataset: str | None = None):
    """``(qnet, data, record)``: ``network`` (a zoo name, .toml or .onnx path, or a `Network`)
    quantized for ``arch`` on the calibration images of its data set (`dataset_for`), that data
    set (or None) and the calibration record of `calibration`. `imcflow accuracy`, `imcflow gen`
    and `imcflow fpga build` all quantize through here, so they score and build the same
    network."""
    net = network if isinstance(network, Network) else load_network(network)
    data = dataset_for(network, dataset, net)
    images, record = calibration(net, data)
    return load_qnetwork(network, arch, images), data, record
