"""Constant tensors of an ONNX model (`Param`) and the initializers they are read from.

`initializer` reads one initializer, with its external data when it has some: the data must lie
inside the model's folder and hold the whole tensor, and float values must be finite; a missing
data file leaves the value out (the model imports as a topology). Anything else is a one-line
`UserError` naming the tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from imcflow.errors import UserError

__all__ = ["Param", "initializer"]


@dataclass(frozen=True)
class Param:
    """A constant tensor: its ``shape`` (None when unknown) and ``value`` (None without data);
    ``codes`` = ``(q, scale, zero_point, axis)`` when it was dequantized from integers."""

    shape: tuple | None
    value: np.ndarray | None
    codes: tuple | None = None


def initializer(tensor: TensorProto, base_dir: Path | None) -> Param:
    """The initializer ``tensor`` with its value (None when its external data file is missing,
    or when there is no ``base_dir``, the model's folder, to read it from).

    External data must lie inside ``base_dir`` and hold the whole tensor; float values must be
    finite. Anything else is a `UserError` naming the tensor.
    """
    where = f"onnx initializer {tensor.name!r}"
    dims = tuple(tensor.dims)
    if tensor.data_location == TensorProto.EXTERNAL:
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if base_dir is None:
            return Param(dims, None)
        root = base_dir.resolve()
        path = (root / location).resolve()
        if not path.is_relative_to(root) or path == root:
            raise UserError(f"{where}: external data {location!r} is outside the model's folder "
                            f"{str(base_dir)!r}")
        if not path.is_file():
            return Param(dims, None)
        try:
            offset = int(info.get("offset", 0))
            need = math.prod(dims) * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
            length = int(info.get("length", need))
        except (ValueError, TypeError, KeyError) as e:
            raise UserError(f"{where}: unreadable external data entry ({e})") from None
        available = max(path.stat().st_size - offset, 0)
        if length != need or available < need:
            raise UserError(f"{where}: external data {location} holds {min(length, available)} "
                            f"bytes from offset {offset}; the {list(dims)} tensor needs {need}")
        external_data_helper.load_external_data_for_tensor(tensor, str(base_dir))
    try:
        value = numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as e:
        raise UserError(f"{where}: unreadable data ({e})") from None
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise UserError(f"{where}: has NaN or infinite values")
    return Param(dims, value)
