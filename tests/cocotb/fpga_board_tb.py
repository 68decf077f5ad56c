"""cocotb tests of a SerialAccelerator (the board top without its PLL): UART pins in and out.

``frames_over_uart``: a seeded script of frames (good images, INFO requests, bad checksums,
unknown types, wrong lengths, garbage, a truncated frame, a character with a bad stop bit) is
sent character by character with random idle time between characters, keeping at most
``window`` images unanswered. The answers are decoded from the tx pin and checked: LOGITS equal
the golden model's logits of the accepted images, in order, with their tags; INFO and ERROR
replies equal `imcflow.fpga.protocol.ReceiverModel`'s.

``host_through_pty``: a pseudo-terminal's master is bridged to the rx/tx pins and
``imcflow fpga run --port <slave>`` runs in a subprocess, exactly as on a board; the test
reports its JSON answer and the link's speed in simulated time: images answered per second from
the first character after the INFO answer to the last answer's stop bit (``images_per_s``), and
the fraction of that time the host's line carried characters until its last image frame
(``rx_busy``). While it waits for the host, the bridge polls the pty for up to 1 ms of wall time
before letting one character time of the line idle, so a host that keeps its window full shows
no idle time.

Bit times are `Timer` waits (the clock is ``PERIOD_NS``): the simulator, not cocotb, runs the
cycles in between.

Parameters: ``divisor``, ``timeout`` (the board's, in cycles), ``seed``, ``golden`` (an .npz with
``images`` and ``logits``), ``frames``; for the pty test ``command`` (argv without ``--port``)
and ``deadline_s``.
"""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import time
import tty

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, Timer
from cocotb.utils import get_sim_time

from imcflow.fpga.protocol import (START, ErrorCode, Frame, FrameDecoder, FrameType, Info,
                                   ReceiverModel, encode)
from imcflow.fpga.uart import character_bits
from imcflow.verif.bench import parameters, report


#: clock period: 100 MHz, the fpga preset's target
PERIOD_NS = 10


async def cycles(count: int) -> None:
    await Timer(count * PERIOD_NS, unit="ns")


async def start(dut):
    dut.rx.value = 1
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


async def send_character(dut, byte: int, divisor: int, *, stop: int = 1) -> None:
    for level in character_bits(byte, stop=stop):
        dut.rx.value = level
        await Timer(divisor * PERIOD_NS, unit="ns")


