"""Verilog of an Amaranth design, and its lint: the one place both `imcflow.gen` (which writes
Verilog) and `imcflow.verif` (which builds and simulates it) take them from.

`verilog` converts a component to Verilog without source locations (reproducible text) and
appends the hand-written module of the ``sim`` crossbar flavour when the design uses it
(`imcflow.hw.crossbar.add_mvm_module`). `lint` runs ``verilator --lint-only`` (by default with
``-Wall``) with the documented waivers below and nothing else; `lint_flags` are its arguments,
which generated FuseSoC cores and manifests repeat. `WAIVERS` also apply to every Verilator
simulation build (`imcflow.verif.runner`, `imcflow.verif.engine`).

The dependencies point one way: this module needs `imcflow.hw` and the toolchain only, so the
generator does not import the verification package and the verification package may import the
generator.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from amaranth.back import verilog as amaranth_verilog

from imcflow import toolchain
from imcflow.hw.crossbar import add_mvm_module

__all__ = ["WAIVERS", "WALL_WAIVERS", "LintError", "verilog", "waiver_flags", "lint_flags", "lint"]

#: Verilator warnings waived for every Amaranth design, in simulation builds and in lint.
#: Amaranth's Verilog backend relies on Verilog's implicit width rules: it extends operands and
#: truncates results without explicit casts (``level + 1`` assigned back to ``level``).
WAIVERS: dict[str, str] = {
    "WIDTHEXPAND": "operands are zero/sign-extended implicitly by Amaranth's Verilog backend",
    "WIDTHTRUNC": "results are truncated implicitly on assignment by Amaranth's Verilog backend",
}

#: Style warnings enabled by ``-Wall`` and waived in `lint`, because every Amaranth design has them.
WALL_WAIVERS: dict[str, str] = {
    "PROCASSINIT": "Amaranth writes each register's reset value as its Verilog initial value "
                   "(the FPGA power-up state) and also resets it synchronously",
    "UNUSEDSIGNAL": "Amaranth keeps a named wire for every Signal and layout field, used or not, "
                    "for debugging",
    "DECLFILENAME": "Amaranth writes a design with submodules as one file holding one module per "
                    "elaboratable; only the top module is named after the file",
}


class LintError(RuntimeError):
    """``verilator --lint-only`` reported warnings or errors."""


def verilog(component, name: str) -> str:
    """Verilog of ``component`` as module ``name``, without source locations (reproducible),
    followed by the hand-written module of the ``sim`` crossbar flavour if the design has one
    (`imcflow.hw.crossbar.add_mvm_module`)."""
    text = amaranth_verilog.convert(component, name=name, emit_src=False)
    return add_mvm_module(text, name)


def waiver_flags(waivers: Mapping[str, str]) -> list[str]:
    """``-Wno-<name>`` for each waiver."""
    return [f"-Wno-{name}" for name in waivers]


def lint_flags(wall: bool = True) -> list[str]:
    """Verilator's arguments for `lint`: ``--lint-only``, ``-Wall`` if ``wall``, the waivers."""
    return ["--lint-only", *(["-Wall", *waiver_flags(WALL_WAIVERS)] if wall else []),
            *waiver_flags(WAIVERS)]


def lint(path: str | os.PathLike, top: str | None = None, *, wall: bool = True) -> None:
    """``verilator --lint-only`` on Verilog file ``path`` with only the documented waivers.

    Parameters
    ----------
    path : path
        Verilog file; the module ``top`` (default: the file's stem) is the toplevel.
    wall : bool
        Also enable every style warning (``-Wall``) and waive only `WALL_WAIVERS`.

    Raises
    ------
    LintError
        With Verilator's messages, if it reports anything.
    """
    path = Path(path)
    flags = lint_flags(wall)
    out = subprocess.run([toolchain.require("verilator"), *flags, "--top-module", top or path.stem,
                          str(path)], capture_output=True, text=True, env=toolchain.environ())
    if out.returncode != 0 or "%Warning" in out.stderr:
        raise LintError(f"verilator {' '.join(flags)} {path}:\n{out.stderr.strip()}")
