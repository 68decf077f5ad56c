"""Quantization of a float `Network` to the integer arithmetic contract (docs/arithmetic.md).

The result is a `QNetwork`: one quantized layer per IR layer, in the same topological order, with
the integer parameters the RTL blocks need and the float ``scale`` of every output (the real
value of one output code) for reporting. Quantization has two steps, kept apart so that an
importer that already has scales (an ONNX QDQ model) reuses the second one:

1. `calibrate_scales`: the output scale of every requantizing layer (conv, dense, add, avgpool,
   global_avg_pool) from float activations on sample inputs: the ``percentile`` of ``|y|`` (of
   ``max(y, 0)`` when the layer's ReLU is fused) divided by the largest output code.
2. `from_scales`: every integer parameter from the scales: per-output-channel symmetric weights,
   the programmed weight image (with seeded noise), the per-layer ADC gain shift (given, or
   calibrated on sample images through the integer model so far), the bias in accumulator units
   and the fixed-point multipliers.

`quantize` does both. Scale rules: the network input is unsigned 8-bit with scale
``input_scale``; a ReLU fuses into the conv, dense, add or average pool that produces its input
(through max pools and flattens), which then saturates to unsigned ``act_bits``; a layer whose
output feeds anything but ReLUs produces signed ``act_bits`` values (an average pool only when its
input is signed); max pool and flatten pass
their input's codes and scale through.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.arch import Arch
from imcflow.sw.arith import (act_range, bit_planes, quantize_multipliers, round_shift, signed_range,
                              weight_range)
from imcflow.sw.golden import tile_slices, windows
from imcflow.sw.inference import check_images, float_trace, layer_forward
from imcflow.sw.ir import (LAYER_KINDS, Add, AvgPool, Conv2d, Dense, Flatten, GlobalAvgPool, Input,
                           MaxPool, Network, ReLU, Shape)

__all__ = [
    "QLayer", "QInput", "QCrossbar", "QConv", "QDense", "QAdd", "QMaxPool", "QAvgPool",
    "QGlobalAvgPool", "QFlatten", "QReLU", "QNetwork", "DEFAULT_PERCENTILE", "DEFAULT_INPUT_SCALE",
    "output_signed", "calibrate_scales", "quantize_weights", "program_weights", "choose_adc_shift",
    "from_scales", "quantize",
]

#: percentile of the calibration values that maps to the largest code (activations and ADC)
DEFAULT_PERCENTILE = 99.99
#: real value of one 8-bit input code: pixels 0..255 stand for 0..1
DEFAULT_INPUT_SCALE = 1 / 255


@dataclass(eq=False)
class QLayer:
    """A quantized layer.

    Attributes
    ----------
    name : str, the IR layer's name
    inputs : tuple of input layer names
    shape : `Shape` of the output
    scale : float, real value of one output code
    signed : bool, output codes are signed ``act_bits`` (else unsigned, after a ReLU)
    """

    name: str
    inputs: tuple[str, ...]
    shape: Shape
    scale: float
    signed: bool
    kind: ClassVar[str] = "layer"


@dataclass(eq=False)
class QInput(QLayer):
    """The 8-bit input image as unsigned ``act_bits`` codes: ``round_shift(pixel, shift)``
    saturated, with ``shift = 8 - act_bits``."""

    shift: int = 0
    kind: ClassVar[str] = "input"


@dataclass(eq=False)
class QCrossbar(QLayer):
    """A conv or dense layer on crossbars.

    Windows of ``kernel x kernel`` pixels of the ``in_shape`` map (im2col order) are applied to
    the crossbar rows. A dense layer is the ``H x H`` window of the map before its flatten (or the
    1x1 window of a vector), so ``in_shape`` is that map.

    Attributes
    ----------
    in_shape : `Shape` of the map the windows are taken from
    kernel, stride, padding : int
    weight : int64 (rows, cols), the programmed weight image (noise included), im2col row order
    weight_scale : float64 (cols,), real value of one weight code per output channel
    adc_shift : int, the ADC gain shift
    bias : int64 (cols,), in accumulator units (one unit = one ADC code), within ``psum_bits``
    mult : int64 (cols,), unsigned ``MULT_BITS``-bit requantization multipliers
    shift : int, the requantization shift shared by all columns
    psum_bits : int, signed width of the partial sum over row tiles (and of ``bias``)
    """

    in_shape: Shape = None
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    weight: np.ndarray = field(default=None, repr=False)
    weight_scale: np.ndarray = field(default=None, repr=False)
    adc_shift: int = 0
    bias: np.ndarray = field(default=None, repr=False)
    mult: np.ndarray = field(default=None, repr=False)
    shift: int = 0
    psum_bits: int = 0

    @property
    def rows(self) -> int:
        return self.weight.shape[0]

    @property
    def cols(self) -> int:
        return self.weight.shape[1]

    @property
    def acc_bits(self) -> int:
        """Signed width of ``psum + bias``."""
        return self.psum_bits + 1


@dataclass(eq=False)
class QConv(QCrossbar):
    kind: ClassVar[str] = "conv"


@dataclass(eq=False)
class QDense(QCrossbar):
    kind: ClassVar[str] = "dense"


@dataclass(eq=False)
class QAdd(QLayer):
    """Residual join: ``saturate(round_shift(a*mult_a + b*mult_b, shift))`` (`golden.join`)."""

    mult_a: int = 0
    mult_b: int = 0
    shift: int = 0
    kind: ClassVar[str] = "add"


@dataclass(eq=False)
class QMaxPool(QLayer):
    """Max pooling; scales pass through; padding holds ``pad_value`` (the lowest code)."""

    kernel: int = 2
    stride: int = 2
    padding: int = 0
    pad_value: int = 0
    kind: ClassVar[str] = "maxpool"


@dataclass(eq=False)
class QAvgPool(QLayer):
    """Average pooling: window sums requantized by ``mult / 2**shift``."""

    kernel: int = 2
    stride: int = 2
    mult: int = 0
    shift: int = 0
    kind: ClassVar[str] = "avgpool"


@dataclass(eq=False)
class QGlobalAvgPool(QLayer):
    """Global average pooling: per-channel sums requantized by ``mult / 2**shift``."""

    mult: int = 0
    shift: int = 0
    kind: ClassVar[str] = "global_avg_pool"


@dataclass(eq=False)
class QFlatten(QLayer):
    """Flatten: codes and scale pass through (the next dense layer reads the map as a window)."""

    kind: ClassVar[str] = "flatten"


@dataclass(eq=False)
class QReLU(QLayer):
    """A ReLU is the identity on codes: the layer producing its (unsigned) input saturates to
    ``[0, 2**act_bits - 1]``, which is the ReLU."""

    kind: ClassVar[str] = "relu"


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

        qkinds = {k.kind: k for k in (QInput, QConv, QDense, QAdd, QMaxPool, QAvgPool,
                                      QGlobalAvgPool, QFlatten, QReLU)}
        network = Network(meta["network"], [decode("net", e, LAYER_KINDS)
                                            for e in meta["network_layers"]])
        return cls(meta["name"], Arch.from_dict(meta["arch"]),
                   [decode("q", e, qkinds) for e in meta["layers"]], network, meta["input_scale"])


# signedness -------------------------------------------------------------------------------------

_REQUANTIZING = (Conv2d, Dense, Add, AvgPool, GlobalAvgPool)


def _feeds_only_relus(net: Network, name: str) -> bool:
    """Whether every path from ``name`` reaches a ReLU through max pools and flattens only."""
    consumers = net.consumers(name)
    return bool(consumers) and all(
        isinstance(c, ReLU) or (isinstance(c, (MaxPool, Flatten)) and _feeds_only_relus(net, c.name))
        for c in consumers)


def output_signed(net: Network) -> dict[str, bool]:
    """Whether each layer's output codes are signed; checks that every ReLU can be fused and that
    no crossbar layer reads a signed map."""
    signed: dict[str, bool] = {}
    for layer in net:
        src = [signed[s] for s in layer.inputs]
        if isinstance(layer, Input):
            signed[layer.name] = False
        elif isinstance(layer, (Conv2d, Dense)) and src[0]:
            raise layer.error(f"input {layer.inputs[0]!r} is a signed map (no ReLU before this "
                              f"layer); crossbar inputs are unsigned")
        elif isinstance(layer, ReLU) and src[0]:
            raise layer.error(f"input {layer.input!r} is a signed map that also feeds other layers "
                              f"or comes from no conv, dense, add or average pool; this ReLU cannot "
                              f"be fused and a standalone ReLU has no hardware")
        elif isinstance(layer, ReLU):
            signed[layer.name] = False
        elif isinstance(layer, (Conv2d, Dense, Add)):
            signed[layer.name] = not _feeds_only_relus(net, layer.name)
        elif isinstance(layer, (AvgPool, GlobalAvgPool)):
            signed[layer.name] = src[0] and not _feeds_only_relus(net, layer.name)
        elif isinstance(layer, (MaxPool, Flatten)):
            signed[layer.name] = src[0]
        else:
            raise layer.error("cannot be quantized")
    return signed


def _qmax(act_bits: int, signed: bool) -> int:
    return act_range(act_bits, signed)[1]


# step 1: scales ---------------------------------------------------------------------------------

def calibrate_scales(net: Network, x, *, act_bits: int, percentile: float = DEFAULT_PERCENTILE
                     ) -> dict[str, float]:
    """Output scale of every requantizing layer from float activations on inputs ``x``.

    ``scale = percentile(|y|) / qmax`` over all calibration values of the layer's output ``y``
    (``max(y, 0)`` when its ReLU is fused), with ``qmax = 2**act_bits - 1`` for unsigned and
    ``2**(act_bits-1) - 1`` for signed outputs; a layer whose calibration values are all 0 gets
    scale 1.
    """
    if not 0 < percentile <= 100:
        raise UserError(f"percentile: must be a number in (0, 100], not {percentile!r}")
    signed = output_signed(net)
    out = float_trace(net, x)
    scales = {}
    for layer in net:
        if isinstance(layer, _REQUANTIZING):
            y = out[layer.name]
            y = np.abs(y) if signed[layer.name] else np.maximum(y, 0.0)
            peak = float(np.percentile(y, percentile))
            scales[layer.name] = peak / _qmax(act_bits, signed[layer.name]) if peak > 0 else 1.0
    return scales


# step 2: integer parameters ---------------------------------------------------------------------

def quantize_weights(weight, weight_bits: int, scale=None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-column quantization of a float ``(rows, cols)`` matrix.

    Returns ``(codes, scale)``: int64 codes in `weight_range` and the float scale per column,
    by default ``max|w| / (2**(weight_bits-1) - 1)`` (1 for an all-zero column).
    """
    weight = np.asarray(weight, dtype=np.float64)
    lo, hi = weight_range(weight_bits)
    if scale is None:
        peak = np.abs(weight).max(axis=0)
        scale = np.where(peak > 0, peak / hi, 1.0)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), weight.shape[1:]).copy()
    codes = np.clip(np.round(weight / scale), lo, hi).astype(np.int64)
    return codes, scale


