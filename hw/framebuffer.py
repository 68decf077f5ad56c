"""Frame buffer: the activation memory of the frame strategy, a ping-pong pair of whole images.

A `FrameBuffer` has the same ports as a `~imcflow.hw.linebuffer.LineBuffer` and feeds the same
`~imcflow.hw.im2col.Im2colAddressGenerator`, so both strategies deliver identical window streams;
only memory and latency differ (docs/line-buffer.md).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Mux

from imcflow.hw.linebuffer import WindowBuffer, check_geometry

__all__ = ["FrameBuffer"]


class FrameBuffer(WindowBuffer):
    """Input buffer of the frame strategy: two halves of ``H * W`` pixels, written and read in turn.

    Image ``i`` is written to half ``i mod 2`` (the circular buffer of ``2 * H * W`` words places
    it there) while the windows of image ``i - 1`` are read from the other half. The windows of an
    image are readable only once its last pixel has arrived (from the cycle of that pixel's
    handshake on); a pixel may be written unless its half still holds the image being read.

    Parameters
    ----------
    h, w, c : int
        Height, width and channels of the input feature map.
    bits : int
        Bits per channel value.
    kernel, stride, padding : int
        The window geometry: the buffer has ``kernel * kernel`` read ports; stride and padding are
        only checked (every window of an image is read from the same stored image).
    signed : bool
        Whether pixel values are two's complement.

    Ports and attributes are those of `~imcflow.hw.linebuffer.WindowBuffer`, with ``words``
    equal to ``2 * h * w``.

    Raises
    ------
    TypeError, ValueError
        See `~imcflow.hw.linebuffer.check_geometry`.
    """

    def __init__(self, h: int, w: int, c: int, bits: int, kernel: int, stride: int = 1,
                 padding: int = 0, *, signed: bool = False):
        check_geometry(h, w, c, bits, kernel, stride, padding)
        super().__init__(h, w, c, bits, kernel, 2 * h * w, signed=signed)

    def _may_write(self, count):
        return count < self.words

    def _readable(self, level):
        return Mux(level >= self.h * self.w, level, 0)

    def _formal(self, m, count):
        # At most the image being read and the next one.
        m.d.comb += Assert((count >= 0) & (count <= self.words))
