"""The host protocol: frames carrying images to the board and logits back, over a UART.

Every frame, in either direction, is::

    offset  bytes  field
    0       1      start byte 0xA5
    1       1      type (`FrameType`)
    2       1      tag: chosen by the host, echoed in the board's answer
    3       2      payload length N, little-endian
    5       N      payload
    5 + N   1      CRC-8/SMBUS (polynomial 0x07, initial value 0, no reflection) over the
                   type, tag, length and payload bytes (`CRC`, from ``amaranth.lib.crc``)

Host to board: ``IMAGE`` (payload: the image's ``H*W*C`` pixels in raster order, channels last)
and ``INFO_REQUEST`` (no payload). Board to host: ``LOGITS`` (one byte per class: the logit,
two's complement if the logits are signed), ``INFO`` (`Info`) and ``ERROR`` (one byte, an
`ErrorCode`). Each IMAGE with a good
checksum produces exactly one LOGITS frame with its tag, in the order the images were accepted.
docs/fpga.md describes the rules (what the board does with a bad checksum or a malformed frame).

This module is the Python side: `encode`, the incremental `FrameDecoder` the host reads with,
`crc8` (the software side of `CRC`; the board's `imcflow.fpga.link` uses its hardware
``Processor``), the `Info` record, `design_id` (which ties a bitstream to a quantized network), and
`ReceiverModel`, the behavioural model of the board's frame receiver
(`imcflow.fpga.link.FrameReceiver`) that the RTL tests compare against.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from amaranth.lib.crc.catalog import CRC8_SMBUS

__all__ = ["START", "HEADER_BYTES", "OVERHEAD_BYTES", "VERSION", "CRC", "FrameType", "ErrorCode", "crc8", "encode", "Frame",
           "FrameDecoder", "Info", "ARITH_FIELDS", "design_id", "ReceiverModel"]

START = 0xA5
#: start, type, tag and the two length bytes
HEADER_BYTES = 5
#: bytes of a frame besides its payload: the header and the CRC
OVERHEAD_BYTES = HEADER_BYTES + 1
#: protocol version reported in `Info`
VERSION = 1
#: the frame check: CRC-8/SMBUS (x^8 + x^2 + x + 1, initial value 0, no reflection) on bytes, as
#: ``amaranth.lib.crc`` parameters: ``CRC.compute(data)`` in software, ``CRC.create()`` in hardware
CRC = CRC8_SMBUS(data_width=8)


class FrameType(enum.IntEnum):
    IMAGE = 0x01
    INFO_REQUEST = 0x02
    LOGITS = 0x81
    INFO = 0x82
    ERROR = 0xE0


class ErrorCode(enum.IntEnum):
    """Why the board dropped a frame (payload of an ``ERROR`` frame)."""

    CHECKSUM = 1   #: the CRC did not match; the frame was discarded
    TYPE = 2       #: unknown frame type (header only; the board then hunts for a start byte)
    LENGTH = 3     #: the length is not the one the type requires (same)
    BUSY = 4       #: an image arrived while ``window`` images were unanswered; it was discarded
    TIMEOUT = 5    #: the frame stopped arriving for longer than the timeout; it was discarded
    UART = 6       #: a byte had a bad stop bit (baud mismatch, noise); the frame was discarded


#: `CRC` of each byte value from state 0: without reflection or final XOR, a byte moves the
#: check from ``crc`` to ``_CRC_TABLE[crc ^ byte]``
_CRC_TABLE = bytes(CRC.compute(bytes([byte])) for byte in range(256))


def crc8(data: bytes | bytearray) -> int:
    """The `CRC` of ``data`` (``crc8(b"123456789") == 0xF4``, CRC-8/SMBUS's check value), a
    table lookup per byte (``CRC.compute`` works bit by bit: 20 times slower, too slow for a
    host at 3 Mbaud)."""
    crc = 0
    for byte in data:
        crc = _CRC_TABLE[crc ^ byte]
    return crc


def encode(type_: int, tag: int, payload: bytes | bytearray = b"") -> bytes:
    """The bytes of one frame."""
    if not 0 <= tag <= 255:
        raise ValueError(f"Tag must be an integer in 0..255, not {tag!r}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"Payload must be at most 65535 bytes, not {len(payload)}")
    body = bytes([type_, tag]) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes([START]) + body + bytes([crc8(body)])


@dataclass(frozen=True)
class Frame:
    """A decoded frame (its CRC was good)."""

    type: int
    tag: int
    payload: bytes

    def encode(self) -> bytes:
        return encode(self.type, self.tag, self.payload)


class FrameDecoder:
    """Incremental decoder of a byte stream into `Frame` objects (the host's receive side).

    Bytes before a start byte are skipped. A frame whose length exceeds ``max_payload`` or whose
    CRC is wrong is counted in ``dropped`` and decoding resumes at the byte after its start byte,
    so a corrupted length cannot swallow the frames that follow.

    Parameters
    ----------
    max_payload : int
        Longest payload accepted.
    """

    def __init__(self, max_payload: int = 1024):
        self.max_payload = max_payload
        self._buffer = bytearray()
        self.dropped = 0
        self.skipped = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; return the frames it completes, in order."""
        self._buffer += data
        frames = []
        while True:
            start = self._buffer.find(START)
            if start < 0:
                self.skipped += len(self._buffer)
                self._buffer.clear()
                return frames
            self.skipped += start
            del self._buffer[:start]
            if len(self._buffer) < HEADER_BYTES:
                return frames
            length = self._buffer[3] | self._buffer[4] << 8
            if length > self.max_payload:
                self.dropped += 1
                del self._buffer[:1]
                continue
            if len(self._buffer) < HEADER_BYTES + length + 1:
                return frames
            body = bytes(self._buffer[1:HEADER_BYTES + length])
            if crc8(body) != self._buffer[HEADER_BYTES + length]:
                self.dropped += 1
                del self._buffer[:1]
                continue
            frames.append(Frame(body[0], body[1], body[4:]))
            del self._buffer[:HEADER_BYTES + length + 1]


@dataclass(frozen=True)
class Info:
    """What a board reports in its ``INFO`` frame: geometry, flow control and the design id.

    Payload (16 bytes, little-endian): ``version`` u8, ``height`` u16, ``width`` u16,
    ``channels`` u16, ``classes`` u16, ``logit_bits`` u8, ``logit_signed`` u8 (0 or 1),
    ``window`` u8 (images the host may send before their answers), ``design_id`` u32
    (`design_id` of the quantized network built in).
    """

    height: int
    width: int
    channels: int
    classes: int
    logit_bits: int
    logit_signed: bool
    window: int
    design_id: int
    version: int = VERSION

    FORMAT = "<BHHHHBBBI"
    SIZE = struct.calcsize(FORMAT)

    def pack(self) -> bytes:
        return struct.pack(self.FORMAT, self.version, self.height, self.width, self.channels,
                           self.classes, self.logit_bits, int(self.logit_signed), self.window,
                           self.design_id)

    @classmethod
    def unpack(cls, payload: bytes) -> "Info":
        if len(payload) != cls.SIZE:
            raise ValueError(f"INFO payload must be {cls.SIZE} bytes, not {len(payload)}")
        version, h, w, c, classes, bits, signed_, window, ident = struct.unpack(cls.FORMAT, payload)
        return cls(h, w, c, classes, bits, bool(signed_), window, ident, version)

    def logits(self, payload: bytes) -> list[int]:
        """The logits carried by a LOGITS payload."""
        if len(payload) != self.classes:
            raise ValueError(f"LOGITS payload must be {self.classes} bytes, not {len(payload)}")
        return [b - 256 if self.logit_signed and b >= 128 else b for b in payload]

    @property
    def image_bytes(self) -> int:
        return self.height * self.width * self.channels


#: the `~imcflow.sw.arch.Arch` fields that change the integers a network computes (row tiles add
#: partial sums after the ADC; the others are bit widths, the input encoding and the noise).
#: Column parallelism, MVM timing, the clock and the buffer strategy do not.
ARITH_FIELDS = ("rows", "act_bits", "weight_bits", "adc_bits", "input_encoding", "weight_noise",
                "noise_seed")


def design_id(qnet) -> int:
    """CRC-32 of everything in quantized network ``qnet`` that decides the logits: the
    architecture's `ARITH_FIELDS` and every layer's name, kind, integer parameters and integer
    arrays. A board built for ``qnet`` reports it in `Info`, so the host can refuse to compare a
    board's answers with a different golden model; a build may change how the arithmetic is laid
    out (column parallelism, buffers, clock) without changing it."""
    crc = zlib.crc32(repr([(f, getattr(qnet.arch, f)) for f in ARITH_FIELDS]).encode())
    for q in qnet.layers:
        crc = zlib.crc32(f"{q.name}:{q.kind}".encode(), crc)
        for f in dataclasses.fields(q):
            value = getattr(q, f.name)
            if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.integer):
                crc = zlib.crc32(f.name.encode() + np.ascontiguousarray(value, "<i8").tobytes(), crc)
            elif isinstance(value, (bool, int, np.integer)):
                crc = zlib.crc32(f"{f.name}={int(value)}".encode(), crc)
    return crc


class ReceiverModel:
    """Behavioural model of the board's frame receiver: bytes in, images and replies out.

    Feed it the bytes the board receives (`feed`), the events that have no byte (`uart_error`
    for a byte with a bad stop bit, `timeout` for a silence longer than the timeout) and, for
    flow control, the answers the board sends (`answered`). It records, in order, the images the
    board accepts (``images``: ``(tag, pixels)`` with ``pixels`` the payload bytes) and the
    replies it sends other than LOGITS (``replies``: `Frame` objects: INFO and ERROR).

    Parameters
    ----------
    info : Info
        The board's geometry, window and design id.
    """

    def __init__(self, info: Info):
        self.info = info
        self.images: list[tuple[int, bytes]] = []
        self.replies: list[Frame] = []
        self.unanswered = 0
        self._state = "hunt"
        self._body = bytearray()
        self._store = False

    def answered(self, count: int = 1) -> None:
        """The board sent ``count`` LOGITS frames (frees room for as many images)."""
        if count > self.unanswered:
            raise ValueError(f"{count} answers but only {self.unanswered} images unanswered")
        self.unanswered -= count

    def _error(self, code: ErrorCode) -> None:
        tag = self._body[1] if len(self._body) > 1 else 0
        self.replies.append(Frame(FrameType.ERROR, tag, bytes([code])))
        self._state = "hunt"

    def uart_error(self) -> None:
        if self._state != "hunt":
            self._error(ErrorCode.UART)

    def timeout(self) -> None:
        if self._state != "hunt":
            self._error(ErrorCode.TIMEOUT)

    def feed(self, data: bytes) -> None:
        for byte in data:
            self._byte(byte)

    def _byte(self, byte: int) -> None:
        if self._state == "hunt":
            if byte == START:
                self._state, self._body = "header", bytearray()
            return
        self._body.append(byte)
        if self._state == "header":
            if len(self._body) < HEADER_BYTES - 1:
                return
            type_, length = self._body[0], self._body[2] | self._body[3] << 8
            if type_ == FrameType.IMAGE:
                if length != self.info.image_bytes:
                    return self._error(ErrorCode.LENGTH)
                self._store = self.unanswered < self.info.window
            elif type_ == FrameType.INFO_REQUEST:
                if length != 0:
                    return self._error(ErrorCode.LENGTH)
            else:
                return self._error(ErrorCode.TYPE)
            self._state = "payload"
            self._length = length
            return
        if len(self._body) < HEADER_BYTES - 1 + self._length + 1:
            return
        body, check = bytes(self._body[:-1]), self._body[-1]
        type_, tag = body[0], body[1]
        if crc8(body) != check:
            return self._error(ErrorCode.CHECKSUM)
        self._state = "hunt"
        if type_ == FrameType.INFO_REQUEST:
            self.replies.append(Frame(FrameType.INFO, tag, self.info.pack()))
        elif not self._store:
            self.replies.append(Frame(FrameType.ERROR, tag, bytes([ErrorCode.BUSY])))
        else:
            self.images.append((tag, body[4:]))
            self.unanswered += 1
