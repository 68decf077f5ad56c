"""Quantization of a float `Network` to the integer arithmetic contract (docs/arithmetic.md).

The result is a `QNetwork`: one quantized layer per IR layer, in the same topological order, with
the integer parameters the RTL blocks need and the float ``scale`` of every output (the real
value of one output code) for reporting. Quantization has two steps, kept apart so that an
importer that already has scales (an ONNX QDQ model) reuses the second one:

1. `calibrate_scales`: the output scale of every requantizing layer (`imcflow.sw.ops.Op.
   requantizing`: conv, dense, add, average pools) from float activations on sample inputs: the
   ``percentile`` of ``|y|`` (of ``min(max(y, 0), ceiling)`` when an activation is fused: a ReLU
   has no ceiling) divided by the largest output code.
2. `from_scales`: every integer parameter from the scales: per-output-channel symmetric weights,
   the programmed weight image (with seeded noise), the per-layer ADC gain shift (given, or
   calibrated on sample images through the integer model so far), the bias in accumulator units
   and the fixed-point multipliers.

Each layer kind quantizes itself (`imcflow.sw.ops.Op.quantize`, its ``Q*`` class); this module
holds the network-wide steps and `QNetwork`. `quantize` does both. Scale rules: the network input
is unsigned 8-bit with scale ``input_scale``; an activation (`imcflow.sw.ops.Op.activation`: a
ReLU) fuses into the conv, dense, add or average pool that produces its input (through max pools and flattens), which then
saturates to unsigned ``act_bits``; a layer whose output feeds anything but activations produces
signed ``act_bits`` values (an average pool only when its input is signed); max pool and flatten
pass their input's codes and scale through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.arch import Arch
from imcflow.sw.arith import act_range
from imcflow.sw.inference import check_images, float_trace, layer_forward
from imcflow.sw.ir import LAYER_KINDS, Network, Shape
from imcflow.sw.ops import (QAdd, QAvgPool, QConv, QCrossbar, QDense, QFlatten, QGlobalAvgPool, QInput,
                            QLayer, QMaxPool, QReLU, QuantContext, registry)
from imcflow.sw.ops.crossbar import (DEFAULT_PERCENTILE, choose_adc_shift, program_weights,
                                     quantize_weights)
from imcflow.validate import check_int

__all__ = [
    "QLayer", "QInput", "QCrossbar", "QConv", "QDense", "QAdd", "QMaxPool", "QAvgPool",
    "QGlobalAvgPool", "QFlatten", "QReLU", "QNetwork", "DEFAULT_PERCENTILE", "DEFAULT_INPUT_SCALE",
    "output_signed", "calibrate_scales", "quantize_weights", "program_weights", "choose_adc_shift",
    "from_scales", "quantize",
]

#: real value of one 8-bit input code: pixels 0..255 stand for 0..1
DEFAULT_INPUT_SCALE = 1 / 255


@dataclass(eq=False)
class QNetwork:
    """A quantized network for one architecture.

    Attributes
    ----------
    name : str
    arch : `Arch` whose arithmetic (bits, encoding, crossbar rows, noise) the parameters are for
    layers : list of `QLayer`, one per layer of ``network``, same order
    network : the float `Network`
    input_scale : float, real value of one 8-bit input pixel code
    """

    name: str
    arch: Arch
    layers: list[QLayer]
    network: Network
    input_scale: float

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> QLayer:
        for q in self.layers:
            if q.name == name:
                return q
        raise KeyError(name)

    @property
    def input(self) -> QInput:
        return next(q for q in self.layers if isinstance(q, QInput))

    @property
    def output(self) -> QLayer:
        return self.layers[-1]

    @property
    def crossbar_layers(self) -> list[QCrossbar]:
        return [q for q in self.layers if isinstance(q, QCrossbar)]

    def save(self, path) -> None:
        """Write the network to the ``.npz`` file ``path``: the arch, the float network and the
        quantized layers as JSON (array ``meta``), and every array field of a layer as the array
        ``net/<layer>/<field>`` or ``q/<layer>/<field>``. `load` reads it back."""
        arrays: dict[str, np.ndarray] = {}

        def encode(prefix, layer):
            out = {"kind": layer.kind}
            for f in fields(layer):
                value = getattr(layer, f.name)
                if isinstance(value, np.ndarray):
                    arrays[f"{prefix}/{layer.name}/{f.name}"] = value
                    continue
                if isinstance(value, Shape):
                    value = {"shape": [value.h, value.w, value.c]}
                elif isinstance(value, (np.integer, np.floating)):
                    value = value.item()
                out[f.name] = list(value) if isinstance(value, tuple) else value
            return out

        meta = {"name": self.name, "network": self.network.name, "arch": self.arch.to_dict(),
                "input_scale": self.input_scale,
                "layers": [encode("q", q) for q in self.layers],
                "network_layers": [encode("net", layer) for layer in self.network]}
        with open(path, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path) -> "QNetwork":
        """The `QNetwork` written by `save` to ``path``; a `UserError` if it is not such a file."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {key: data[key] for key in data.files}
        except (OSError, KeyError, ValueError) as e:
            raise UserError(f"{path}: not a quantized network written by QNetwork.save ({e})") from None

        def decode(prefix, entry, kinds):
            kind = kinds[entry["kind"]]
            args = {}
            for f in fields(kind):
                key = f"{prefix}/{entry['name']}/{f.name}"
                value = arrays[key] if key in arrays else entry.get(f.name)
                if isinstance(value, dict):
                    value = Shape(*value["shape"])
                args[f.name] = tuple(value) if isinstance(value, list) else value
            return kind(**args)

        qkinds = {kind: op.qlayer for kind, op in registry().items()}
        network = Network(meta["network"], [decode("net", e, LAYER_KINDS)
                                            for e in meta["network_layers"]])
        return cls(meta["name"], Arch.from_dict(meta["arch"]),
                   [decode("q", e, qkinds) for e in meta["layers"]], network, meta["input_scale"])


