"""A stand-in accelerator for developing and testing the FPGA flow: NOT the imcflow accelerator.

The FPGA flow wraps any `wiring.Component` with the accelerator interface (docs/fpga.md):
input ``i`` = ``vector_stream(C, 8)`` pixels in raster order with ``last`` on each image's last
pixel, output ``o`` = ``vector_stream(classes, act_bits, signed)``, one beat per image. Until
the whole-network accelerator of `imcflow.gen` exists, tests use `DenseStandIn`, a real but
tiny pipeline built from the existing blocks: a `~imcflow.hw.im2col.WindowSource` whose window
is the whole image, feeding one `~imcflow.hw.core.CrossbarLayer`. It runs exactly the quantized
networks ``input -> flatten -> dense`` (a linear classifier), bit-exact with
`imcflow.sw.inference.run`, so the host code can be checked end to end against the golden
model. `linear_digits` is such a network for the digits data set (least-squares weights).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from imcflow.hw.core import CrossbarLayer
from imcflow.hw.im2col import WindowSource
from imcflow.hw.streams import vector_stream
from imcflow.sw.quant import QDense, QInput

__all__ = ["DenseStandIn", "linear_digits", "write_linear_digits"]


class DenseStandIn(wiring.Component):
    """Stand-in accelerator for a quantized ``input -> [flatten ->] dense`` network.

    Parameters
    ----------
    qnet : QNetwork
        Layers: the input (8-bit activations, ``shift == 0``), an optional flatten, and a dense
        layer reading the whole ``H x H x C`` image, which is the output.

    Attributes
    ----------
    i : In(vector_stream(C, 8))
        Pixels in raster order, ``last`` on each image's last pixel.
    o : Out(vector_stream(classes, act_bits, signed_=True or False))
        The dense layer's outputs (the logits), one beat per image, ``last`` set.
    latency : int
        From the handshake of an image's last pixel to its logits:
        ``WindowSource.latency + CrossbarLayer.latency``.
    interval : int
        Cycles per image when the input keeps up: ``H*W`` (one pixel per cycle), or the
        crossbar's ``interval`` if that is longer.

    description : str
        What build reports call it: a stand-in, not the imcflow accelerator.

    Raises
    ------
    ValueError
        If ``qnet`` is not such a network.
    """

    description = "DenseStandIn (a stand-in for tests, not the imcflow accelerator)"

    def __init__(self, qnet):
        kinds = [q.kind for q in qnet.layers]
        if kinds not in (["input", "dense"], ["input", "flatten", "dense"]):
            raise ValueError(f"The stand-in runs input -> flatten -> dense networks, not "
                             f"{' -> '.join(kinds)}")
        q_in, dense = qnet.layers[0], qnet.layers[-1]
        assert isinstance(q_in, QInput) and isinstance(dense, QDense)
        if q_in.shift != 0:
            raise ValueError(f"The stand-in needs 8-bit activations (act_bits 8), not "
                             f"{qnet.arch.act_bits}")
        s = dense.in_shape
        if dense.kernel != s.h or s.h != s.w:
            raise ValueError(f"The stand-in's dense layer must read the whole square image, "
                             f"not a {dense.kernel}x{dense.kernel} window of {s}")
        self.qnet = qnet
        self.window = WindowSource(s.h, s.w, s.c, 8, dense.kernel)
        self.layer = CrossbarLayer(dense.weight, dense.bias, dense.mult, dense.shift,
                                   adc_shift=dense.adc_shift, signed=dense.signed, arch=qnet.arch,
                                   target="fpga")
        self.latency = self.window.latency + self.layer.latency
        self.interval = max(s.h * s.w, self.layer.interval)
        super().__init__({
            "i": In(vector_stream(s.c, 8)),
            "o": Out(vector_stream(dense.cols, qnet.arch.act_bits, dense.signed)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self.window
        m.submodules.layer = self.layer
        wiring.connect(m, wiring.flipped(self.i), self.window.i)
        wiring.connect(m, self.window.o, self.layer.i)
        wiring.connect(m, self.layer.o, wiring.flipped(self.o))
        return m


#: ridge penalty of the `linear_digits` fit: without it, pixels that are always 0 in training get
#: large weights that ruin 4-bit quantization (13 % accuracy); with it, 95 % after quantization
RIDGE = 10.0


def linear_digits():
    """A float ``8x8x1 -> flatten -> dense(10)`` network for the digits data set: the ridge
    regression (penalty `RIDGE`, bias not penalized) of one-hot labels on the training images
    scaled to [0, 1]; 94.7 % float accuracy on the held-out images."""
    from imcflow.sw.ir import Dense, Flatten, Input, Network, Shape
    from imcflow.sw.networks import with_weights
    from imcflow.sw.zoo import dataset

    data = dataset("digits")
    x = data.train_images.reshape(len(data.train_images), -1) / 255.0
    x = np.hstack([x, np.ones((len(x), 1))])
    y = np.eye(10)[data.train_labels]
    penalty = RIDGE * np.diag([1.0] * (x.shape[1] - 1) + [0.0])
    fit = np.linalg.solve(x.T @ x + penalty, x.T @ y)
    net = Network("digits_linear", [Input("input", Shape(8, 8, 1)), Flatten("flatten", "input"),
                                    Dense("fc", "flatten", 10)])
    return with_weights(net, {"fc.weight": fit[:-1], "fc.bias": fit[-1]})


def write_linear_digits(directory: str | Path) -> Path:
    """Write `linear_digits` as ``digits_linear.toml`` and ``digits_linear.npz`` in ``directory``
    (so commands that take ``--network FILE`` can load it); returns the TOML path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    net = linear_digits()
    fc = net.layers[-1]
    np.savez(directory / "digits_linear.npz", **{"fc.weight": fc.weight, "fc.bias": fc.bias})
    toml = directory / "digits_linear.toml"
    toml.write_text('name = "digits_linear"\nweights = "digits_linear.npz"\n\n'
                    '[[layers]]\nname = "input"\nkind = "input"\nshape = [8, 8, 1]\n\n'
                    '[[layers]]\nname = "flatten"\nkind = "flatten"\n\n'
                    '[[layers]]\nname = "fc"\nkind = "dense"\nout_features = 10\n')
    return toml
