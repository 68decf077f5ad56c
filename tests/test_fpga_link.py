# amaranth: UnusedElaboratable=no
"""HostLink in the Amaranth simulator, at the byte level (no UART).

The test plays the host (frames in, at most ``window`` images unanswered, random idle between
bytes; frames out read with random backpressure) and the accelerator (pixels read with random
backpressure, one logits beat per image after random idle, computed by `fake_logits`). Images
released, replies and answers are compared with `ReceiverModel` and with the images sent: no
image is lost, duplicated, reordered or half-released, whatever the mix of good, corrupted and
malformed frames."""

import random

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.lib.crc.catalog import CRC8_SMBUS
from amaranth.sim import Simulator

from imcflow.errors import UserError
from imcflow.fpga.link import FrameReceiver, FrameSender, HostLink, window_for
from imcflow.fpga.protocol import (START, ErrorCode, Frame, FrameDecoder, FrameType, Info,
                                   ReceiverModel, crc8, encode)
from imcflow.hw.streams import VectorLayout
from imcflow.verif.patterns import pauses

GEOMETRY = dict(height=3, width=2, channels=2)     # 12-byte images, two channels per pixel
CLASSES = 3


def fake_logits(pixels: bytes, bits: int, signed: bool = True) -> list[int]:
    """What the test plays as the accelerator answers for an image: ``bits``-bit values."""
    lo, span = -(1 << (bits - 1)) if signed else 0, 1 << bits
    return [(sum(pixels) * (c + 3) + c) % span + lo for c in range(CLASSES)]


class Harness:
    """Runs a HostLink with a host that keeps at most ``window`` images unanswered."""

    def __init__(self, *, logit_bits=8, logit_signed=True, window=2, timeout=None, seed=0,
                 idle=0.3, backpressure=0.5):
        self.dut = HostLink(**GEOMETRY, classes=CLASSES, logit_bits=logit_bits,
                            logit_signed=logit_signed, window=window, timeout=timeout,
                            design_id=0x1234ABCD)
        self.bits, self.signed, self.window, self.seed = logit_bits, logit_signed, window, seed
        self.idle, self.backpressure = idle, backpressure
        self.layout = VectorLayout(GEOMETRY["channels"], 8)
        self.decoder = FrameDecoder()
        self.frames: list[Frame] = []          # everything the board sent, in order
        self.pixels: list = []                 # every pixel beat released, in order
        self.pixel_cycles: list[int] = []
        self.answers = 0
        self.cycle = 0
        self.hold_logits = False               # the accelerator answers nothing while set
        self.rx_error_at: set[int] = set()

    @property
    def logits_frames(self):
        return [f for f in self.frames if f.type == FrameType.LOGITS]

    @property
    def replies(self):
        return [f for f in self.frames if f.type != FrameType.LOGITS]

    def images_released(self) -> list[bytes]:
        images, current = [], []
        for values, last in self.pixels:
            current += values
            if last:
                images.append(bytes(current))
                current = []
        assert not current, "a partial image was released"
        return images

    async def host(self, ctx, script):
        """``script``: list of ('frame', bytes, counts_as_image) | ('gap', cycles) | ('rx_error',)."""
        pattern = pauses(self.idle or None, random.Random(self.seed + 1))
        sent_images = 0
        for step in script:
            if step[0] == "gap":
                await ctx.tick().repeat(step[1])
                continue
            if step[0] == "rx_error":
                ctx.set(self.dut.rx_error, 1)
                await ctx.tick()
                ctx.set(self.dut.rx_error, 0)
                continue
            _, data, is_image = step
            if is_image:   # flow control: wait until fewer than `window` images are unanswered
                for _ in range(20_000):
                    if sent_images - len(self.logits_frames) < self.window:
                        break
                    await ctx.tick()
                else:
                    raise AssertionError("no answer within 20000 cycles")
                sent_images += 1
            for byte in data:
                while next(pattern):
                    await ctx.tick()
                ctx.set(self.dut.i_bytes.valid, 1)
                ctx.set(self.dut.i_bytes.payload, byte)
                await ctx.tick().until(self.dut.i_bytes.ready)
                ctx.set(self.dut.i_bytes.valid, 0)

    async def frames_out(self, ctx):
        pattern = pauses(self.backpressure or None, random.Random(self.seed + 2))
        while True:
            ctx.set(self.dut.o_bytes.ready, not next(pattern))
            _, _, valid, ready, byte = await ctx.tick().sample(
                self.dut.o_bytes.valid, self.dut.o_bytes.ready, self.dut.o_bytes.payload)
            if valid and ready:
                self.frames += self.decoder.feed(bytes([byte]))

    async def accelerator(self, ctx):
        """Reads pixels with backpressure; after each image's last pixel, answers it."""
        read = pauses(self.backpressure or None, random.Random(self.seed + 3))
        idle = random.Random(self.seed + 4)
        current = []
        while True:
            ctx.set(self.dut.o_pixels.ready, not next(read))
            _, _, valid, ready, payload = await ctx.tick().sample(
                self.dut.o_pixels.valid, self.dut.o_pixels.ready,
                Value.cast(self.dut.o_pixels.payload))
            self.cycle += 1
            if not (valid and ready):
                continue
            values, last = self.layout.unpack(payload)
            self.pixels.append((values, last))
            self.pixel_cycles.append(self.cycle)
            current += values
            if not last:
                continue
            ctx.set(self.dut.o_pixels.ready, 0)
            while self.hold_logits or idle.random() < (self.idle or 0):
                await ctx.tick()
            logits = fake_logits(bytes(current), self.bits, self.signed)
            current = []
            ctx.set(self.dut.i_logits.valid, 1)
            ctx.set(self.dut.i_logits.payload, {"data": logits, "last": 1})
            await ctx.tick().until(self.dut.i_logits.ready)
            ctx.set(self.dut.i_logits.valid, 0)

    def run(self, script, *, extra=None, settle=400):
        sim = Simulator(self.dut)
        sim.add_clock(1e-6)

        async def main(ctx):
            await self.host(ctx, script)
            await ctx.tick().repeat(settle)

        sim.add_testbench(main)
        sim.add_testbench(self.frames_out, background=True)
        sim.add_testbench(self.accelerator, background=True)
        if extra is not None:
            sim.add_testbench(extra, background=True)
        sim.run()

    def model(self, script) -> ReceiverModel:
        """The model's view of the same script (answers are immediate at the window bound, as
        the host waits for them)."""
        model = ReceiverModel(self.dut.info)
        timeout = self.dut.receiver.timeout
        for step in script:
            if step[0] == "gap":
                if timeout is not None and step[1] >= timeout:
                    model.timeout()
            elif step[0] == "rx_error":
                model.uart_error()
            else:
                if step[2] and model.unanswered >= self.window:
                    model.answered(model.unanswered)
                model.feed(step[1])
        return model


