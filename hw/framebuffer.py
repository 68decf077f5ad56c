"""Frame buffer: the activation memory of the frame strategy, a ping-pong pair of whole images.

A `FrameBuffer` has the same ports as a `~imcflow.hw.linebuffer.LineBuffer` and feeds the same
`~imcflow.hw.im2col.Im2colAddressGenerator`, so both strategies deliver identical window streams;
only memory and latency differ (docs/line-buffer.md).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Mux

from imcflow.hw.linebuffer import WindowBuffer, check_window
from imcflow.sw.geometry import WindowGeometry

__all__ = ["FrameBuffer"]


class FrameBuffer(WindowBuffer):
    """Input buffer of the frame strategy: two halves of ``H * W`` pixels, written and read in turn.

    Image ``i`` is written to half ``i mod 2`` (the circular buffer of ``2 * H * W`` words places
    it there) while the windows of image ``i - 1`` are read from the other half. The windows of an
    image are readable only once its last pixel has arrived (from the cycle of that pixel's
    handshake on); a pixel may be written unless its half still holds the image being read.

    Parameters
    ----------
    geometry : WindowGeometry
        The input map and the window; stride and padding do not matter here (every window of an
        image is read from the same stored image).
    bits : int
        Bits per channel value.
    signed : bool
        Whether pixel values are two's complement (the lanes the block takes and passes on).
    ports : int, optional
        Read ports: ``geometry.taps`` (default) or fewer, for a reader that reads a window over
        several cycles.

    Ports and attributes are those of `~imcflow.hw.linebuffer.WindowBuffer`, with ``words``
    equal to ``2 * h * w``.

    Raises
    ------
    UserError
        See `~imcflow.hw.linebuffer.check_window`.
    """

    def __init__(self, geometry: WindowGeometry, bits: int, *, signed: bool = False,
                 ports: int | None = None):
        check_window(geometry, bits)
        super().__init__(geometry, bits, 2 * geometry.pixels, signed=signed, ports=ports)

    def _may_write(self, shifted, keep):
        return shifted(0) < self.words

    def _readable(self, level):
        return Mux(level >= self.h * self.w, level, 0)

    def _formal(self, m, count):
        # At most the image being read and the next one.
        m.d.comb += Assert((count >= 0) & (count <= self.words))
