"""The network input: 8-bit pixels turned into unsigned ``act_bits`` codes (the ``source`` stage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from imcflow.errors import UserError
from imcflow.sw.arith import act_range, round_shift, saturate
from imcflow.sw.ops.base import MAX_CHANNELS, MAX_SIDE, Layer, Op, QLayer, Shape, check_range, register

__all__ = ["Input", "QInput", "InputOp"]

#: input shape axes in TOML and their largest values
_AXES = (("height", MAX_SIDE), ("width", MAX_SIDE), ("channels", MAX_CHANNELS))


@dataclass(eq=False)
class Input(Layer):
    shape: Shape = None
    kind: ClassVar[str] = "input"

    @property
    def inputs(self) -> tuple[str, ...]:
        return ()

    def check(self):
        if not isinstance(self.shape, Shape):
            raise self.error(f"shape must be a Shape(h, w, c), not {self.shape!r}")
        for axis, limit in (("h", MAX_SIDE), ("w", MAX_SIDE), ("c", MAX_CHANNELS)):
            check_range(self.name, f"shape.{axis}", getattr(self.shape, axis), maximum=limit)

    def infer(self, shapes):
        return self.shape


@dataclass(eq=False)
class QInput(QLayer):
    """The 8-bit input image as unsigned ``act_bits`` codes: ``round_shift(pixel, shift)``
    saturated, with ``shift = 8 - act_bits``."""

    shift: int = 0
    kind: ClassVar[str] = "input"


@register
class InputOp(Op):
    kind = "input"
    layer = Input
    qlayer = QInput
    role = "source"
    toml_keys = {"shape": (list, True)}

    def from_toml(self, name, args, where):
        shape = args["shape"]
        if len(shape) != 3:
            raise UserError(f"{where}.shape: must be [height, width, channels], not {shape!r}")
        for v, (axis, limit) in zip(shape, _AXES):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= limit:
                raise UserError(f"{where}.shape: {axis} must be an integer in 1..{limit}, not {v!r}")
        return Input(name, Shape(*shape))

    def signed(self, layer, src, feeds_activations):
        return False

    def quantize(self, layer, ctx):
        shift = 8 - ctx.arch.act_bits
        return QInput(**ctx.common(layer), scale=ctx.input_scale * 2 ** shift, shift=shift)

    def forward(self, q, inputs, arch):
        # 8-bit pixels to unsigned act_bits codes (the identity for act_bits = 8)
        return saturate(round_shift(inputs[0], q.shift), *act_range(arch.act_bits, False))

    def float_forward(self, layer, xs):
        return xs[0]
