"""``imcflow doctor``: each tool of the pip-only toolchain (`imcflow.toolchain`): found, version,
path; exit status 1 if one is missing."""

from __future__ import annotations

from imcflow.cli.output import add_json, emit
from imcflow.toolchain import TOOLS, find

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    add_json(parser)


def _text(tools: dict) -> str:
    missing = [t for t in tools.values() if not t.found]
    width = max(map(len, tools))
    lines = [f"{name:<{width}}  " + (f"{t.version or '?':<10} {t.path}" if t.found
                                     else f"MISSING    ({t.hint})") for name, t in tools.items()]
    lines.append("all tools found" if not missing else
                 f"missing: {', '.join(t.name for t in missing)}; install with: "
                 + "; ".join(sorted({t.hint for t in missing})))
    return "\n".join(lines)


def run(args) -> int:
    tools = {name: find(name) for name in TOOLS}
    emit(args, tools, _text, lambda t: {name: tool.to_json() for name, tool in t.items()})
    return 1 if any(not t.found for t in tools.values()) else 0
