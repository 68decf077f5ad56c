"""``imcflow arch show [PRESET|FILE] [--json]``: the architecture a preset or TOML file resolves to.

Prints every field of the `~imcflow.sw.arch.Arch` that `load_arch` makes of the argument (the
file's fields over the defaults), with its description; ``--json`` prints ``arch_name`` and
``arch`` (every field), the keys every result uses to state its architecture. The file format is
docs/arch-toml.md.
"""

from __future__ import annotations

from imcflow.cli.output import add_json, emit
from imcflow.sw.arch import PRESETS, Arch, arch_label, load_arch

__all__ = ["add_arguments", "run", "show"]


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="{show}")
    s = actions.add_parser("show", help="print the resolved architecture of a preset or TOML file",
                           description="Print every field of the architecture a preset or a TOML "
                                       "file resolves to (docs/arch-toml.md).")
    s.add_argument("arch", nargs="?", default="default", metavar="PRESET|FILE",
                   help=f"a preset ({', '.join(PRESETS)}) or a .toml file (default: default)")
    add_json(s)


def show(spec: str = "default") -> dict:
    """``{"arch_name": ..., "arch": {field: value}}`` of a preset or TOML file."""
    return {"arch_name": arch_label(spec), "arch": load_arch(spec).to_dict()}


def _text(result: dict) -> str:
    arch, doc = result["arch"], Arch.describe()
    default = Arch().to_dict()
    width = max(map(len, arch))
    values = {k: "none" if v is None else str(v) for k, v in arch.items()}
    vwidth = max(map(len, values.values()))
    lines = [f"arch: {result['arch_name']}"]
    lines += [f"  {k:<{width}} = {values[k]:<{vwidth}}  {'*' if arch[k] != default[k] else ' '} "
              f"{doc[k]}" for k in arch]
    lines.append("(* differs from the default)")
    return "\n".join(lines)


def run(args) -> int:
    emit(args, show(args.arch), _text)
    return 0
