"""What a board runs: an accelerator `imcflow gen` generated, with its held-out images.

`fpga build` and `fpga run` must agree bit for bit, so both take the design from the same place:
a directory written by ``imcflow gen --network N --target fpga`` (`load_design`, through
`imcflow.gen.project.load`), or, with ``--network``, the same accelerator prepared as
``imcflow gen`` would write it (`prepare_design`, through `imcflow.gen.project.prepare`: same
quantization, calibration, mapping and default architecture, `imcflow.gen.project.TARGET_ARCH`).
`board_top` puts a design on a board behind the host link, with its resource estimate and memory
plan, for `imcflow.fpga.build.build_board`. The board reports `imcflow.fpga.protocol.design_id`
of the network it was built for, and the host refuses to compare against a different one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from imcflow.errors import UserError
from imcflow.fpga.protocol import design_id
from imcflow.fpga.resources import (estimate, memories, memory_plan, multiplier_plan, multipliers,
                                    yosys_script)
from imcflow.fpga.top import BoardTop
from imcflow.fpga.uart import divisor_for, fastest_baud
from imcflow.gen.project import Generated, held_out, load, prepare

__all__ = ["TARGET", "Design", "BoardPlan", "load_design", "prepare_design", "board_top"]

#: the crossbar flavour a board synthesizes (docs/crossbar.md)
TARGET = "fpga"


@dataclass(frozen=True, eq=False)
class Design:
    """A generated accelerator with the labelled held-out images of the data set that calibrated
    it (``images`` and ``labels`` None when it has none).

    Attributes
    ----------
    network : str
        What the user named: the generated directory, or the ``--network`` it was prepared from.
    generated : Generated
        The quantized network (the golden model), its mapping and the accelerator.
    """

    network: str
    generated: Generated
    images: np.ndarray | None
    labels: np.ndarray | None

    @property
    def qnet(self):
        return self.generated.qnet

    @property
    def field(self) -> str:
        """The command-line argument that named it, for error messages: ``DIR`` or ``--network``."""
        return "DIR" if self.generated.directory else "--network"

    @property
    def accelerator(self):
        """The `~imcflow.gen.accelerator.Accelerator` (the ``fpga`` crossbar flavour) of the
        generated top; `imcflow.fpga.top.BoardTop` wraps it."""
        return self.generated.accelerator

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
        return design_id(self.qnet)


def _design(network: str, gen: Generated) -> Design:
    if gen.target != TARGET:
        raise UserError(f"DIR: {network} holds the {gen.target} crossbar flavour; a board needs "
                        f"the {TARGET} one (imcflow gen --target {TARGET})")
    images, labels = held_out(gen.manifest)
    labelled = labels is not None
    return Design(network, gen, images if labelled else None, labels)


def load_design(directory) -> Design:
    """The accelerator in ``directory``, written by ``imcflow gen --network N --target fpga``.

    Raises
    ------
    UserError
        If ``directory`` is not such a directory, or holds the ``sim`` crossbar flavour.
    """
    return _design(str(directory), load(directory))


def prepare_design(network: str, arch=None, dataset: str | None = None, *, core_budget=None,
                   buffer: str | None = None) -> Design:
    """The accelerator ``imcflow gen --network network --target fpga`` would write with these
    options (`imcflow.gen.project.prepare`), without writing it."""
    return _design(str(network), prepare(network, arch, dataset=dataset, core_budget=core_budget,
                                         buffer=buffer, target=TARGET, taps=False))


class BoardPlan(NamedTuple):
    """What `board_top` gives `imcflow.fpga.build.build_board`: the top, the Yosys commands of its
    memory (and multiplier) plan, and the build report's details about the design."""

    top: BoardTop
    yosys_script: str
    details: dict


def board_top(design: Design, target, *, clock_mhz: float | None = None, baud: int | None = None,
              skip_fit_check: bool = False, log=lambda message: None) -> BoardPlan:
    """``design`` on board ``target`` (`imcflow.fpga.boards.Board`) behind the UART host link:
    a `BoardPlan` (top, Yosys script, details) for `imcflow.fpga.build.build_board`.

    ``clock_mhz`` defaults to the arch's ``clock_mhz``; ``baud`` to the fastest rate the clock
    makes within 2 % (`imcflow.fpga.uart.fastest_baud`). The resource estimate of the design's
    mapping (`imcflow.fpga.resources.estimate`) must fit the board unless ``skip_fit_check``.
    ``details`` go into the build report: network, generated directory, top, configuration,
    arch, estimate (with ``crossbar``: its LUT4 per crossbar MAC per cycle and their parts,
    `imcflow.fpga.resources.Estimate.crossbar`) and the memory plan with its Yosys script.

    Raises
    ------
    UserError
        If the baud rate cannot be made from the clock, or the design cannot fit.
    """
    gen, arch = design.generated, design.qnet.arch
    clock_mhz = clock_mhz or arch.clock_mhz
    clock_hz = target.clock_hz(clock_mhz)
    try:
        baud = fastest_baud(clock_hz) if baud is None else baud
        divisor_for(clock_hz, baud)
    except ValueError as e:   # the baud rate cannot be made from the clock
        raise UserError(f"--baud: {e}") from None
    fit = estimate(gen.mapping, target)
    if not fit.fits(target) and not skip_fit_check:
        raise UserError(f"{design.field}: {design.network} cannot fit {target.name} "
                        f"({target.device}): {fit.summary(target)} (--skip-fit-check builds "
                        f"anyway)")
    log(f"fits {target.name}: {fit.summary(target)}")
    top = BoardTop(target, design.accelerator, height=design.height, width=design.width,
                   clock_mhz=clock_mhz, baud=baud, design_id=design.design_id)
    placement = memory_plan(memories(top.system, "top.system"), target)
    products = multiplier_plan(multipliers(top.system, "top.system"), target)
    script = yosys_script(placement, products)
    details = {"network": design.network, "directory": gen.directory and str(gen.directory),
               "top": gen.name, "design_hash": gen.manifest["design_hash"],
               "arch_name": gen.manifest["arch_name"], "arch": arch.to_dict(),
               "estimate": fit.summary(target),
               "estimated": {k: getattr(fit, k) for k in ("luts", "ffs", "brams", "dsps")},
               "crossbar": fit.crossbar(),
               "accelerator": f"{type(design.accelerator).__module__}."
                              f"{type(design.accelerator).__name__}",
               "memories": placement, "multipliers": products, "yosys_script": script}
    return BoardPlan(top, script, details)
