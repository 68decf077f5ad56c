"""The window geometry of a conv or pooling stage: one validated value object every part reads.

`WindowGeometry` is the input map and the window (square kernel, equal stride and zero padding
on both axes) of a stage. The window buffers and the address generator of `imcflow.hw`, the
pooling blocks, the generator (`imcflow.gen.stages`, from `imcflow.sw.mapper.LayerMapping`),
the timing contract (`imcflow.sw.timing.window_schedule`) and the performance model take it,
so the derived sizes (output map, window count, line buffer depth) have one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

from imcflow.errors import UserError
from imcflow.sw.golden import conv_output_size, line_buffer_words, window_input_range
from imcflow.validate import check_int

__all__ = ["WindowGeometry"]


@dataclass(frozen=True)
class WindowGeometry:
    """The input map of a window stage and its square window.

    Parameters
    ----------
    h, w, channels : int
        Height, width and channels of the input feature map (positive).
    kernel : int
        Window size ``k`` (positive).
    stride : int
        Step between windows (positive), on both axes.
    padding : int
        Zero padding on every side, ``0..kernel-1``.

    Attributes
    ----------
    out_h, out_w : int
        Output map size (`imcflow.sw.golden.conv_output_size`).
    windows : int
        Windows per image, ``out_h * out_w``.
    pixels : int
        Input pixels per image, ``h * w``.
    taps : int
        Pixels per window, ``kernel * kernel``.
    lanes : int
        Lanes of a window beat, ``taps * channels`` (im2col order).
    line_words : int
        Depth of a line buffer for this geometry (`imcflow.sw.golden.line_buffer_words`).

    Raises
    ------
    UserError
        Naming the field (``window.kernel: must be a positive integer, not 0``) when a size is
        not a positive integer, ``padding`` is not in ``0..kernel-1`` or the kernel does not fit
        the padded map.
    """

    h: int
    w: int
    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0

    def __post_init__(self):
        for name in ("h", "w", "channels", "kernel", "stride"):
            object.__setattr__(self, name, check_int(f"window.{name}", getattr(self, name), 1))
        object.__setattr__(self, "padding",
                           check_int("window.padding", self.padding, 0, self.kernel - 1))
        if min(self.out_h, self.out_w) < 1:
            raise UserError(f"window.kernel: {self.kernel} with padding {self.padding} does not "
                            f"fit a {self.h}x{self.w} map")

    @property
    def out_h(self) -> int:
        return conv_output_size(self.h, self.kernel, self.stride, self.padding)

    @property
    def out_w(self) -> int:
        return conv_output_size(self.w, self.kernel, self.stride, self.padding)

    @property
    def windows(self) -> int:
        return self.out_h * self.out_w

    @property
    def pixels(self) -> int:
        return self.h * self.w

    @property
    def taps(self) -> int:
        return self.kernel * self.kernel

    @property
    def lanes(self) -> int:
        return self.taps * self.channels

    @property
    def line_words(self) -> int:
        return line_buffer_words(self.h, self.w, self.kernel, self.stride, self.padding)

    def input_range(self):
        """Raster indices ``(first, last)`` of the first and last input pixel of each window
        (`imcflow.sw.golden.window_input_range`)."""
        return window_input_range(self.h, self.w, self.kernel, self.stride, self.padding)

    def __str__(self) -> str:
        return (f"{self.h}x{self.w}x{self.channels}, k={self.kernel}, s={self.stride}, "
                f"p={self.padding}")
