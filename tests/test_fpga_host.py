"""The host side (`imcflow.fpga.host`) against a board played in Python: the board's receiver
is `ReceiverModel`, its logits the golden model's. Checks flow control (never more than
``window`` unanswered images), resending after an ERROR frame, after a lost answer and after a
corrupted one, the design check, and the CLI's errors before any port is opened."""

import json

import numpy as np
import pytest

from imcflow.cli import main
from imcflow.errors import UserError
from imcflow.fpga import host
from imcflow.fpga.design import prepare_design
from imcflow.fpga.host import BoardClient, HostError, run_images
from imcflow.fpga.protocol import ErrorCode, FrameType, Info, ReceiverModel, design_id, encode
from imcflow.sw.inference import run as golden_run
from imcflow.sw.networks import load_qnetwork
from imcflow.sw.zoo import dataset


@pytest.fixture(scope="module")
def design():
    return prepare_design("digits")


class FakeBoard:
    """A serial port whose far end behaves as a board running ``design``.

    ``faults`` maps the number of an image frame (counting every IMAGE frame received, from 0)
    to what goes wrong with it: ``"busy"`` (answered ERROR BUSY), ``"lost"`` (never answered),
    ``"corrupt"`` (answered with a bad checksum). A ``slow`` board answers an image only when the
    host reads, one answer per read (an accelerator slower than the host).
    """

    def __init__(self, design, *, window=2, faults=None, design_id=None, slow=False):
        self.design = design
        self.info = Info(design.height, design.width, design.channels, design.classes, 8, True,
                         window, design.design_id if design_id is None else design_id)
        self.model = ReceiverModel(self.info)
        self.faults = dict(faults or {})
        self.out = bytearray()
        self.frames_seen = 0
        self.max_unanswered = 0
        self.slow, self.answers = slow, []

    def write(self, data):
        before_images, before_replies = len(self.model.images), len(self.model.replies)
        self.model.feed(data)
        for reply in self.model.replies[before_replies:]:
            self.out += reply.encode()
        if data[1] == FrameType.IMAGE:
            fault = self.faults.pop(self.frames_seen, None)
            self.frames_seen += 1
            if len(self.model.images) > before_images:
                self.max_unanswered = max(self.max_unanswered, self.model.unanswered)
                tag, pixels = self.model.images[-1]
                image = np.frombuffer(pixels, np.uint8).reshape(
                    1, self.design.height, self.design.width, self.design.channels)
                logits = golden_run(self.design.qnet, image)[0]
                frame = encode(FrameType.LOGITS, tag, bytes(int(v) & 0xFF for v in logits))
                if fault == "busy":
                    self.model.images.pop()
                    frame = encode(FrameType.ERROR, tag, bytes([ErrorCode.BUSY]))
                elif fault == "lost":
                    frame = b""
                elif fault == "corrupt":
                    frame = frame[:-1] + bytes([frame[-1] ^ 1])
                if self.slow:
                    self.answers.append(frame)
                else:
                    self.model.answered()
                    self.out += frame
        return len(data)

    def read(self, size=1):
        if self.answers and not self.out:
            self.out += self.answers.pop(0)
            self.model.answered()
        data, self.out = bytes(self.out[:size]), self.out[size:]
        return data

    @property
    def in_waiting(self):
        return len(self.out)

    def close(self):
        pass


def test_all_images_bit_exact_with_flow_control(design):
    board = FakeBoard(design, window=2)
    result = run_images(BoardClient(board, timeout=0.2), design, 12)
    assert result.bit_exact == 12 and result.resent == 0 and not result.errors
    assert result.accuracy == result.golden_accuracy
    assert board.max_unanswered <= 2
    assert result.info["design_id"] == f"0x{design.design_id:08x}"


@pytest.mark.parametrize("fault", ["busy", "lost", "corrupt"])
def test_an_image_the_board_dropped_is_sent_again(design, fault):
    board = FakeBoard(design, faults={3: fault})
    result = run_images(BoardClient(board, timeout=0.2), design, 8)
    assert result.bit_exact == 8 and result.resent == 1
    assert result.errors == ({"BUSY": 1} if fault == "busy" else {})
    assert result.dropped_frames == (fault == "corrupt")


