"""Built-in networks (the zoo) and their data sets.

- ``digits``: a small residual CNN for scikit-learn's bundled 8x8 handwritten digits, described
  in ``digits.toml`` with float weights in ``digits.npz`` (trained by
  ``python -m imcflow.sw.zoo.train_digits``).
- ``digits_dw``: a depthwise-separable CNN (MobileNet style, ReLU6 as clipped ReLUs) for the same
  digits, ``digits_dw.toml`` and ``digits_dw.npz`` (``train_digits --network digits_dw``): 97.2 %
  float, 97.5 % quantized (default arch) on the 360 held-out images.
- ``digits_ice40``: a strided conv and a dense layer for the same digits, small enough for the
  iCEBreaker's iCE40 UP5K, ``digits_ice40.toml`` and ``digits_ice40.npz``
  (``train_digits --network digits_ice40``).
- ``resnet8``, ``resnet20``, ``resnet32``: the CIFAR-10 ResNets of He et al. (2016) with
  seeded He-initialised weights (no data set: they are for mapping, RTL and performance).

`network` returns the float `Network`; `dataset` the labelled images of a network that has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.ir import Network
from imcflow.sw.toml_net import load_toml
from imcflow.sw.zoo.resnets import RESNET_BLOCKS, resnet

__all__ = ["names", "network", "dataset", "Dataset", "DIGITS_TOML", "DIGITS_DW_TOML",
           "DIGITS_ICE40_TOML", "DIGITS_TEST_IMAGES"]

DIGITS_TOML = Path(__file__).with_name("digits.toml")
DIGITS_DW_TOML = Path(__file__).with_name("digits_dw.toml")
DIGITS_ICE40_TOML = Path(__file__).with_name("digits_ice40.toml")
#: the zoo networks described by a TOML file here, all on the digits data
_DIGITS = {"digits": DIGITS_TOML, "digits_dw": DIGITS_DW_TOML,
           "digits_ice40": DIGITS_ICE40_TOML}
#: held-out digits images (a seeded permutation's first images)
DIGITS_TEST_IMAGES = 360
#: seed of the digits train/test split
DIGITS_SPLIT_SEED = 0


def names() -> list[str]:
    """Names of the zoo networks."""
    return [*_DIGITS, *RESNET_BLOCKS]


def network(name: str) -> Network:
    """The float zoo network ``name``."""
    if name in _DIGITS:
        return load_toml(_DIGITS[name])
    if name in RESNET_BLOCKS:
        return resnet(name)
    raise UserError(f"--network: {name!r} is not a zoo network; choose from {', '.join(names())}")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Labelled 8-bit images ``(N, H, W, C)`` (int64 in 0..255) split into train and test.

    The float network sees ``images / 255``.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


@lru_cache(maxsize=None)
def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    data = load_digits()
    images = np.round(data.images * (255 / 16)).astype(np.int64)[..., None]  # 0..16 -> 0..255
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(images))
    test, train = order[:DIGITS_TEST_IMAGES], order[DIGITS_TEST_IMAGES:]
    labels = data.target.astype(np.int64)
    return Dataset("digits", images[train], labels[train], images[test], labels[test])


def dataset(name: str) -> Dataset | None:
    """The data set of zoo network ``name``, or None when it has none."""
    if name not in names():
        raise UserError(f"--network: {name!r} is not a zoo network; choose from {', '.join(names())}")
    return _digits() if name in _DIGITS else None
