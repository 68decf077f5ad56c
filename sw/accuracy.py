"""``imcflow accuracy``: float and IMC (bit-exact integer) accuracy on a held-out data set.

The float network runs on ``images / 255``; the IMC accuracy is that of the golden model
(`imcflow.sw.inference.run`) of the network quantized for the architecture (a QDQ ONNX model
with its own scales). Sweep options take comma-separated values and evaluate their cartesian
product, each setting quantized afresh. Only networks with labelled images can be evaluated:
the ``digits`` zoo network, or a ``.toml`` or ``.onnx`` file with ``--dataset`` (a zoo data set
or your own labelled images, `imcflow.sw.datasets`). The network is calibrated exactly as
``imcflow gen`` calibrates it (`imcflow.sw.datasets.calibrated`), so the score is that of the
generated RTL. The command is `imcflow.cli.accuracy`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.arch import Arch, load_arch
from imcflow.sw.datasets import calibrated, calibration
from imcflow.sw.inference import float_run, run as golden_run
from imcflow.sw.networks import load_qnetwork
from imcflow.sw.quant import DEFAULT_INPUT_SCALE

__all__ = ["SWEEPS", "ARITH_FIELDS", "Setting", "AccuracyReport", "accuracy"]

#: sweep option -> (arch field, parser of one value)
SWEEPS = {"adc_bits": ("adc_bits", int), "weight_bits": ("weight_bits", int),
          "weight_noise": ("weight_noise", float), "encoding": ("input_encoding", str)}
#: arch fields that change the integer arithmetic (reported with every result)
ARITH_FIELDS = ("rows", "act_bits", "weight_bits", "adc_bits", "input_encoding", "weight_noise",
                "noise_seed")


@dataclass(frozen=True)
class Setting:
    """One setting of a sweep: the arch fields it sets (`SWEEPS`' fields, in the options' order)
    and its IMC accuracy."""

    fields: dict[str, object]
    imc_accuracy: float


@dataclass(frozen=True)
class AccuracyReport:
    """What `accuracy` measured: the network, data set and held-out ``images``, the float
    accuracy, the arch, the `ARITH_FIELDS` no option sweeps (``fixed``: all of them without a
    sweep) and either ``imc_accuracy`` (no sweep) or ``results``, one `Setting` per setting of
    the sweep (else None)."""

    network: str
    dataset: str
    images: int
    float_accuracy: float
    arch: Arch
    fixed: dict[str, object]
    imc_accuracy: float | None = None
    results: tuple[Setting, ...] | None = None

    def to_json(self) -> dict:
        """``network``, ``dataset``, ``images``, ``float_accuracy``, ``arch`` (every field), then
        without a sweep ``imc_accuracy`` and the fixed fields, with one the fixed fields and
        ``results`` (each setting's fields and ``imc_accuracy``)."""
        head = {"network": self.network, "dataset": self.dataset, "images": self.images,
                "float_accuracy": self.float_accuracy, "arch": self.arch.to_dict()}
        if self.results is None:
            return {**head, "imc_accuracy": self.imc_accuracy, **self.fixed}
        return {**head, **self.fixed, "results": [{**r.fields, "imc_accuracy": r.imc_accuracy}
                                                  for r in self.results]}


def accuracy(network: str, arch: Arch | None = None, sweep: dict[str, list] | None = None,
             log=lambda message: None, dataset: str | None = None) -> AccuracyReport:
    """Float and IMC accuracy of ``network`` (a zoo name, .toml or .onnx path) on held-out images.

    Parameters
    ----------
    arch : the architecture (default preset when None); sweep values replace its fields
    sweep : option of `SWEEPS` -> values; None (or empty) evaluates ``arch`` alone
    dataset : a zoo data set or a labelled .npz file (default: ``network``'s own), as
        `imcflow.sw.datasets.load_dataset`

    Returns
    -------
    AccuracyReport
    """
    arch = arch or load_arch()
    qnet, data, record = calibrated(network, arch, dataset)
    if data is None or data.test_labels is None:
        what = "has no labelled data set" if data is None else f"data set {data.name} has no labels"
        raise UserError(f"--{'dataset' if dataset else 'network'}: accuracy needs labelled held-out "
                        f"images, and {dataset or network} {what}; give --dataset (a zoo data set "
                        f"or a .npz file with images and labels)")
    net = qnet.network
    log(f"float network {network}: {len(data.test_images)} held-out images of {data.name}")
    float_acc = _score(float_run(net, data.test_images * DEFAULT_INPUT_SCALE), data.test_labels)
    calib = None

    def imc(a: Arch) -> float:
        nonlocal calib
        log("quantizing for " + ", ".join(f"{f}={getattr(a, f)}" for f in ARITH_FIELDS))
        if a == arch:
            q = qnet
        else:
            if calib is None:
                calib = calibration(net, data)[0]
            q = load_qnetwork(network, a, calib)
        return _score(golden_run(q, data.test_images), data.test_labels)

    swept = [SWEEPS[option][0] for option in sweep or {}]
    head = (str(network), data.name, len(data.test_images), float_acc, arch,
            {f: getattr(arch, f) for f in ARITH_FIELDS if f not in swept})
    if not sweep:
        return AccuracyReport(*head, imc_accuracy=imc(arch))
    settings = [dict(zip(swept, values)) for values in itertools.product(*sweep.values())]
    return AccuracyReport(*head, results=tuple(Setting(setting, imc(arch.replace(**setting)))
                                               for setting in settings))


def _score(logits, labels) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))