# signedness -------------------------------------------------------------------------------------

def _feeds_only_activations(net: Network, name: str) -> bool:
    """Whether every path from ``name`` reaches an activation (a ReLU) through passthrough layers
    (max pools, flattens) only."""
    consumers = net.consumers(name)
    return bool(consumers) and all(
        c.op.activation or (c.op.passthrough and _feeds_only_activations(net, c.name))
        for c in consumers)


def _ceiling(net: Network, name: str) -> float:
    """The largest real value the activations fused into ``name``'s output let through (through
    passthrough layers; inf for a ReLU)."""
    bounds = [c.op.ceiling(c) if c.op.activation else _ceiling(net, c.name)
              for c in net.consumers(name) if c.op.activation or c.op.passthrough]
    return max(bounds, default=np.inf)


def output_signed(net: Network) -> dict[str, bool]:
    """Whether each layer's output codes are signed; checks that every ReLU can be fused and that
    no crossbar layer reads a signed map."""
    signed: dict[str, bool] = {}
    for layer in net:
        signed[layer.name] = layer.op.signed(layer, [signed[s] for s in layer.inputs],
                                             _feeds_only_activations(net, layer.name))
    return signed


def _qmax(act_bits: int, signed: bool) -> int:
    return act_range(act_bits, signed)[1]


# step 1: scales ---------------------------------------------------------------------------------

def calibrate_scales(net: Network, x, *, act_bits: int, percentile: float = DEFAULT_PERCENTILE
                     ) -> dict[str, float]:
    """Output scale of every requantizing layer from float activations on inputs ``x``.

    ``scale = percentile(|y|) / qmax`` over all calibration values of the layer's output ``y``
    (``min(max(y, 0), ceiling)`` when an activation is fused, `imcflow.sw.ops.Op.ceiling`), with ``qmax = 2**act_bits - 1``
    for unsigned and ``2**(act_bits-1) - 1`` for signed outputs; a layer whose calibration values
    are all 0 gets scale 1.
    """
    if not 0 < percentile <= 100:
        raise UserError(f"percentile: must be a number in (0, 100], not {percentile!r}")
    signed = output_signed(net)
    out = float_trace(net, x)
    scales = {}
    for layer in net:
        if layer.op.requantizing:
            y = out[layer.name]
            y = np.abs(y) if signed[layer.name] else np.clip(y, 0.0, _ceiling(net, layer.name))
            peak = float(np.percentile(y, percentile))
            scales[layer.name] = peak / _qmax(act_bits, signed[layer.name]) if peak > 0 else 1.0
    return scales


