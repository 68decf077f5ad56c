"""The one way commands print results.

`emit` prints a result either as one JSON object on stdout (``--json``; `print_json` converts
NumPy values and paths) or as the command's text. Progress and notes go to stderr
(`imcflow.progress.note`), so stdout holds the result only. Only the standard library is imported
here, so ``imcflow doctor`` stays light.
"""

from __future__ import annotations

import json
from collections.abc import Callable

__all__ = ["add_json", "print_json", "emit"]


def add_json(parser, what: str = "print one JSON object") -> None:
    """``--json``: the result as one JSON object on stdout (`emit`)."""
    parser.add_argument("--json", action="store_true", help=what)


def print_json(obj) -> None:
    """Print one JSON object on stdout (NumPy scalars and arrays, and paths, converted)."""

    def default(o):
        if hasattr(o, "tolist"):
            return o.tolist()
        if hasattr(o, "__fspath__"):
            return str(o)
        raise TypeError(f"not JSON serializable: {type(o).__name__}")

    print(json.dumps(obj, default=default, indent=None))


def emit(args, result, text: Callable[[object], str], json_form=None) -> None:
    """Print ``result``: one JSON object with ``--json`` (``json_form(result)`` if given, else
    ``result``), else ``text(result)``."""
    if args.json:
        print_json(result if json_form is None else json_form(result))
    else:
        print(text(result))