def program_weights(codes, *, weight_bits: int, noise: float, seed: int, index: int) -> np.ndarray:
    """The weight image as programmed into the crossbar: ``codes`` plus seeded Gaussian noise.

    The noise has standard deviation ``noise * max|codes|`` (the arch's ``weight_noise``, relative
    to the largest weight magnitude); the sum is rounded and clipped back into `weight_range`.
    The generator is seeded by ``(seed, index)`` with ``index`` the layer's position in the
    network, so every layer draws reproducibly. ``noise = 0`` returns the codes unchanged.
    """
    codes = np.asarray(codes, dtype=np.int64)
    peak = int(np.abs(codes).max(initial=0))
    if noise == 0 or peak == 0:
        return codes.copy()
    rng = np.random.default_rng([seed, index])
    noisy = np.round(codes + rng.normal(0.0, noise * peak, codes.shape))
    return np.clip(noisy, *weight_range(weight_bits)).astype(np.int64)


def choose_adc_shift(x, weight, arch: Arch, percentile: float = DEFAULT_PERCENTILE) -> int:
    """Smallest ADC gain shift that converts the ``percentile`` of the calibration dot products
    ``|dot|`` without saturation.

    ``x`` (..., rows) are the layer's window vectors and ``weight`` its weight image; the dot
    products are those the ADCs see: per row tile of ``arch.rows`` and, for ``bit_serial`` input,
    per bit plane.
    """
    x = np.asarray(x, dtype=np.int64).reshape(-1, weight.shape[0])
    if arch.input_encoding == "bit_serial":
        x = bit_planes(x, arch.act_bits).reshape(-1, weight.shape[0])
    # float64 sums are exact here (|dot| < 2**8 * 2**7 * rows, far below 2**53) and use BLAS
    x, weight = x.astype(np.float64), np.asarray(weight, dtype=np.float64)
    dots = np.concatenate([np.abs(x[:, rows] @ weight[rows]).ravel()
                           for rows in tile_slices(weight.shape[0], arch.rows)])
    peak = int(math.ceil(np.percentile(dots, percentile))) if dots.size else 0
    limit = signed_range(arch.adc_bits)[1]
    shift = 0
    while round_shift(peak, shift) > limit:
        shift += 1
    return shift


