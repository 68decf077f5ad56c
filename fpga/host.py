"""The host side of the link: send images to a board, read its logits, check them.

`BoardClient` speaks the protocol of `imcflow.fpga.protocol` over anything with pyserial's
``read``/``write`` (a `serial.Serial` on the board's USB-serial port, or a pseudo-terminal
bridged to a simulation). It keeps at most ``window`` images unanswered (the board says how many
in its INFO frame), matches answers to images by tag, and sends an image again when the board
dropped it (an ERROR frame with its tag) or did not answer within ``timeout`` seconds, at most
``attempts`` times. `run_images` adds the golden model: bit-exact count, accuracy, throughput.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import serial

from imcflow.errors import UserError
from imcflow.fpga.protocol import OVERHEAD_BYTES, ErrorCode, FrameDecoder, FrameType, Info, encode
from imcflow.fpga.uart import CHARACTER_BITS
from imcflow.sw.inference import run as golden_run

__all__ = ["HostError", "BoardClient", "Answers", "BoardRun", "open_port", "check_count",
           "link_bound", "run_images"]


class HostError(RuntimeError):
    """The board did not answer as the protocol says."""


def link_bound(baud: float, image_bytes: int) -> float:
    """Images per second the line to the board carries at most: ``baud`` / 10 bits per
    character / (``image_bytes`` + 6) bytes per image frame (answers travel the other way)."""
    return baud / CHARACTER_BITS / (image_bytes + OVERHEAD_BYTES)


def open_port(port: str, baud: int, *, timeout: float = 0.02):
    """``port`` opened with pyserial at ``baud`` (8N1, no flow control).

    Raises
    ------
    UserError
        If the port cannot be opened.
    """
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, ValueError, OSError) as e:
        raise UserError(f"--port: cannot open {port!r}: {e}") from None


@dataclass
class Answers:
    """What came back for a batch of images."""

    logits: np.ndarray                                   # (N, classes)
    seconds: float                                       # first byte sent to last answer
    resent: int = 0                                      # images sent more than once
    errors: Counter = field(default_factory=Counter)     # ERROR frames by code name
    dropped_frames: int = 0                              # board frames with a bad checksum


class BoardClient:
    """The protocol over a serial port.

    Parameters
    ----------
    port : serial.Serial-like
        ``write(bytes)`` and ``read(n)`` (returning what arrived within its timeout).
    timeout : float
        Seconds to wait for an answer before sending an image again (or for INFO).
    attempts : int
        Sends per image before giving up.
    log : callable
        Progress messages (one line each).
    """

    def __init__(self, port, *, timeout: float = 2.0, attempts: int = 3, log=lambda line: None):
        self.port, self.timeout, self.attempts, self.log = port, timeout, attempts, log
        self.decoder = FrameDecoder()
        self._tag = 0

    def _next_tag(self) -> int:
        self._tag = self._tag % 255 + 1
        return self._tag

    def _frames(self):
        data = self.port.read(max(1, getattr(self.port, "in_waiting", 0) or 1))
        return self.decoder.feed(data) if data else []

    def info(self) -> Info:
        """Ask the board what it runs."""
        for _ in range(self.attempts):
            tag = self._next_tag()
            self.port.write(encode(FrameType.INFO_REQUEST, tag))
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                for frame in self._frames():
                    if frame.type == FrameType.INFO and frame.tag == tag:
                        return Info.unpack(frame.payload)
        raise HostError(f"no INFO answer within {self.timeout:g} s, {self.attempts} times: is the "
                        f"board programmed and the baud rate right?")

    def classify(self, images: np.ndarray, info: Info, *, progress=None) -> Answers:
        """Logits of ``images`` (N, H, W, C uint8) from the board, in image order."""
        count = len(images)
        logits = np.zeros((count, info.classes), dtype=np.int64)
        frames = [np.asarray(image, dtype=np.uint8).tobytes() for image in images]
        done = np.zeros(count, dtype=bool)
        sends = np.zeros(count, dtype=np.int64)
        in_flight: dict[int, tuple[int, float]] = {}     # tag -> (image, deadline)
        queue = list(range(count))                       # images to send, in order
        answers = Answers(logits, 0.0)
        start = time.monotonic()

        def send(index):
            if sends[index] >= self.attempts:
                raise HostError(f"image {index}: no answer after {self.attempts} sends "
                                f"(last error: {answers.errors.most_common(1) or 'none'})")
            tag = self._next_tag()
            sends[index] += 1
            answers.resent += sends[index] == 2
            self.port.write(encode(FrameType.IMAGE, tag, frames[index]))
            in_flight[tag] = (index, time.monotonic() + self.timeout)

        while not done.all():
            while queue and len(in_flight) < info.window:
                send(queue.pop(0))
            for frame in self._frames():
                if frame.tag not in in_flight:
                    continue                          # a late answer to an image sent again
                index, _ = in_flight.pop(frame.tag)
                if frame.type == FrameType.LOGITS:
                    logits[index] = info.logits(frame.payload)
                    done[index] = True
                    if progress:
                        progress(int(done.sum()), count)
                elif frame.type == FrameType.ERROR:
                    code = frame.payload[0] if frame.payload else 0
                    name = ErrorCode(code).name if code in ErrorCode._value2member_map_ else str(code)
                    answers.errors[name] += 1
                    self.log(f"board dropped image {index} ({name}); sending it again")
                    queue.insert(0, index)
            now = time.monotonic()
            expired = sorted(index for tag, (index, deadline) in in_flight.items() if now > deadline)
            for tag in [t for t, (_, deadline) in in_flight.items() if now > deadline]:
                del in_flight[tag]
            for index in expired:
                self.log(f"no answer for image {index} within {self.timeout:g} s; sending it again")
            queue[:0] = expired                       # first, in image order
        answers.seconds = time.monotonic() - start
        answers.dropped_frames = self.decoder.dropped
        return answers


def check_count(design, count) -> None:
    """`UserError` unless ``design`` has labelled images and ``count`` is in 1..their number."""
    if design.labels is None:
        raise UserError(f"{design.field}: {design.network} has no labelled held-out images; "
                        f"generate it with --dataset (a labelled data set)")
    available = len(design.images)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= available:
        raise UserError(f"--images: must be an integer in 1..{available}, not {count!r}")


@dataclass(frozen=True)
class BoardRun:
    """What `run_images` found: the ``images`` sent, how many were ``bit_exact`` (logits equal
    to the golden model's), up to 5 ``mismatches`` (image, board and golden logits), the
    board's and the golden model's ``accuracy`` against the labels, the rate, the images sent
    again and the error codes and dropped frames behind them, and the board's ``info``.
    `to_json` is what ``imcflow fpga run --json`` prints of it."""

    network: str
    images: int
    bit_exact: int
    mismatches: list[dict]
    accuracy: float
    golden_accuracy: float
    images_per_s: float | None
    seconds: float
    resent: int
    errors: dict[str, int]
    dropped_frames: int
    info: dict

    def to_json(self) -> dict:
        return asdict(self)


def run_images(client: BoardClient, design, count: int, *, progress=None) -> BoardRun:
    """Send the first ``count`` held-out images of ``design`` and check the answers.

    Raises
    ------
    UserError
        If ``count`` is out of range or the board runs another design than ``design``.
    HostError
        If the board does not answer.
    """
    check_count(design, count)
    info = client.info()
    expected = (design.height, design.width, design.channels, design.classes, design.design_id)
    actual = (info.height, info.width, info.channels, info.classes, info.design_id)
    if actual != expected:
        raise UserError(f"{design.field}: the board runs a {info.height}x{info.width}x{info.channels} -> "
                        f"{info.classes} design with id 0x{info.design_id:08x}, not {design.network} "
                        f"({design.height}x{design.width}x{design.channels} -> {design.classes}, id "
                        f"0x{design.design_id:08x}); pass the directory (or --network, --arch and "
                        f"--dataset) the bitstream was built from")
    images, labels = design.images[:count], design.labels[:count]
    golden = golden_run(design.qnet, images)
    answers = client.classify(images.astype(np.uint8), info, progress=progress)
    exact = (answers.logits == golden).all(axis=1)
    mismatches = [{"image": int(i), "board": answers.logits[i].tolist(), "golden": golden[i].tolist()}
                  for i in np.flatnonzero(~exact)[:5]]
    return BoardRun(
        network=design.network, images=count, bit_exact=int(exact.sum()), mismatches=mismatches,
        accuracy=float((answers.logits.argmax(axis=1) == labels).mean()),
        golden_accuracy=float((golden.argmax(axis=1) == labels).mean()),
        images_per_s=count / answers.seconds if answers.seconds > 0 else None,
        seconds=round(answers.seconds, 3), resent=int(answers.resent),
        errors=dict(answers.errors), dropped_frames=answers.dropped_frames,
        info={"height": info.height, "width": info.width, "channels": info.channels,
              "classes": info.classes, "logit_bits": info.logit_bits, "window": info.window,
              "design_id": f"0x{info.design_id:08x}"})