def test_a_board_that_never_answers_is_an_error(design):
    board = FakeBoard(design, faults={k: "lost" for k in range(10)})
    with pytest.raises(HostError, match=r"^image 0: no answer after 3 sends"):
        run_images(BoardClient(board, timeout=0.05), design, 4)

    class Silent:
        def write(self, data):
            return len(data)

        def read(self, size=1):
            return b""

    with pytest.raises(HostError, match=r"^no INFO answer within 0.05 s, 3 times"):
        BoardClient(Silent(), timeout=0.05).info()


def test_a_board_running_another_design_is_refused(design):
    board = FakeBoard(design, design_id=design.design_id ^ 1)
    with pytest.raises(UserError, match=r"^--network: the board runs a 8x8x1 -> 10 design with id"):
        run_images(BoardClient(board, timeout=0.2), design, 2)


@pytest.mark.parametrize("window", [1, 5])
def test_the_host_fills_the_window_and_never_more(design, window):
    board = FakeBoard(design, window=window, slow=True)
    result = run_images(BoardClient(board, timeout=5), design, 12)
    assert result.bit_exact == 12 and result.resent == 0 and not result.errors
    assert board.max_unanswered == window


def test_run_command_reports_the_rate_and_the_links_bound(design, capsys, monkeypatch):
    board = FakeBoard(design, window=4)
    monkeypatch.setattr(host, "open_port", lambda port, baud: board)
    assert main(["fpga", "run", "--network", "digits", "--port", "fake", "--images", "6",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["baud"], result["bit_exact"], result["info"]["window"]) == (3_000_000, 6, 4)
    # 3,000,000 baud / 10 bits per character / (64 pixels + 6) bytes per frame
    assert result["link_bound_images_per_s"] == 4285.7 and result["images_per_s"] > 0
    assert host.link_bound(115200, 64) == pytest.approx(164.57, abs=0.01)


@pytest.mark.parametrize("argv, message", [
    (["--images", "0"], "--images: must be an integer in 1..360, not 0"),
    (["--images", "361"], "--images: must be an integer in 1..360, not 361"),
    (["--images", "2", "--network", "resnet8"],
     "--network: resnet8 has no labelled held-out images; generate it with --dataset"),
    (["--images", "2", "--dataset", "resnet8"], "--dataset: must be a zoo data set (digits"),
    (["--images", "2", "--baud", "0"], "--baud: must be a positive integer, not 0"),
    (["--images", "2", "--port", "/nonexistent/tty"], "--port: cannot open '/nonexistent/tty'"),
    (["--images", "2", "some/dir"], "DIR: give the directory `imcflow gen --target fpga` wrote, "
                                    "or --network (not both)"),
    (["--images", "2", "--network", "-"], "DIR: give the directory `imcflow gen --target fpga` "
                                          "wrote, or --network (not both)"),
    (["--images", "2", "--network", "-", "no/dir"], "directory: 'no/dir' is not an accelerator "
                                                    "written by `imcflow gen --network`"),
])
def test_run_command_errors(capsys, argv, message):
    # --network digits unless the case names another network ("-": none)
    argv = argv if "--network" in argv else ["--network", "digits", *argv]
    if "-" in argv:
        del argv[argv.index("-") - 1:argv.index("-") + 1]
    argv = ["fpga", "run", "--port", "/nonexistent/tty", *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"imcflow fpga: error: {message}") and len(err.splitlines()) == 1


def test_design_id_follows_the_arithmetic_not_the_layout(design):
    net, calib = design.qnet.network, dataset("digits").train_images[:64]
    same = {load_qnetwork(net, design.qnet.arch.replace(**change), calib) for change in (
        {}, {"col_parallelism": 1}, {"mvm_cycles": 32, "clock_mhz": 50.0}, {"buffer": "frame"})}
    assert {design_id(q) for q in same} == {design.design_id}
    for change in ({"adc_bits": 6}, {"weight_bits": 3}, {"weight_noise": 0.05}):
        assert design_id(load_qnetwork(net, design.qnet.arch.replace(**change), calib)) != design.design_id
