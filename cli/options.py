"""The options that mean the same thing in every command, declared once.

`add_network`, `add_arch`, `add_buffer`, `add_core_budget`, `add_dataset` and `add_output` (``-o DIR``
with ``--force``); ``--json`` is `imcflow.cli.output.add_json`. A command passes only what differs: whether the option is
required, its default, a few words on what it means there.
"""

from __future__ import annotations

from imcflow.sw.arch import BUFFER_STRATEGIES, PRESETS
from imcflow.sw.zoo import names as zoo_names

__all__ = ["add_network", "add_arch", "add_buffer", "add_core_budget", "add_dataset",
           "add_output", "FORCE_HELP"]

#: what ``--force`` may replace, the same for every command with ``-o``
FORCE_HELP = "replace DIR even if imcflow did not write it (never ., a parent of it or home)"


def add_network(parser, *, required: bool = False, default: str | None = None,
                what: str = "the network") -> None:
    """``--network``: a zoo name, a ``.toml`` or an ``.onnx`` file."""
    parser.add_argument("--network", required=required, default=default,
                        help=f"{what}: a zoo name ({', '.join(zoo_names())}), a .toml or an .onnx "
                             f"file" + (f" (default: {default})" if default else ""))


def add_arch(parser, *, default: str = "default", what: str = "") -> None:
    """``--arch``: a preset or an architecture TOML file (docs/arch-toml.md)."""
    parser.add_argument("--arch", default=None,
                        help=f"{what}preset ({', '.join(PRESETS)}) or a .toml file "
                             f"(default: {default})")


def add_buffer(parser, *, what: str = "") -> None:
    """``--buffer``: the activation buffer strategy (default: the arch's)."""
    parser.add_argument("--buffer", choices=BUFFER_STRATEGIES, default=None,
                        help=f"{what}activation buffers: line, frame (ping-pong images), or auto "
                             f"(line buffers, frame buffers where a window spans the image); "
                             f"default: the arch's")


def add_core_budget(parser, *, what: str = "") -> None:
    """``--core-budget``: crossbars for replication."""
    parser.add_argument("--core-budget", default=None, metavar="N|Kx",
                        help=f"{what}crossbars for replication: a number, or K times the "
                             f"unreplicated minimum (e.g. 2x)")


def add_dataset(parser, *, what: str = "the images that calibrate the network",
                default: str = "a zoo network's own, else seeded random images") -> None:
    """``--dataset``: a zoo data set or a .npz/.npy file (`imcflow.sw.datasets`)."""
    parser.add_argument("--dataset", default=None,
                        help=f"{what}: a zoo data set (digits) or a .npz/.npy file (default: "
                             f"{default})")


def add_output(parser, *, required: bool = True, default: str | None = None,
               what: str = "output directory") -> None:
    """``-o DIR`` (a new directory or one imcflow wrote, replaced whole and only on success,
    `imcflow.files.atomic_directory`) and ``--force``."""
    parser.add_argument("-o", "--output", required=required, default=default, metavar="DIR",
                        help=f"{what}: a new directory or one imcflow wrote (replaced as a whole, "
                             f"only on success)" + (f"; default {default}" if default else ""))
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