def _psum_bits(arch: Arch, rows: int) -> int:
    tiles = len(tile_slices(rows, arch.rows))
    bits = arch.adc_bits + (arch.act_bits if arch.input_encoding == "bit_serial" else 0)
    return bits + math.ceil(math.log2(tiles))


def _multipliers(layer, scales) -> tuple[np.ndarray, int]:
    try:
        return quantize_multipliers(scales)
    except ValueError:
        raise layer.error(f"requantization scale {float(np.max(scales)):.6g} does not fit an "
                          f"unsigned multiplier (output scale too small for its input)") from None


def _crossbar_geometry(net: Network, layer):
    """``(in_shape, kernel, stride, padding, matrix)`` of a conv or dense layer."""
    if isinstance(layer, Conv2d):
        matrix = np.asarray(layer.weight, np.float64).reshape(-1, layer.out_channels)
        return net.shapes[layer.input], layer.kernel, layer.stride, layer.padding, matrix
    src = net[layer.input]
    in_shape = net.shapes[src.input] if isinstance(src, Flatten) else net.shapes[layer.input]
    return in_shape, in_shape.h, 1, 0, np.asarray(layer.weight, np.float64)


def _positive(value) -> bool:
    value = np.asarray(value, dtype=np.float64)
    return bool(np.all(np.isfinite(value)) and np.all(value > 0))


