"""Finding a network by name: the zoo, a TOML or an ONNX file, and quantizing it.

`load_network` accepts a zoo name (`imcflow.sw.zoo.names`) or a path ending in ``.toml`` or
``.onnx``. `load_qnetwork` also quantizes it for an architecture, calibrating on the training
images of a zoo network's data set and on seeded random images otherwise (a QDQ ONNX model keeps
its own scales, `imcflow.sw.onnx_import.quantize_onnx`). The weights' helpers are
`imcflow.sw.weights`, the calibration images `imcflow.sw.calibration`: the loaders use them, so
they sit below this module and nothing imports back into it.
"""

from __future__ import annotations

from pathlib import Path

from imcflow.errors import UserError
from imcflow.sw import zoo
from imcflow.sw.arch import load_arch
from imcflow.sw.calibration import calibration_images
from imcflow.sw.ir import Network
from imcflow.sw.quant import quantize
from imcflow.sw.toml_net import load_toml

__all__ = ["load_network", "load_qnetwork"]


def load_network(spec: str | Path) -> Network:
    """The float network named by ``spec``: a zoo name, a ``.toml`` or an ``.onnx`` path."""
    if str(spec) in zoo.names():
        return zoo.network(str(spec))
    if str(spec).endswith(".toml"):
        return load_toml(spec)
    if str(spec).endswith(".onnx"):
        return _onnx().import_onnx(spec).network
    raise UserError(f"--network: {str(spec)!r} is neither a zoo network ({', '.join(zoo.names())}) "
                    f"nor a .toml or .onnx file")


def load_qnetwork(spec, arch=None, images=None):
    """``spec`` loaded (a `Network`, zoo name, .toml or .onnx path) and quantized for ``arch`` (an
    `Arch`, preset name, TOML path or None for the default) on the 8-bit calibration ``images``
    (default: its `calibration_images`)."""
    if not isinstance(spec, Network) and str(spec).endswith(".onnx"):
        onnx_import = _onnx()
        return onnx_import.quantize_onnx(onnx_import.import_onnx(spec), load_arch(arch), images)
    net = spec if isinstance(spec, Network) else load_network(spec)
    dataset = zoo.dataset(str(spec)) if str(spec) in zoo.names() else None
    images = calibration_images(net, dataset) if images is None else images
    return quantize(net, load_arch(arch), images)


def _onnx():
    """`imcflow.sw.onnx_import`, imported when an ``.onnx`` file is loaded: it imports the onnx
    package, which takes about two seconds, and only ONNX networks need it."""
    from imcflow.sw import onnx_import
    return onnx_import
