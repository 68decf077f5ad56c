"""The 8-bit images that calibrate a network's quantization when the caller gives none: training
images of its data set, or seeded random images (`calibration_images`). Below both the loaders
(`imcflow.sw.onnx_import`) and `imcflow.sw.networks`, which use it.
"""

from __future__ import annotations

import numpy as np

from imcflow.sw.ir import Network

__all__ = ["CALIBRATION_IMAGES", "RANDOM_CALIBRATION_IMAGES", "calibration_images"]

#: training images used to calibrate scales and ADC shifts
CALIBRATION_IMAGES = 64
#: random images used instead for a network without a data set
RANDOM_CALIBRATION_IMAGES = 16


def calibration_images(net: Network, dataset=None, count: int | None = None,
                       seed: int = 0) -> np.ndarray:
    """8-bit calibration images for ``net``: the first ``count`` (default `CALIBRATION_IMAGES`)
    training images of ``dataset`` (a `imcflow.sw.zoo.Dataset`), or ``count`` (default
    `RANDOM_CALIBRATION_IMAGES`) seeded uniformly random images without one."""
    if dataset is not None:
        return dataset.train_images[:count or CALIBRATION_IMAGES]
    count = count or RANDOM_CALIBRATION_IMAGES
    s = net.shapes[net.input.name]
    return np.random.default_rng(seed).integers(0, 256, (count, s.h, s.w, s.c), dtype=np.int64)