def image_frame(tag, rng, *, size=12, type_=FrameType.IMAGE, clean=False):
    """Random pixels and their frame. ``clean``: no start byte after the first byte, for frames
    the receiver drops at the header and then hunts through (a start byte there would begin a
    frame, as the protocol says, which is not what these tests are about)."""
    while True:
        pixels = bytes(rng.randrange(256) for _ in range(size))
        frame = encode(type_, tag, pixels)
        if not clean or START not in frame[1:]:
            return pixels, frame


def corrupt(frame: bytes, index: int, rng) -> bytes:
    out = bytearray(frame)
    out[index] ^= rng.randrange(1, 256)
    return bytes(out)


def random_script(rng, count):
    """Good images, INFO requests, bad checksums, bad types, bad lengths and garbage."""
    script, tag = [], 0
    for _ in range(count):
        kind = rng.choices(["image", "info", "crc", "payload", "type", "length", "garbage"],
                           [10, 1, 2, 2, 1, 1, 1])[0]
        tag = tag % 255 + 1
        pixels, frame = image_frame(tag, rng)
        if kind == "image":
            script.append(("frame", frame, True))
        elif kind == "info":
            script.append(("frame", encode(FrameType.INFO_REQUEST, tag), False))
        elif kind == "crc":
            script.append(("frame", corrupt(frame, len(frame) - 1, rng), False))
        elif kind == "payload":
            script.append(("frame", corrupt(frame, 5 + rng.randrange(12), rng), False))
        elif kind == "type":
            type_ = rng.choice([0x00, 0x03, 0x81, 0xFF])
            script.append(("frame", image_frame(tag, rng, type_=type_, clean=True)[1], False))
        elif kind == "length":
            script.append(("frame", image_frame(tag, rng, size=11, clean=True)[1], False))
        else:   # bytes between frames, without a start byte
            script.append(("frame", bytes(rng.choice([0x00, 0x5A, 0xFF]) for _ in range(5)), False))
    return script


