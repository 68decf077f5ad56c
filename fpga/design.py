"""What a board runs: a quantized network, its images and the accelerator generated for it.

`fpga build` and `fpga run` must agree bit for bit, so both get the quantized network here, with
the rule of ``imcflow accuracy``: a zoo network (or a file with ``--dataset``) is calibrated on
its data set's training images, anything else on seeded random images
(`imcflow.sw.networks.calibration_images`). The board reports
`imcflow.fpga.protocol.design_id` of the network it was built for, and the host refuses to
compare against a different one.
"""

from __future__ import annotations

from dataclasses import dataclass

from imcflow.errors import UserError

__all__ = ["DEFAULT_ARCH", "Design", "load_design", "accelerator_for"]

#: architecture preset of the FPGA flow (column parallelism and clock for an FPGA)
DEFAULT_ARCH = "fpga"


@dataclass(frozen=True, eq=False)
class Design:
    """A quantized network with its labelled images (None for a network without a data set)."""

    network: str
    qnet: object
    dataset: object

    @property
    def height(self) -> int:
        return self.qnet.input.shape.h

    @property
    def width(self) -> int:
        return self.qnet.input.shape.w

    @property
    def channels(self) -> int:
        return self.qnet.input.shape.c

    @property
    def classes(self) -> int:
        return self.qnet.output.shape.size

    @property
    def design_id(self) -> int:
        from imcflow.fpga.protocol import design_id
        return design_id(self.qnet)


def load_design(network: str, arch=None, dataset: str | None = None) -> Design:
    """The quantized ``network`` (zoo name, .toml or .onnx) for ``arch`` (preset, TOML or
    `Arch`; default `DEFAULT_ARCH`), calibrated as `imcflow gen` and `imcflow accuracy` do
    (`imcflow.sw.datasets.calibrated`: ``dataset``, a zoo data set or a .npz/.npy file, or the
    network's own), with that data set when its held-out images are labelled."""
    from imcflow.sw.arch import load_arch
    from imcflow.sw.datasets import calibrated

    qnet, data, _ = calibrated(network, load_arch(arch or DEFAULT_ARCH), dataset)
    labelled = data is not None and data.test_labels is not None
    return Design(str(network), qnet, data if labelled else None)


def accelerator_for(design: Design):
    """The whole-network accelerator for ``design``: `imcflow.gen.accelerator.Accelerator` on
    the mapping of ``design.qnet`` for its architecture (`imcflow.sw.mapper.map_network`), with
    the ``fpga`` crossbar flavour (the MAC array; docs/crossbar.md).

    Raises
    ------
    UserError
        If this checkout has no whole-network generator yet, or the network cannot be mapped.
    """
    try:
        from imcflow.gen.accelerator import Accelerator
    except ImportError:
        raise UserError("--network: building a board needs the whole-network accelerator "
                        "(imcflow.gen.accelerator), which this checkout does not have yet") from None
    from imcflow.sw.mapper import map_network

    qnet = design.qnet
    return Accelerator(qnet, map_network(qnet.network, qnet.arch), target="fpga")
