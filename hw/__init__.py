"""Amaranth 0.5 components of the digital periphery of an IMC core, all with stream ports.

Public API (``from imcflow.hw import LineBuffer, CrossbarTile``): the stream payload
(`VectorLayout`, `vector_stream`), FIFOs (`PipelineFifo`, `SkidBuffer`), window buffers
(`LineBuffer`, `FrameBuffer`, `WindowBuffer`), im2col (`Im2colAddressGenerator`, `WindowSource`),
the crossbar (`CrossbarTile`, its flavours `TARGETS`), the ADC accumulator (`AdcAccumulator`), a
whole crossbar layer (`CrossbarLayer`), pooling (`MaxPool`, `AvgPool`, `GlobalAvgPool`) and the
residual blocks (`Fork`, `SkipFifo`, `Join`). The modules hold the rest. Blocks take the value
objects of `imcflow.sw` (`WindowGeometry`, `Requantizer`, `CrossbarParams`), never an `Arch`.
"""

from imcflow import lazy_api

#: public name -> the module that defines it
_API = {
    "VectorLayout": "imcflow.hw.streams",
    "vector_stream": "imcflow.hw.streams",
    "PipelineFifo": "imcflow.hw.fifo",
    "SkidBuffer": "imcflow.hw.fifo",
    "WindowBuffer": "imcflow.hw.linebuffer",
    "LineBuffer": "imcflow.hw.linebuffer",
    "FrameBuffer": "imcflow.hw.framebuffer",
    "Im2colAddressGenerator": "imcflow.hw.im2col",
    "WindowSource": "imcflow.hw.im2col",
    "CrossbarTile": "imcflow.hw.crossbar",
    "TARGETS": "imcflow.hw.crossbar",
    "AdcAccumulator": "imcflow.hw.accumulator",
    "CrossbarLayer": "imcflow.hw.core",
    "MaxPool": "imcflow.hw.pool",
    "AvgPool": "imcflow.hw.pool",
    "GlobalAvgPool": "imcflow.hw.pool",
    "Fork": "imcflow.hw.residual",
    "SkipFifo": "imcflow.hw.residual",
    "Join": "imcflow.hw.residual",
}
__all__ = sorted(_API)

__getattr__, __dir__ = lazy_api(__name__, _API)