# --- constructor checks --------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs, message", [
    ("Height", dict(height=0), "height: must be a positive integer, not 0"),
    ("Window", dict(window=256), "window: must be an integer in 1..255, not 256"),
    ("Timeout", dict(timeout=0), "timeout: must be a positive integer, not 0"),
    ("Image", dict(height=256, width=128), "An image must be at most 65535 bytes, not 65536"),
])
def test_receiver_constructor_checks(name, kwargs, message):
    args = {**GEOMETRY, **kwargs}
    error = ValueError if name == "Image" else UserError
    with pytest.raises(error, match=rf"^{message}$"):
        FrameReceiver(args.pop("height"), args.pop("width"), args.pop("channels"), **args)


def test_sender_and_link_constructor_checks():
    with pytest.raises(UserError, match=r"^info.logit_bits: must be an integer in 1..8, not 9$"):
        FrameSender(Info(3, 2, 2, CLASSES, 9, True, 2, 0))
    with pytest.raises(UserError, match=r"^info: must be a imcflow.fpga.protocol.Info, not 3$"):
        FrameSender(3)
    with pytest.raises(UserError, match=r"^design_id: must be an integer in 0..4294967295, not -1$"):
        HostLink(**GEOMETRY, classes=CLASSES, logit_bits=8, design_id=-1)


# --- the protocol helpers ----------------------------------------------------------------------

def test_crc8_is_amaranths_crc8_smbus(rng):
    # The host's crc8 and the board's CRC processors are one amaranth.lib.crc algorithm; the
    # catalogued check value pins it. (The frame tests run the hardware side against crc8.)
    assert crc8(b"123456789") == 0xF4
    data = rng.integers(0, 256, 300).astype(np.uint8).tobytes()
    assert crc8(data) == CRC8_SMBUS().compute(data)
    assert crc8(data + bytes([crc8(data)])) == 0          # a frame with its CRC leaves no residue


def test_decoder_resynchronises_after_corruption():
    a, b = encode(FrameType.LOGITS, 7, b"\x01\x02\x03"), encode(FrameType.ERROR, 8, b"\x01")
    bad_length = bytes([START, FrameType.LOGITS, 9, 0xFF, 0xFF]) + b"junk"
    decoder = FrameDecoder(max_payload=16)
    frames = decoder.feed(b"\x00\x11" + a[:4]) + decoder.feed(a[4:] + corrupt(a, 6, random.Random(1))
                                                              + bad_length + b)
    assert frames == [Frame(FrameType.LOGITS, 7, b"\x01\x02\x03"), Frame(FrameType.ERROR, 8, b"\x01")]
    assert decoder.dropped == 2


def test_info_round_trip_and_logits():
    info = Info(8, 8, 1, 3, 8, True, 2, 0xDEADBEEF)
    assert Info.unpack(info.pack()) == info and len(info.pack()) == Info.SIZE == 16
    assert info.logits(b"\x00\x7f\x80") == [0, 127, -128]
    assert Info(8, 8, 1, 3, 8, False, 2, 0).logits(b"\x00\x7f\x80") == [0, 127, 128]


# --- the link ------------------------------------------------------------------------------

@pytest.mark.parametrize("logit_bits, logit_signed", [(8, True), (5, True), (7, False)])
def test_random_mix_of_good_and_bad_frames(seeds, logit_bits, logit_signed):
    # Good images are released whole and in order and answered with their tags and logits;
    # every bad frame is dropped and answered as the model says; nothing else is released.
    seed, = seeds(1)
    rng = random.Random(seed)
    h = Harness(logit_bits=logit_bits, logit_signed=logit_signed, seed=seed)
    script = random_script(rng, 40)
    h.run(script)
    model = h.model(script)
    assert h.images_released() == [pixels for _, pixels in model.images]
    assert [f.tag for f in h.logits_frames] == [tag for tag, _ in model.images]
    assert [h.dut.info.logits(f.payload) for f in h.logits_frames] == [
        fake_logits(pixels, logit_bits, logit_signed) for _, pixels in model.images]
    assert h.replies == model.replies
    assert any(f.type == FrameType.ERROR for f in h.replies), "the mix should contain errors"
    assert h.decoder.dropped == 0 and h.decoder.skipped == 0


def test_info_reply():
    h = Harness(idle=0, backpressure=0)
    h.run([("frame", encode(FrameType.INFO_REQUEST, 42), False)])
    assert h.replies == [Frame(FrameType.INFO, 42, h.dut.info.pack())]
    assert Info.unpack(h.replies[0].payload).design_id == 0x1234ABCD