# step 2: integer parameters ---------------------------------------------------------------------

def _positive(value) -> bool:
    value = np.asarray(value, dtype=np.float64)
    return bool(np.all(np.isfinite(value)) and np.all(value > 0))


def _check_parameters(net, scales, weight_scales, adc_shifts, calibrating) -> None:
    for layer in net:
        name = layer.name
        if layer.op.requantizing and not (name in scales and _positive(scales[name])):
            raise UserError(f"scales[{name!r}]: needs a positive output scale for the "
                            f"{layer.kind} layer, not {scales.get(name)!r}")
        if not layer.op.weighted:
            continue
        if layer.weight is None:
            raise layer.error("has no weights; quantization needs trained or initialised weights")
        cols = net.shapes[name].c
        if name in weight_scales and not (np.shape(weight_scales[name]) in ((), (cols,))
                                          and _positive(weight_scales[name])):
            raise UserError(f"weight_scales[{name!r}]: must be positive, one per output channel "
                            f"({cols}) or one for the layer")
        shift = adc_shifts.get(name, 0)
        check_int(f"adc_shifts[{name!r}]", shift, 0)
        if name not in adc_shifts and not calibrating:
            raise UserError(f"calibration: images are needed to choose the ADC shift of layer "
                            f"{name!r}")


def from_scales(net: Network, arch: Arch, scales: dict[str, float], *,
                input_scale: float = DEFAULT_INPUT_SCALE, weight_scales: dict | None = None,
                adc_shifts: dict[str, int] | None = None, calibration=None,
                percentile: float = DEFAULT_PERCENTILE) -> QNetwork:
    """Integer parameters of ``net`` for ``arch`` from given output scales.

    Parameters
    ----------
    scales : layer name -> output scale of every conv, dense, add, avgpool, global_avg_pool
    input_scale : real value of one 8-bit input pixel code
    weight_scales : optional layer name -> per-output-channel weight scale (default: max-abs)
    adc_shifts : optional layer name -> ADC gain shift of each conv and dense layer; layers not
        given are calibrated with `choose_adc_shift` on the integer model's windows of the
        8-bit ``calibration`` images (N, H, W, C), which are then required
    """
    signed = output_signed(net)
    weight_scales = weight_scales or {}
    adc_shifts = adc_shifts or {}
    _check_parameters(net, scales, weight_scales, adc_shifts, calibration is not None)
    if calibration is not None:
        calibration = check_images(net.shapes[net.input.name], calibration)
    ctx = QuantContext(net, arch, signed, scales, {}, weight_scales, adc_shifts,
                       None if calibration is None else {}, percentile, input_scale)
    layers: list[QLayer] = []
    for index, layer in enumerate(net):
        ctx.index = index
        q = layer.op.quantize(layer, ctx)
        layers.append(q)
        ctx.scale_of[q.name] = q.scale
        if ctx.outs is not None:
            args = [calibration] if not layer.inputs else [ctx.outs[s] for s in q.inputs]
            ctx.outs[q.name] = layer_forward(q, args, arch)
    return QNetwork(net.name, arch, layers, net, input_scale)


def quantize(net: Network, arch: Arch, images, *, input_scale: float = DEFAULT_INPUT_SCALE,
             percentile: float = DEFAULT_PERCENTILE) -> QNetwork:
    """Quantize ``net`` for ``arch``, calibrating scales and ADC shifts on 8-bit ``images``
    (N, H, W, C); the float network sees ``images * input_scale``."""
    images = check_images(net.shapes[net.input.name], images)
    if len(images) == 0:
        raise UserError("calibration: needs at least one image")
    scales = calibrate_scales(net, images * input_scale, act_bits=arch.act_bits, percentile=percentile)
    return from_scales(net, arch, scales, input_scale=input_scale, calibration=images,
                       percentile=percentile)
