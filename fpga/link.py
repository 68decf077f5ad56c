"""The board side of the host protocol: frames in, pixel stream out; logits in, frames out.

`HostLink` sits between the UART and the accelerator::

    bytes from UartRx --> FrameReceiver --o--------> pixels to the accelerator
                              |  o_tag, o_reply
                              v
    bytes to UartTx  <--- FrameSender <--i_logits--- logits from the accelerator

`FrameReceiver` parses frames (`imcflow.fpga.protocol`) one byte per cycle and never stalls the
UART. The pixels of an IMAGE frame are written into an image buffer but become visible to the
accelerator only when the frame's checksum has matched (commit); a bad frame is rolled back, so
an image is never half-fed into the accelerator. The buffer holds ``window`` images and the tag
queue ``window`` tags; an image that arrives while ``window`` images are unanswered is read to
its end and answered with ``ERROR BUSY``. `FrameSender` turns each logits beat (with the tag of
the oldest unanswered image) and each reply (INFO, ERROR) into a frame.
`imcflow.fpga.protocol.ReceiverModel` is the behavioural model of the receiver.
`window_for` sizes the window so that the host's image frames follow each other with no gap.
"""

from __future__ import annotations

from math import ceil
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from imcflow.fpga.protocol import (CRC, HEADER_BYTES, OVERHEAD_BYTES, START, ErrorCode,
                                   FrameType, Info)
from imcflow.fpga.uart import CHARACTER_BITS
from imcflow.hw.fifo import PipelineFifo
from imcflow.hw.streams import VectorLayout, vector_stream
from imcflow.validate import check_instance, check_int

__all__ = ["ReplyLayout", "FrameReceiver", "FrameSender", "HostLink", "HOST_TURNAROUND_S",
           "window_for"]

#: a reply the receiver asks the sender to send: frame type (INFO or ERROR), error code, tag
ReplyLayout = data.StructLayout({"type": 8, "code": 8, "tag": 8})

#: replies queued between receiver and sender in `HostLink`
REPLY_QUEUE = 4

#: seconds from an answer's last byte leaving the board to the next image frame the host sends
#: in return reaching the board, streaming through a USB UART: the FT231X ships received bytes
#: to the host in 62-byte packets (answers stream at ~4 images per packet, one per ms), USB full
#: speed polls once per 1 ms frame each way, and the host reacts in well under 1 ms
HOST_TURNAROUND_S = 0.004


def window_for(image_bytes: int, classes: int, *, divisor: int, latency: int,
               turnaround: int) -> int:
    """Images in flight that keep the line to the board busy: the smallest window that lets
    the host send image ``k + window`` in answer to image ``k`` before image ``k + window - 1``
    has finished arriving, capped at 255 (8-bit tags).

    An image frame takes ``F = (image_bytes + 6) * 10 * divisor`` cycles on the line. Its
    answer reaches the host ``latency + (classes + 6) * 10 * divisor + turnaround`` cycles after
    its last byte: the accelerator's latency, the LOGITS frame and the host's turnaround
    (`HOST_TURNAROUND_S` times the clock on a board). The ``window - 1`` frames already sent
    must cover that round trip. The board buffers ``window`` images (``window * image_bytes``
    bytes of memory), so nothing sent within the window is dropped.
    """
    frame = (image_bytes + OVERHEAD_BYTES) * CHARACTER_BITS * divisor
    answer = (classes + OVERHEAD_BYTES) * CHARACTER_BITS * divisor
    return min(255, 1 + ceil((latency + answer + turnaround) / frame))


class _State(enum.Enum, shape=3):
    HUNT = 0
    TYPE = 1
    TAG = 2
    LEN_LO = 3
    LEN_HI = 4
    PAYLOAD = 5
    CHECK = 6