def _check_parameters(net, scales, weight_scales, adc_shifts, calibrating) -> None:
    for layer in net:
        name = layer.name
        if isinstance(layer, _REQUANTIZING) and not (name in scales and _positive(scales[name])):
            raise UserError(f"scales[{name!r}]: needs a positive output scale for the "
                            f"{layer.kind} layer, not {scales.get(name)!r}")
        if not isinstance(layer, (Conv2d, Dense)):
            continue
        if layer.weight is None:
            raise layer.error("has no weights; quantization needs trained or initialised weights")
        cols = net.shapes[name].c
        if name in weight_scales and not (np.shape(weight_scales[name]) in ((), (cols,))
                                          and _positive(weight_scales[name])):
            raise UserError(f"weight_scales[{name!r}]: must be positive, one per output channel "
                            f"({cols}) or one for the layer")
        shift = adc_shifts.get(name, 0)
        if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or shift < 0:
            raise UserError(f"adc_shifts[{name!r}]: must be an integer >= 0, not {shift!r}")
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
    outs = None if calibration is None else {}
    layers: list[QLayer] = []
    scale_of: dict[str, float] = {}
    for index, layer in enumerate(net):
        common = dict(name=layer.name, inputs=layer.inputs, shape=net.shapes[layer.name],
                      signed=signed[layer.name])
        s_in = [scale_of[s] for s in layer.inputs]
        if isinstance(layer, Input):
            shift = 8 - arch.act_bits
            q = QInput(**common, scale=input_scale * 2 ** shift, shift=shift)
        elif isinstance(layer, (Conv2d, Dense)):
            in_shape, kernel, stride, padding, matrix = _crossbar_geometry(net, layer)
            codes, w_scale = quantize_weights(matrix, arch.weight_bits, weight_scales.get(layer.name))
            weight = program_weights(codes, weight_bits=arch.weight_bits, noise=arch.weight_noise,
                                     seed=arch.noise_seed, index=index)
            if layer.name in adc_shifts:
                adc_shift = int(adc_shifts[layer.name])
            else:
                x = outs[layer.input].reshape(-1, in_shape.h, in_shape.w, in_shape.c)
                adc_shift = choose_adc_shift(windows(x, kernel, stride, padding), weight, arch,
                                             percentile)
            unit = 2.0 ** adc_shift * s_in[0] * w_scale  # real value of one accumulator unit
            psum_bits = _psum_bits(arch, matrix.shape[0])
            bias = np.zeros(matrix.shape[1]) if layer.bias is None else np.asarray(layer.bias, np.float64)
            bias = np.clip(np.round(bias / unit), *signed_range(psum_bits)).astype(np.int64)
            mult, shift = _multipliers(layer, unit / scales[layer.name])
            cls = QConv if isinstance(layer, Conv2d) else QDense
            q = cls(**common, scale=scales[layer.name], in_shape=in_shape, kernel=kernel,
                    stride=stride, padding=padding, weight=weight, weight_scale=w_scale,
                    adc_shift=adc_shift, bias=bias, mult=mult, shift=shift, psum_bits=psum_bits)
        elif isinstance(layer, Add):
            (mult_a, mult_b), shift = _multipliers(layer, np.array(s_in) / scales[layer.name])
            q = QAdd(**common, scale=scales[layer.name], mult_a=int(mult_a), mult_b=int(mult_b),
                     shift=shift)
        elif isinstance(layer, AvgPool):
            ratio = s_in[0] / (layer.kernel ** 2 * scales[layer.name])
            (mult,), shift = _multipliers(layer, ratio)
            q = QAvgPool(**common, scale=scales[layer.name], kernel=layer.kernel, stride=layer.stride,
                         mult=int(mult), shift=shift)
        elif isinstance(layer, GlobalAvgPool):
            ratio = s_in[0] / (net.shapes[layer.input].pixels * scales[layer.name])
            (mult,), shift = _multipliers(layer, ratio)
            q = QGlobalAvgPool(**common, scale=scales[layer.name], mult=int(mult), shift=shift)
        elif isinstance(layer, MaxPool):
            q = QMaxPool(**common, scale=s_in[0], kernel=layer.kernel, stride=layer.stride,
                         padding=layer.padding, pad_value=act_range(arch.act_bits, signed[layer.input])[0])
        elif isinstance(layer, Flatten):
            q = QFlatten(**common, scale=s_in[0])
        else:
            q = QReLU(**common, scale=s_in[0])
        layers.append(q)
        scale_of[q.name] = q.scale
        if outs is not None:
            args = [calibration] if isinstance(q, QInput) else [outs[s] for s in q.inputs]
            outs[q.name] = layer_forward(q, args, arch)
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
