"""``imcflow fpga plan``: what a network needs on a board and with which crossbar parameters it
fits, from the mapping alone (seconds, nothing synthesized).

The crossbar tiles' adder trees are the FPGA's largest cost (docs/fpga.md, "Resources"), and a
board behind a UART needs far fewer images per second than the tiles can compute. `plan`
estimates (`imcflow.fpga.resources.estimate`) the design as given and with its rows folded
(``row_folds`` 1, 2, 4, ... up to the crossbar's rows, each with ``slack_folds``, so every layer
faster than the slowest folds further at no throughput cost; ``mac_stages`` follows the
shallower adder trees, `mac_stages_for`), and chooses the one with the
fewest LUT4s that fits the board while the accelerator still outruns the host link (its images
per second at the clock at least the link's bound, so the board answers as fast as with any
other choice); if every fitting one is slower than the link, the fastest that fits; if none
fits, none, and the candidate closest to fitting shows what the network needs.
"""

from __future__ import annotations

import math

from imcflow.fpga.host import link_bound
from imcflow.fpga.resources import LOGIC, estimate
from imcflow.sw.mapper import map_network

__all__ = ["candidate", "mac_stages_for", "plan"]


def _levels(rows: int) -> int:
    """Logic levels of a tile's adder tree over ``rows`` rows: the gating, then the pairwise tree
    (`imcflow.hw.crossbar.CrossbarTile`)."""
    return 1 + (rows - 1).bit_length()


def mac_stages_for(mapping, row_folds: int) -> int:
    """The adder-tree registers that keep ``mapping``'s tree levels per pipeline stage (the
    clock it was pipelined for) when its widest tile sums ``ceil(rows / row_folds)`` rows per
    step: ``ceil(levels(rows per step) / (levels(its rows per step) / (mac_stages + 1))) - 1``.
    digits on the `fpga` preset (9 of 144 rows per step, 5 levels in 4 stages): 7 registers at
    one fold, 6 at 2, 5 at 4, 4 at 8, 3 at 16 and 32, 2 at 64, 1 at 128, none at 256."""
    arch = mapping.arch
    rows = max(min(arch.rows, l.rows) for l in mapping.stages if l.role == "crossbar")
    per_stage = _levels(-(-rows // arch.row_folds)) / (arch.mac_stages + 1)
    return min(8, max(0, math.ceil(_levels(-(-rows // row_folds)) / per_stage) - 1))


def candidate(mapping, board, clock_mhz: float, link_ips: float) -> dict:
    """The estimate of ``mapping`` on ``board``: resources (``{used, available}`` each), whether
    it ``fits``, the largest fraction (``binding``: resource and fraction), the crossbar figures
    (`imcflow.fpga.resources.Estimate.crossbar`: LUT4 per MAC per cycle and its parts), the
    row folds per crossbar layer, cycles per image and images per second at ``clock_mhz``, and
    whether that outruns the host link (``link_ips``)."""
    arch, e = mapping.arch, estimate(mapping, board)
    luts, ffs = LOGIC[board.device]
    available = {"luts": luts, "ffs": ffs, "brams": board.brams, "dsps": board.dsps}
    fractions = e.fractions(board)
    worst = max(fractions, key=fractions.get)
    ips = clock_mhz * 1e6 / mapping.cycles_per_image
    return {"row_folds": arch.row_folds, "slack_folds": arch.slack_folds,
            "col_parallelism": arch.col_parallelism, "mac_stages": arch.mac_stages,
            **{k: {"used": getattr(e, k), "available": available[k]} for k in available},
            "fits": e.fits(board), "binding": {"resource": worst, "fraction": round(fractions[worst], 3)},
            "crossbar": e.crossbar(), "layer_folds": {l.name: l.row_folds for l in mapping.stages
                                                     if l.role == "crossbar"},
            "cycles_per_image": mapping.cycles_per_image, "images_per_s": round(ips, 1),
            "outruns_link": ips >= link_ips, "estimate": e.summary(board)}


def plan(qnet, mapping, board, *, clock_mhz: float | None = None, baud: int) -> dict:
    """The plan of ``qnet`` (mapped as ``mapping``) on ``board`` at ``clock_mhz`` (default: the
    arch's) behind a host link at ``baud``.

    Returns
    -------
    dict
        ``board``, ``device``, ``network``, ``clock_mhz``, ``baud``, ``link_images_per_s`` (the
        link's bound), ``current`` (`candidate` of ``mapping``), ``candidates`` (``row_folds``
        1, 2, 4, ... with ``slack_folds`` and `mac_stages_for`), ``choice`` (the chosen candidate's ``row_folds``,
        or None when none fits), ``fits`` (whether the choice exists) and ``arch`` (the fields
        to set: ``row_folds``, ``slack_folds``, ``mac_stages``), ``closest`` (the candidate with the smallest
        largest fraction, then the smallest sum of fractions: what the network needs when
        nothing fits).
    """
    arch = mapping.arch
    clock_mhz = clock_mhz or arch.clock_mhz
    shape = qnet.input.shape
    link_ips = link_bound(baud, shape.h * shape.w * shape.c)
    candidates, folds = [], 1
    while True:
        folded = map_network(qnet.network, arch.replace(
            row_folds=folds, slack_folds=True, mac_stages=mac_stages_for(mapping, folds)),
            core_budget=mapping.core_budget, timing=mapping.timing)
        candidates.append(candidate(folded, board, clock_mhz, link_ips))
        if folds >= arch.rows:
            break
        folds = min(2 * folds, arch.rows)
    fitting = [c for c in candidates if c["fits"]]
    outrunning = [c for c in fitting if c["outruns_link"]]
    choice = (min(outrunning, key=lambda c: c["luts"]["used"]) if outrunning else
              max(fitting, key=lambda c: c["images_per_s"]) if fitting else None)
    closest = min(candidates, key=lambda c: (c["binding"]["fraction"], sum(
        c[k]["used"] / c[k]["available"] for k in ("luts", "ffs", "brams", "dsps"))))
    return {"board": board.name, "device": board.device, "network": qnet.name,
            "clock_mhz": clock_mhz, "baud": baud, "link_images_per_s": round(link_ips, 1),
            "current": candidate(mapping, board, clock_mhz, link_ips), "candidates": candidates,
            "choice": choice and choice["row_folds"], "fits": choice is not None,
            "arch": choice and {"row_folds": choice["row_folds"], "slack_folds": True,
                                "mac_stages": choice["mac_stages"]},
            "closest": closest}