class FrameReceiver(wiring.Component):
    """Parses frames from a byte stream; releases the images whose checksum matched.

    Rules (docs/fpga.md): bytes outside a frame that are not the start byte are ignored. After
    the five header bytes, an unknown type is answered with ``ERROR TYPE`` and a length other
    than the type's (``H*W*C`` for IMAGE, 0 for INFO_REQUEST) with ``ERROR LENGTH``; the receiver
    then hunts for the next start byte. Otherwise the frame is read to its end: a CRC mismatch
    gives ``ERROR CHECKSUM``, an INFO_REQUEST an INFO reply, an IMAGE is committed (its pixels
    appear on ``o``, its tag on ``o_tag``) or, when ``window`` images are unanswered, answered
    with ``ERROR BUSY``. Inside a frame, ``rx_error`` gives ``ERROR UART`` and ``timeout``
    cycles without a byte give ``ERROR TIMEOUT``; both drop the frame. Errors carry the
    frame's tag (0 if it was not received yet).

    Parameters
    ----------
    height, width, channels : int
        Image geometry: ``height * width`` pixels of ``channels`` bytes.
    window : int
        Images the buffer and the tag queue hold (1..255).
    timeout : int or None
        Cycles without a byte after which a frame is dropped; None: never.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes from the UART; ``i.ready`` is always 1 (one byte per cycle, never stalls).
    rx_error : In(1)
        Pulse from the UART: a character with a bad stop bit.
    o : Out(vector_stream(channels, 8))
        Pixels of committed images in raster order, ``last`` on each image's last pixel.
    o_tag : Out(stream.Signature(8))
        Tag of each committed image, in order (a `PipelineFifo` of depth ``window``).
    o_reply : Out(stream.Signature(ReplyLayout))
        INFO and ERROR replies. A reply produced while the previous one still waits here is
        dropped (`HostLink` queues them).
    pending : Out(range(window + 1))
        Committed images whose tag is still in the tag queue (unanswered).
    error : Out(1)
        One-cycle pulse whenever a frame is dropped.
    depth : int
        Pixels the image buffer holds: ``window * height * width``.
    latency : int
        1: the first pixel of an image is on ``o`` the cycle after its CRC byte was accepted
        (when the buffer held no earlier image).
    interval : int
        1: pixels leave at one per cycle while ``o`` is ready.

    Raises
    ------
    TypeError
        If a geometry parameter, ``window`` or ``timeout`` is not a positive integer (``window``
        at most 255).
    ValueError
        If an image has more than 65535 bytes (the frame's length field).
    """

    latency = 1
    interval = 1

    def __init__(self, height: int, width: int, channels: int, *, window: int = 2,
                 timeout: int | None = None):
        for name, value in (("height", height), ("width", width), ("channels", channels)):
            check_int(name, value, 1)
        self.height, self.width, self.channels = height, width, channels
        self.pixels = height * width
        self.image_bytes = self.pixels * channels
        if self.image_bytes > 0xFFFF:
            raise ValueError(f"An image must be at most 65535 bytes, not {self.image_bytes}")
        self.window = check_int("window", window, 1, 255)
        self.timeout = None if timeout is None else check_int("timeout", timeout, 1)
        self.depth = window * self.pixels
        super().__init__({
            "i": In(stream.Signature(8)),
            "rx_error": In(1),
            "o": Out(vector_stream(channels, 8)),
            "o_tag": Out(stream.Signature(8)),
            "o_reply": Out(stream.Signature(ReplyLayout)),
            "pending": Out(range(window + 1)),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        P, C, D = self.pixels, self.channels, self.depth
        m.d.comb += self.i.ready.eq(1)
        # the signals the parts below share (locals first, so that they keep their names)
        state = Signal(_State)
        type_, tag, length_lo = Signal(8), Signal(8), Signal(8)
        # The frame check (`imcflow.fpga.protocol.CRC`): restarted by the start byte, fed every
        # header and payload byte; ``crc.crc`` is the CRC of the bytes before this one.
        m.submodules.crc = crc = CRC.create()
        m.d.comb += crc.data.eq(self.i.payload)
        # (one spare value each, so that no counter is zero bits wide)
        count = Signal(range(self.image_bytes + 1))  # payload bytes received before this one
        lane = Signal(range(C + 1))                  # channel of this payload byte
        partial = Signal(data.ArrayLayout(8, C))     # the bytes of the pixel being received
        store = Signal()                             # the image fits: write its pixels

        # Tag queue and image buffer (a FIFO whose writes become visible on commit).
        m.submodules.tags = tags = PipelineFifo(8, self.window)
        wiring.connect(m, tags.o, wiring.flipped(self.o_tag))
        m.d.comb += self.pending.eq(tags.level)
        # (at least two words, so that no address is zero bits wide)
        m.submodules.images = images = Memory(shape=VectorLayout(C, 8), depth=max(D, 2), init=[])
        wr, rd = images.write_port(), images.read_port()
        wp, committed, consume = (Signal(range(max(D, 2))) for _ in range(3))
        level = Signal(range(D + 1))                 # committed pixels not yet read
        # Room for one more image. The tag queue bounds the images in the buffer too (each
        # buffered image's tag is queued), but the buffer is checked on its own so that an
        # accelerator answering before it has read a whole image cannot overwrite it.
        room = (tags.level < self.window) & (level <= D - P)
        commit, fail, reply_info = Signal(), Signal(), Signal()
        fail_code = Signal(8)
        f = SimpleNamespace(state=state, type_=type_, tag=tag, length_lo=length_lo, crc=crc,
                            count=count, lane=lane, partial=partial, store=store, tags=tags,
                            wr=wr, rd=rd, wp=wp, committed=committed, consume=consume,
                            level=level, room=room, commit=commit, fail=fail,
                            reply_info=reply_info, fail_code=fail_code)

        self._parse(m, f)
        self._drop_on_line_errors(m, f)
        # A UART error in the cycle of the CRC byte still drops the frame.
        f.accept = f.commit & ~f.fail
        with m.If(f.fail):
            m.d.sync += [f.state.eq(_State.HUNT), f.wp.eq(f.committed)]
        with m.If(f.accept):
            m.d.sync += f.committed.eq(f.wp)
        m.d.comb += [f.tags.i.valid.eq(f.accept), f.tags.i.payload.eq(f.tag),
                     self.error.eq(f.fail)]
        self._reply(m, f)
        self._pixels_out(m, f)
        return m

    def _next(self, pointer):
        """The image buffer's address after ``pointer`` (it wraps at `depth`)."""
        return Mux(pointer == self.depth - 1, 0, pointer + 1)

    def _fail(self, m, f, code) -> None:
        m.d.comb += [f.fail.eq(1), f.fail_code.eq(code)]

    def _parse(self, m, f) -> None:
        """Header and payload, one byte per cycle: the frame's state machine, the CRC, the
        payload's pixels written into the image buffer, and the frame's end (commit, INFO, or an
        error). (If/Elif on the state, not m.Switch: see `imcflow.fpga.uart.UartRx`.)"""
        C, N = self.channels, self.image_bytes
        byte, state, crc = self.i.payload, f.state, f.crc
        with m.If(self.i.valid):
            with m.If(state == _State.HUNT):
                with m.If(byte == START):
                    m.d.sync += [state.eq(_State.TYPE), f.tag.eq(0)]
                    m.d.comb += crc.start.eq(1)
            with m.Elif(state == _State.TYPE):
                m.d.sync += [f.type_.eq(byte), state.eq(_State.TAG)]
                m.d.comb += crc.valid.eq(1)
            with m.Elif(state == _State.TAG):
                m.d.sync += [f.tag.eq(byte), state.eq(_State.LEN_LO)]
                m.d.comb += crc.valid.eq(1)
            with m.Elif(state == _State.LEN_LO):
                m.d.sync += [f.length_lo.eq(byte), state.eq(_State.LEN_HI)]
                m.d.comb += crc.valid.eq(1)
            with m.Elif(state == _State.LEN_HI):
                m.d.comb += crc.valid.eq(1)
                self._check_length(m, f, Cat(f.length_lo, byte))
            with m.Elif(state == _State.PAYLOAD):
                m.d.sync += [f.count.eq(f.count + 1),
                             f.lane.eq(Mux(f.lane == C - 1, 0, f.lane + 1))]
                m.d.comb += crc.valid.eq(1)
                for c in range(C - 1):
                    with m.If(f.lane == c):
                        m.d.sync += f.partial[c].eq(byte)
                with m.If(f.lane == C - 1):
                    m.d.comb += [
                        f.wr.en.eq(f.store),
                        f.wr.addr.eq(f.wp),
                        f.wr.data.data.eq(Cat(*(f.partial[c] for c in range(C - 1)), byte)),
                        f.wr.data.last.eq(f.count == N - 1),
                    ]
                    with m.If(f.store):
                        m.d.sync += f.wp.eq(self._next(f.wp))
                with m.If(f.count == N - 1):
                    m.d.sync += state.eq(_State.CHECK)
            with m.Else():                                # _State.CHECK
                m.d.sync += state.eq(_State.HUNT)
                with m.If(byte != crc.crc):
                    self._fail(m, f, ErrorCode.CHECKSUM)
                with m.Elif(f.type_ == FrameType.INFO_REQUEST):
                    m.d.comb += f.reply_info.eq(1)
                with m.Elif(f.store):
                    m.d.comb += f.commit.eq(1)
                with m.Else():
                    self._fail(m, f, ErrorCode.BUSY)

    def _check_length(self, m, f, length) -> None:
        """The last header byte: the type's length (``H*W*C`` for IMAGE, 0 for INFO_REQUEST)
        starts its payload or check byte; another length or an unknown type drops the frame."""
        with m.If(f.type_ == FrameType.IMAGE):
            with m.If(length == self.image_bytes):
                m.d.sync += [f.store.eq(f.room), f.count.eq(0), f.lane.eq(0),
                             f.state.eq(_State.PAYLOAD)]
            with m.Else():
                self._fail(m, f, ErrorCode.LENGTH)
        with m.Elif(f.type_ == FrameType.INFO_REQUEST):
            with m.If(length == 0):
                m.d.sync += [f.store.eq(0), f.state.eq(_State.CHECK)]
            with m.Else():
                self._fail(m, f, ErrorCode.LENGTH)
        with m.Else():
            self._fail(m, f, ErrorCode.TYPE)

    def _drop_on_line_errors(self, m, f) -> None:
        """Inside a frame: a UART error, or silence for `timeout` cycles, drops it."""
        in_frame = f.state != _State.HUNT
        with m.If(in_frame & self.rx_error):
            self._fail(m, f, ErrorCode.UART)
        if self.timeout is not None:
            silent = Signal(range(self.timeout))
            with m.If(self.i.valid | ~in_frame):
                m.d.sync += silent.eq(0)
            with m.Elif(silent == self.timeout - 1):
                self._fail(m, f, ErrorCode.TIMEOUT)
                m.d.sync += silent.eq(0)
            with m.Else():
                m.d.sync += silent.eq(silent + 1)

    def _reply(self, m, f) -> None:
        """Replies (INFO, ERROR): held until the sender takes them; a new one while one waits is
        dropped."""
        reply = self.o_reply
        with m.If(reply.ready):
            m.d.sync += reply.valid.eq(0)
        with m.If((f.fail | f.reply_info) & (~reply.valid | reply.ready)):
            m.d.sync += [
                reply.valid.eq(1),
                reply.payload.type.eq(Mux(f.fail, FrameType.ERROR, FrameType.INFO)),
                reply.payload.code.eq(Mux(f.fail, f.fail_code, 0)),
                reply.payload.tag.eq(f.tag),
            ]

    def _pixels_out(self, m, f) -> None:
        """Committed pixels out, read ahead as in `PipelineFifo`."""
        read = self.o.valid & self.o.ready
        consume_next = Mux(read, self._next(f.consume), f.consume)
        m.d.comb += [
            f.rd.addr.eq(consume_next),
            self.o.payload.eq(f.rd.data),
            self.o.valid.eq(f.level != 0),
        ]
        m.d.sync += [f.consume.eq(consume_next),
                     f.level.eq(f.level + Mux(f.accept, self.pixels, 0) - read)]


class FrameSender(wiring.Component):
    """Sends a LOGITS frame per logits beat and an INFO or ERROR frame per reply.

    When idle, it takes a waiting reply first, else a logits beat together with the tag of the
    oldest unanswered image (both are accepted in the same cycle). The frame is then emitted one
    byte per cycle while ``o`` is ready: start byte, type, tag, length, payload, CRC. LOGITS
    payload: each class's logit as one byte (sign- or zero-extended from ``logit_bits``); INFO
    payload: ``info.pack()``; ERROR payload: the error code.

    Parameters
    ----------
    info : Info
        What INFO frames report; also gives ``classes``, ``logit_bits`` (1..8) and
        ``logit_signed`` of the logits.

    Attributes
    ----------
    i_logits : In(vector_stream(classes, logit_bits, logit_signed))
        One beat per image.
    i_tag : In(stream.Signature(8))
        Tags of the images, in order (`FrameReceiver.o_tag`).
    i_reply : In(stream.Signature(ReplyLayout))
        Replies (`FrameReceiver.o_reply`).
    o : Out(stream.Signature(8))
        Frame bytes to the UART.
    latency : int
        2: the start byte of a frame is on ``o`` two cycles after its input was accepted, when
        the previous frame has left.
    interval : int
        1: one byte per cycle while ``o`` is ready; a frame of ``N`` payload bytes takes
        ``N + 6`` cycles.

    Raises
    ------
    TypeError
        If ``info`` is not an `Info`, or its ``classes`` is not a positive integer or its
        ``logit_bits`` not in 1..8.
    """

    latency = 2
    interval = 1

    def __init__(self, info: Info):
        check_instance("info", info, Info)
        self.classes = check_int("info.classes", info.classes, 1, 0xFFFF)
        self.logit_bits = check_int("info.logit_bits", info.logit_bits, 1, 8)
        self.info = info
        super().__init__({
            "i_logits": In(vector_stream(self.classes, self.logit_bits, info.logit_signed)),
            "i_tag": In(stream.Signature(8)),
            "i_reply": In(stream.Signature(ReplyLayout)),
            "o": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        info_bytes = self.info.pack()
        longest = max(self.classes, len(info_bytes), 1)
        active = Signal()
        type_, tag, code = Signal(8), Signal(8), Signal(8)
        logits = Signal(data.ArrayLayout(8, self.classes))   # sign- or zero-extended
        k = Signal(range(HEADER_BYTES + longest + 1))     # index of the next byte in the frame
        # index of the next payload byte, k - HEADER_BYTES modulo 2**len(k) (above every payload
        # index in the header): a register of its own, so no subtractor lies before the byte's
        # selects and the frame check (the clock rate of an FPGA build)
        j = Signal(len(k))
        j_first = -HEADER_BYTES % (1 << len(k))

        # Take a reply first, else logits with their tag.
        take_reply = ~active & self.i_reply.valid
        take_logits = ~active & ~self.i_reply.valid & self.i_logits.valid & self.i_tag.valid
        m.d.comb += [
            self.i_reply.ready.eq(take_reply),
            self.i_logits.ready.eq(take_logits),
            self.i_tag.ready.eq(take_logits),
        ]
        with m.If(take_reply):
            m.d.sync += [active.eq(1), k.eq(0), j.eq(j_first),
                         type_.eq(self.i_reply.payload.type),
                         tag.eq(self.i_reply.payload.tag), code.eq(self.i_reply.payload.code)]
        with m.If(take_logits):
            m.d.sync += [active.eq(1), k.eq(0), j.eq(j_first), type_.eq(FrameType.LOGITS),
                         tag.eq(self.i_tag.payload)]
            m.d.sync += [logits[c].eq(self.i_logits.payload.data[c]) for c in range(self.classes)]

        length = Signal(16)
        m.d.comb += length.eq(Mux(type_ == FrameType.LOGITS, self.classes,
                                  Mux(type_ == FrameType.INFO, len(info_bytes), 1)))
        payload = Signal(8)
        with m.If(type_ == FrameType.LOGITS):
            m.d.comb += payload.eq(logits.as_value().word_select(j, 8))
        with m.Elif(type_ == FrameType.INFO):
            m.d.comb += payload.eq(Const(int.from_bytes(info_bytes, "little"),
                                         8 * len(info_bytes)).word_select(j, 8))
        with m.Else():
            m.d.comb += payload.eq(code)
        byte = Signal(8)
        # The frame check (`imcflow.fpga.protocol.CRC`) of the bytes sent after the start byte.
        m.submodules.crc = crc = CRC.create()
        header = Cat(Const(START, 8), type_, tag, length)       # the first HEADER_BYTES bytes
        m.d.comb += byte.eq(Mux(k < HEADER_BYTES, header.word_select(k[:3], 8),
                                Mux(j == length, crc.crc, payload)))

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(active & (~self.o.valid | self.o.ready)):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(byte), k.eq(k + 1), j.eq(j + 1)]
            m.d.comb += [crc.data.eq(byte), crc.start.eq(k == 0), crc.valid.eq(k != 0)]
            with m.If(k == HEADER_BYTES + length):
                m.d.sync += active.eq(0)
        return m


class HostLink(wiring.Component):
    """The host protocol between UART bytes and the accelerator's streams.

    A `FrameReceiver`, a queue of ``REPLY_QUEUE`` replies and a `FrameSender`. See the module
    docstring and docs/fpga.md.

    Parameters
    ----------
    height, width, channels : int
        Image geometry (the accelerator's input).
    classes, logit_bits : int
        The accelerator's output: ``classes`` logits of ``logit_bits`` (1..8) bits.
    logit_signed : bool
        Whether the logits are two's complement.
    window : int
        Images the host may send before their answers (1..255).
    timeout : int or None
        Cycles of silence inside a frame after which it is dropped; None: never.
    design_id : int
        32-bit identifier reported in INFO frames (`imcflow.fpga.protocol.design_id`).

    Attributes
    ----------
    i_bytes : In(stream.Signature(8))
        Bytes from the UART receiver (always ready).
    rx_error : In(1)
        The UART receiver's framing-error pulse.
    o_bytes : Out(stream.Signature(8))
        Bytes to the UART transmitter.
    o_pixels : Out(vector_stream(channels, 8))
        Pixels of accepted images, raster order, ``last`` on each image's last pixel.
    i_logits : In(vector_stream(classes, logit_bits, logit_signed))
        Logits, one beat per image.
    pending : Out(range(window + 1))
        Images accepted and not yet answered.
    error : Out(1)
        One-cycle pulse whenever a frame is dropped.
    info : Info
        What the link reports to the host.
    latency : dict
        Per output: ``o_pixels`` 1 (from the handshake of an image frame's CRC byte to its
        first pixel, buffer otherwise empty); ``o_bytes`` 2 (from a logits handshake to its
        frame's start byte, sender idle).
    interval : int
        1: one pixel per cycle out, one frame byte per cycle out; the UART sets the real pace.
    """

    latency = {"o_pixels": FrameReceiver.latency, "o_bytes": FrameSender.latency}
    interval = 1

    def __init__(self, height: int, width: int, channels: int, *, classes: int, logit_bits: int,
                 logit_signed: bool = True, window: int = 2, timeout: int | None = None,
                 design_id: int = 0):
        check_int("design_id", design_id, 0, 2**32 - 1)
        self.receiver = FrameReceiver(height, width, channels, window=window, timeout=timeout)
        self.info = Info(height, width, channels, classes, logit_bits, bool(logit_signed), window,
                         design_id)
        self.sender = FrameSender(self.info)
        super().__init__({
            "i_bytes": In(stream.Signature(8)),
            "rx_error": In(1),
            "o_bytes": Out(stream.Signature(8)),
            "o_pixels": Out(vector_stream(channels, 8)),
            "i_logits": In(vector_stream(classes, logit_bits, bool(logit_signed))),
            "pending": Out(range(window + 1)),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = self.receiver
        m.submodules.replies = replies = PipelineFifo(ReplyLayout, REPLY_QUEUE)
        m.submodules.sender = sender = self.sender
        wiring.connect(m, wiring.flipped(self.i_bytes), receiver.i)
        wiring.connect(m, receiver.o, wiring.flipped(self.o_pixels))
        wiring.connect(m, receiver.o_reply, replies.i)
        wiring.connect(m, replies.o, sender.i_reply)
        wiring.connect(m, receiver.o_tag, sender.i_tag)
        wiring.connect(m, wiring.flipped(self.i_logits), sender.i_logits)
        wiring.connect(m, sender.o, wiring.flipped(self.o_bytes))
        m.d.comb += [receiver.rx_error.eq(self.rx_error), self.pending.eq(receiver.pending),
                     self.error.eq(receiver.error)]
        return m