class UartMonitor:
    """Decodes characters on the tx pin (sampled mid-bit) and feeds them to ``on_byte``."""

    def __init__(self, dut, divisor: int, on_byte):
        self.dut, self.divisor, self.on_byte = dut, divisor, on_byte
        cocotb.start_soon(self._run())

    async def _run(self):
        tx, bit = self.dut.tx, self.divisor * PERIOD_NS
        while True:
            await FallingEdge(tx)
            await Timer(self.divisor // 2 * PERIOD_NS, unit="ns")      # mid-bit, off the edges
            assert int(tx.value) == 0, "tx: a glitch, not a start bit"
            byte = 0
            for b in range(8):
                await Timer(bit, unit="ns")
                byte |= int(tx.value) << b
            await Timer(bit, unit="ns")
            assert int(tx.value) == 1, f"tx: character 0x{byte:02x} without its stop bit"
            self.on_byte(byte)


def random_script(rng: random.Random, images: np.ndarray, count: int):
    """Steps: ('frame', bytes, image index or None), ('gap', bit times), ('bad_stop', byte)."""
    steps, tag, next_image = [], 0, 0
    for _ in range(count):
        tag = tag % 255 + 1
        kind = rng.choices(["image", "info", "crc", "type", "length", "garbage", "truncated",
                            "bad_stop"], [10, 1, 2, 1, 1, 1, 1, 1])[0]
        pixels = images[next_image % len(images)].astype(np.uint8).tobytes()
        frame = encode(FrameType.IMAGE, tag, pixels)
        if kind == "image":
            steps.append(("frame", frame, next_image % len(images)))
            next_image += 1
        elif kind == "info":
            steps.append(("frame", encode(FrameType.INFO_REQUEST, tag), None))
        elif kind == "crc":
            steps.append(("frame", frame[:-1] + bytes([frame[-1] ^ 0x5A]), None))
        elif kind in ("type", "length"):
            # Dropped at the header; the rest is hunted through, so keep start bytes out of it.
            body = bytes(b if b != START else 0 for b in pixels[: 63 if kind == "length" else 64])
            bad = encode(0x42 if kind == "type" else FrameType.IMAGE, tag, body)
            steps.append(("frame", bad[:5] + bytes(b if b != START else 0 for b in bad[5:]), None))
        elif kind == "garbage":
            steps.append(("frame", bytes([0x00, 0x13, 0xFF]), None))
        elif kind == "truncated":
            steps += [("frame", frame[:20], None), ("gap", "timeout")]
        else:   # a character with a bad stop bit in the middle of a frame
            steps += [("frame", frame[:10], None), ("bad_stop", 0x00),
                      ("frame", bytes(b if b != START else 0 for b in frame[10:]), None)]
    return steps


@cocotb.test()
async def frames_over_uart(dut):
    p = parameters()
    divisor, timeout = p["divisor"], p["timeout"]
    golden = np.load(p["golden"])
    images, logits = golden["images"], golden["logits"]
    info = Info(*[p["info"][k] for k in ("height", "width", "channels", "classes", "logit_bits",
                                        "logit_signed", "window", "design_id")])
    rng = random.Random(p["seed"])
    script = random_script(rng, images, p["frames"])

    frames: list[Frame] = []
    decoder = FrameDecoder()
    await start(dut)
    UartMonitor(dut, divisor, lambda byte: frames.extend(decoder.feed(bytes([byte]))))

    model = ReceiverModel(info)
    sent_images: list[tuple[int, int]] = []          # (tag, image index) accepted by the model
    answered = lambda: sum(f.type == FrameType.LOGITS for f in frames)   # noqa: E731
    for step in script:
        if step[0] == "gap":
            await cycles(timeout + 10 * divisor)
            model.timeout()
            continue
        if step[0] == "bad_stop":
            await send_character(dut, step[1], divisor, stop=0)
            dut.rx.value = 1                      # the line back to 1 before the next start bit
            await cycles(2 * divisor)
            model.uart_error()
            continue
        _, data, image = step
        if image is not None:     # keep at most `window` images unanswered
            for _ in range(200):
                if len(sent_images) - answered() < info.window:
                    break
                await cycles(100 * divisor)
            else:
                raise AssertionError("no LOGITS answer within 200 character times x 10")
            model.answered(model.unanswered - (len(sent_images) - answered()))
        before = len(model.images)
        for byte in data:
            await send_character(dut, byte, divisor)
            if rng.random() < 0.3:
                await cycles(rng.randrange(1, 4 * divisor))
        model.feed(data)
        if len(model.images) > before:
            sent_images.append((model.images[-1][0], image))

    for _ in range(100):       # let the last answers leave
        await cycles(100 * divisor)
        if answered() == len(sent_images):
            break
    await cycles(50 * divisor)

    got = [f for f in frames if f.type == FrameType.LOGITS]
    assert [f.tag for f in got] == [tag for tag, _ in sent_images], \
        f"LOGITS tags {[f.tag for f in got]}, expected {[tag for tag, _ in sent_images]}"
    for f, (tag, image) in zip(got, sent_images):
        assert info.logits(f.payload) == logits[image].tolist(), \
            f"image {image} (tag {tag}): logits {info.logits(f.payload)}, golden {logits[image].tolist()}"
    replies = [f for f in frames if f.type != FrameType.LOGITS]
    assert replies == model.replies, f"replies {replies}, model {model.replies}"
    assert decoder.dropped == 0 and decoder.skipped == 0
    codes = [ErrorCode(f.payload[0]).name for f in replies if f.type == FrameType.ERROR]
    report(images=len(got), replies=len(replies), errors=codes,
           steps=len(script), cycles=int(get_sim_time("ns") // 10))


@cocotb.test()
async def host_through_pty(dut):
    p = parameters()
    divisor = p["divisor"]
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    name = os.ttyname(slave)
    await start(dut)
    answers = FrameDecoder()
    link = {"info": False, "start": None, "sent": 0, "last_sent": None, "answered": 0, "end": None}

    def to_host(byte):
        os.write(master, bytes([byte]))
        for frame in answers.feed(bytes([byte])):
            link["info"] |= frame.type == FrameType.INFO
            if frame.type == FrameType.LOGITS:
                link["answered"] += 1
                link["end"] = get_sim_time("ns")

    UartMonitor(dut, divisor, to_host)

    async def host_to_board():
        while True:
            ready, _, _ = select.select([master], [], [], 0.001)
            data = b""
            if ready:
                try:
                    data = os.read(master, 4096)
                except (BlockingIOError, OSError):
                    data = b""
            if not data:
                await Timer(10 * divisor * PERIOD_NS, unit="ns")
            for byte in data:
                if link["start"] is None and link["info"]:     # the first image frame's first byte
                    link["start"] = get_sim_time("ns")
                link["sent"] += link["start"] is not None
                await send_character(dut, byte, divisor)
                link["last_sent"] = get_sim_time("ns")

    cocotb.start_soon(host_to_board())
    host = subprocess.Popen([*p["command"], "--port", name], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + p["deadline_s"]
    try:
        while host.poll() is None:
            assert time.monotonic() < deadline, f"the host did not finish within {p['deadline_s']} s"
            await Timer(1000 * PERIOD_NS, unit="ns")
    finally:
        if host.poll() is None:
            host.kill()
        out, err = host.communicate()
        os.close(slave)
        os.close(master)
    assert host.returncode == 0, f"the host exited with {host.returncode}: {err.strip()[-2000:]}"
    result = json.loads(out)
    seconds = (link["end"] - link["start"]) * 1e-9
    busy = link["sent"] * 10 * divisor * PERIOD_NS / (link["last_sent"] - link["start"])
    report(host=result, host_stderr=err.strip().splitlines()[-5:], answered=link["answered"],
           sim_seconds=seconds, images_per_s=link["answered"] / seconds, rx_busy=busy,
           baud=1e9 / (divisor * PERIOD_NS))
