"""Networks described in TOML (schema: docs/network-toml.md).

A file lists its layers in topological order as ``[[layers]]`` tables; the first is the input.
Each layer reads the previous one unless it names its ``input`` (an ``add`` names its two
``inputs``). Weights come from an ``.npz`` file next to the TOML file (arrays
``<layer>.weight`` and, optionally, ``<layer>.bias``) or, without one, from a seeded He
initialisation. Every error is a one-line `UserError` naming the file and the field.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from imcflow.errors import UserError
from imcflow.sw.ir import MAX_CHANNELS, MAX_KERNEL, Network
from imcflow.sw.weights import he_init, with_weights
from imcflow.sw.ops import registry

__all__ = ["load_toml", "loads_network", "TOP_KEYS", "LAYER_KEYS"]

#: top-level keys: (type, required)
TOP_KEYS = {"name": (str, False), "weights": (str, False), "seed": (int, False), "layers": (list, True)}

#: kind -> its keys besides ``name`` and ``kind``: key -> (type, required) (each op's
#: `~imcflow.sw.ops.Op.toml_keys`)
LAYER_KEYS: dict[str, dict[str, tuple[type, bool]]] = {kind: op.toml_keys
                                                       for kind, op in registry().items()}

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "an array"}
#: allowed values of integer keys (the limits of `imcflow.sw.ir`)
_RANGE = {"out_channels": (1, MAX_CHANNELS), "out_features": (1, MAX_CHANNELS),
          "kernel": (1, MAX_KERNEL), "stride": (1, MAX_KERNEL), "padding": (0, MAX_KERNEL - 1)}


def _check_type(field: str, value, type_: type) -> None:
    allowed = (int, float) if type_ is float else type_  # a number may be written as 6
    ok = isinstance(value, allowed) and not (type_ in (int, float) and isinstance(value, bool))
    if not ok:
        raise UserError(f"{field}: must be {_TYPE_NAMES[type_]}, not {value!r}")


def _layer(i: int, table, names: list[str]):
    where = f"layers[{i}]"
    if not isinstance(table, dict):
        raise UserError(f"{where}: must be a table, not {table!r}")
    if "kind" not in table:
        raise UserError(f"{where}.kind: missing; one of {', '.join(LAYER_KEYS)}")
    kind = table["kind"]
    if kind not in LAYER_KEYS:
        raise UserError(f"{where}.kind: must be one of {', '.join(LAYER_KEYS)}, not {kind!r}")
    op = registry()[kind]
    if i == 0 and op.role != "source":
        raise UserError(f"{where}.kind: the first layer must be the input, not {kind!r}")
    if i > 0 and op.role == "source":
        raise UserError(f"{where}.kind: only the first layer can be an input")
    keys = op.toml_keys
    for key in table:
        if key not in keys and key not in ("name", "kind"):
            raise UserError(f"{where}.{key}: unknown key for a {kind} layer; allowed: "
                            f"{', '.join(['name', 'kind', *keys])}")
    if "name" not in table:
        raise UserError(f"{where}.name: missing")
    name = table["name"]
    _check_type(f"{where}.name", name, str)
    if not name:
        raise UserError(f"{where}.name: must not be empty")
    if name in names:
        raise UserError(f"{where}.name: duplicate layer name {name!r}")
    args = {}
    for key, (type_, required) in keys.items():
        if key not in table:
            if required:
                raise UserError(f"{where}.{key}: missing; a {kind} layer needs it")
            continue
        value = table[key]
        _check_type(f"{where}.{key}", value, type_)
        if key in _RANGE and not _RANGE[key][0] <= value <= _RANGE[key][1]:
            lo, hi = _RANGE[key]
            raise UserError(f"{where}.{key}: must be an integer in {lo}..{hi}, not {value!r}")
        args[key] = float(value) if type_ is float else value
    if "padding" in args and args["padding"] >= args["kernel"]:
        raise UserError(f"{where}.padding: must be smaller than kernel {args['kernel']}, "
                        f"not {args['padding']}")
    if "input" in keys:
        args.setdefault("input", names[-1])
    layer = op.from_toml(name, args, where)
    field = "inputs" if "inputs" in keys else "input"
    for ref in layer.inputs:
        _check_ref(f"{where}.{field}", ref, names)
    return layer


def _check_ref(field: str, ref, names: list[str]) -> None:
    _check_type(field, ref, str)
    if ref not in names:
        raise UserError(f"{field}: {ref!r} is not an earlier layer (earlier: {', '.join(names)})")


def _parse(doc: dict, base_dir: Path | None, default_name: str, weights: bool) -> Network:
    for key in doc:
        if key not in TOP_KEYS:
            raise UserError(f"{key}: unknown top-level key; allowed: {', '.join(TOP_KEYS)}")
    for key, (type_, required) in TOP_KEYS.items():
        if key in doc:
            _check_type(key, doc[key], type_)
        elif required:
            raise UserError(f"{key}: missing; a network needs [[layers]] tables")
    if not doc["layers"]:
        raise UserError("layers: must list at least the input layer")
    seed = doc.get("seed", 0)
    if seed < 0:
        raise UserError(f"seed: must be an integer >= 0, not {seed}")
    layers = []
    for i, table in enumerate(doc["layers"]):
        layers.append(_layer(i, table, [l.name for l in layers]))
    net = Network(doc.get("name", default_name), layers)
    if "weights" in doc and "seed" in doc:
        raise UserError("seed: only used without weights (random initialisation); remove one")
    if "weights" not in doc or not weights:
        return he_init(net, seed)
    return with_weights(net, _load_npz(doc["weights"], base_dir))


def _load_npz(name: str, base_dir: Path | None) -> dict[str, np.ndarray]:
    path = Path(name) if base_dir is None else base_dir / name
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except OSError as e:
        raise UserError(f"weights: cannot read {str(path)!r}: {e.strerror or e}") from None
    except ValueError as e:
        raise UserError(f"weights: {str(path)!r} is not a NumPy .npz file: {e}") from None


def loads_network(text: str, *, source: str = "<string>", base_dir: Path | None = None,
                  default_name: str = "network", weights: bool = True) -> Network:
    """A `Network` from TOML ``text``; errors are prefixed with ``source``.

    ``base_dir`` resolves a relative ``weights`` path (the current directory when None);
    ``weights=False`` ignores the weights file and initialises randomly (``seed``, default 0).
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{source}: not valid TOML: {e}") from None
    try:
        return _parse(doc, base_dir, default_name, weights)
    except UserError as e:
        raise UserError(f"{source}: {e}") from None


def load_toml(path: str | Path, *, weights: bool = True) -> Network:
    """A `Network` from a TOML file (weights relative to the file's directory; ``weights=False``
    as in `loads_network`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"--network: cannot read {str(path)!r}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"--network: {path.name} is not UTF-8 text (byte {e.object[e.start]:#04x} "
                        f"at offset {e.start}); TOML files are UTF-8") from None
    return loads_network(text, source=path.name, base_dir=path.parent, default_name=path.stem,
                         weights=weights)