def test_busy_when_window_images_are_unanswered(seeds):
    # The accelerator holds its answers: with window 2, a third image is read to its end and
    # answered BUSY (a corrupted one CHECKSUM); once answers flow, images are accepted again.
    seed, = seeds(1)
    rng = random.Random(seed)
    h = Harness(seed=seed, window=2)
    frames = [image_frame(t, rng) for t in range(1, 6)]
    h.hold_logits = True

    async def release(ctx):
        await ctx.tick().repeat(1500)
        h.hold_logits = False

    script = [("frame", frames[0][1], True), ("frame", frames[1][1], True),
              ("frame", frames[2][1], False), ("frame", corrupt(frames[3][1], 8, rng), False),
              ("gap", 1600), ("frame", frames[4][1], True)]
    h.run(script, extra=release)
    assert h.replies == [Frame(FrameType.ERROR, 3, bytes([ErrorCode.BUSY])),
                         Frame(FrameType.ERROR, 4, bytes([ErrorCode.CHECKSUM]))]
    assert [f.tag for f in h.logits_frames] == [1, 2, 5]
    assert h.images_released() == [frames[0][0], frames[1][0], frames[4][0]]


def test_timeout_and_uart_error_drop_the_frame_in_progress(seeds):
    seed, = seeds(1)
    rng = random.Random(seed)
    h = Harness(seed=seed, timeout=50, idle=0)
    frames = [image_frame(t, rng, clean=True) for t in range(1, 5)]
    script = [("frame", frames[0][1][:9], False), ("gap", 60),       # truncated: timeout
              ("frame", frames[1][1], True),
              ("frame", frames[2][1][:3], False), ("rx_error",),      # tag received: UART, tag 3
              ("frame", frames[2][1][3:], False),                     # the rest is skipped
              ("rx_error",), ("gap", 60),                             # outside a frame: ignored
              ("frame", frames[3][1], True)]
    h.run(script)
    assert h.replies == [Frame(FrameType.ERROR, 1, bytes([ErrorCode.TIMEOUT])),
                         Frame(FrameType.ERROR, 3, bytes([ErrorCode.UART]))]
    assert h.replies == h.model(script).replies
    assert h.images_released() == [frames[1][0], frames[3][0]]


def test_latency_of_pixels_and_of_answers():
    # No idle, no backpressure: the first pixel is valid the cycle after the CRC byte's
    # handshake; the LOGITS start byte two cycles after the logits handshake.
    dut = HostLink(**GEOMETRY, classes=CLASSES, logit_bits=8)
    frame = encode(FrameType.IMAGE, 9, bytes(range(12)))
    seen = {}

    async def bench(ctx):
        ctx.set(dut.o_bytes.ready, 1)
        for i, byte in enumerate(frame):
            ctx.set(dut.i_bytes.valid, 1)
            ctx.set(dut.i_bytes.payload, byte)
            await ctx.tick()
        crc_cycle = len(frame) - 1
        ctx.set(dut.i_bytes.valid, 0)
        for cycle in range(crc_cycle + 1, crc_cycle + 10):
            _, _, valid = await ctx.tick().sample(dut.o_pixels.valid)
            if valid:
                seen["pixel"] = cycle - crc_cycle
                break
        ctx.set(dut.i_logits.valid, 1)
        ctx.set(dut.i_logits.payload, {"data": [1, -2, 3], "last": 1})
        await ctx.tick()
        ctx.set(dut.i_logits.valid, 0)
        for k in range(1, 10):
            _, _, valid, payload = await ctx.tick().sample(dut.o_bytes.valid, dut.o_bytes.payload)
            if valid:
                seen["answer"] = (k, payload)
                break

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["pixel"] == dut.latency["o_pixels"]
    assert seen["answer"] == (dut.latency["o_bytes"], START)


# --- the window ----------------------------------------------------------------------------

@pytest.mark.parametrize("image_bytes, classes, divisor, latency, turnaround", [
    (64, 10, 33, 1428, 400_000),      # digits at 3 Mbaud from 100 MHz, 4 ms host turnaround
    (64, 10, 4, 1428, 48_000),        # the same from the iCEBreaker's 12 MHz
    (3072, 10, 33, 30_000, 400_000),  # 32x32x3 images: 1 ms frames, a window of a few
    (1, 1, 4, 0, 0),                  # the smallest: the answer alone needs a second image
])
def test_window_keeps_the_line_busy(image_bytes, classes, divisor, latency, turnaround):
    window = window_for(image_bytes, classes, divisor=divisor, latency=latency,
                        turnaround=turnaround)
    frame = (image_bytes + 6) * 10 * divisor                 # an image frame on the line
    round_trip = latency + (classes + 6) * 10 * divisor + turnaround
    # The window - 1 frames after an image cover its round trip, and one fewer would not.
    assert (window - 1) * frame >= round_trip > (window - 2) * frame
    assert window_for(64, 10, divisor=4, latency=0, turnaround=10**9) == 255    # 8-bit tags
