"""The `imcflow` command line: the command layer.

Every command is one module of this package with two functions, ``add_arguments(parser)`` and
``run(args) -> int``; it parses, calls the domain modules (`imcflow.sw`, `imcflow.gen`,
`imcflow.verif`, `imcflow.fpga`, which return results and never import this package) and prints.
Options that mean the same thing everywhere (``--network``, ``--arch``, ``--buffer``,
``--core-budget``, ``--dataset``, ``-o``/``--force``, ``--json``) are declared once in
`imcflow.cli.options`; printing is `imcflow.cli.output`. Only the chosen command's module is
imported, so ``imcflow doctor`` does not pay for importing Amaranth or NumPy.

Conventions every command follows: ``--json`` prints exactly one JSON object on stdout (progress
goes to stderr); bad input raises `imcflow.errors.UserError`, printed here as one line with exit
status 2; output directories are written with `imcflow.files.atomic_directory`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from imcflow import __version__
from imcflow.errors import UserError

#: command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("imcflow.cli.doctor", "report each tool of the pip-only toolchain: found, version, path"),
    "arch": ("imcflow.cli.arch", "show the architecture a preset or TOML file resolves to (docs/arch-toml.md)"),
    "accuracy": ("imcflow.cli.accuracy", "float and IMC accuracy on held-out images, with sweeps over the arch"),
    "map": ("imcflow.cli.map", "map a network onto crossbars and buffers: cores, throughput, latency, memory"),
    "gen": ("imcflow.cli.gen", "generate Verilog and a manifest (a standalone block, or a whole accelerator)"),
    "sim": ("imcflow.cli.sim", "simulate a generated accelerator under Verilator against the golden and timing models"),
    "demo": ("imcflow.cli.demo", "the main job on the built-in default: map, generate and simulate digits end to end"),
    "mutate": ("imcflow.cli.mutate", "mutation coverage: inject Yosys mutations into a block's RTL and count those its tests catch"),
    "explore": ("imcflow.cli.explore", "design-space exploration on Dask: accuracy, performance, energy and area over a sweep"),
    "regress": ("imcflow.cli.regress", "the block regressions with fresh seeds on Dask; every failure with its replay command"),
    "fpga": ("imcflow.cli.fpga", "FPGA prototype: build a bitstream with its report, run images on a board"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2 (argparse's own convention)."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def make_parser(command: str) -> argparse.ArgumentParser:
    module, help_ = COMMANDS[command]
    parser = _Parser(prog=f"imcflow {command}", description=help_)
    importlib.import_module(module).add_arguments(parser)
    return parser


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: imcflow <command> [options]   (imcflow {__version__})", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`imcflow <command> --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"imcflow: error: unknown command {command!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    parser = make_parser(command)
    args = parser.parse_args(rest)
    module = importlib.import_module(COMMANDS[command][0])
    try:
        return int(module.run(args) or 0)
    except UserError as e:
        print(f"imcflow {command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"imcflow {command}: interrupted", file=sys.stderr)
        return 130
