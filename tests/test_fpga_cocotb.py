"""The board top without its PLL (SerialAccelerator: UART, host link and the digits accelerator
of `imcflow.gen.accelerator`) under Verilator, at 3,000,000 baud from a 100 MHz clock with the
window `BoardTop` derives: frames over the UART pins against the protocol and golden models, and
``imcflow fpga run`` through a pseudo-terminal bridged to the simulated pins, bit-exact on
held-out digits images with none dropped or sent twice. benchmarks/fpga_link_speed.py runs 100
images and prints their rate in simulated time against the link's bound."""

import sys
from pathlib import Path

import numpy as np
import pytest

from imcflow.fpga.design import prepare_design
from imcflow.fpga.link import HOST_TURNAROUND_S, window_for
from imcflow.fpga.top import BAUD, SerialAccelerator, accelerator_latency
from imcflow.fpga.uart import divisor_for
from imcflow.sw.inference import run as golden_run
from imcflow.verif import runner
from imcflow.verif.cocotb_engine import BUILD_FLAGS

TB = Path(__file__).parent / "cocotb" / "fpga_board_tb.py"
CLOCK_HZ = 100e6       # the bench's clock (fpga_board_tb.PERIOD_NS)
DIVISOR = divisor_for(CLOCK_HZ, BAUD)   # 33: 3,030,303 baud, 1.0 % above the host's 3,000,000
TIMEOUT = 4000         # the board drops a frame after this many silent cycles (12 characters)
IMAGES = 24            # held-out images through the pty: more than the window (19)


def serial_board(design):
    """The digits SerialAccelerator and its Verilator build, as `BoardTop` sizes its window."""
    accelerator = design.accelerator
    window = window_for(design.height * design.width * design.channels, design.classes,
                        divisor=DIVISOR, latency=accelerator_latency(accelerator),
                        turnaround=round(HOST_TURNAROUND_S * CLOCK_HZ))
    system = SerialAccelerator(accelerator, height=design.height, width=design.width,
                               divisor=DIVISOR, window=window, timeout=TIMEOUT,
                               design_id=design.design_id)
    info = system.link.info
    return runner.build(system, name=f"serial_digits_d{DIVISOR}_w{window}",
                         parameters={"divisor": DIVISOR, "timeout": TIMEOUT,
                                     "info": {k: getattr(info, k) for k in (
                                         "height", "width", "channels", "classes", "logit_bits",
                                         "logit_signed", "window", "design_id")}},
                         flags=BUILD_FLAGS)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    design = prepare_design("digits")
    build = serial_board(design)
    images = design.images[:24]
    golden = tmp_path_factory.mktemp("golden") / "golden.npz"
    np.savez(golden, images=images, logits=golden_run(design.qnet, images))
    return build, design, golden


def test_frames_over_uart(board, seeds):
    build, _, golden = board
    seed, = seeds(1)
    result = runner.run(build, TB, testcase="frames_over_uart",
                        parameters={"seed": seed, "golden": str(golden), "frames": 30})
    print(result)
    assert result["images"] >= 10
    assert {"CHECKSUM", "TIMEOUT", "UART", "TYPE", "LENGTH"} & set(result["errors"])


def host_through_pty(build, images: int, *, deadline_s: float = 600) -> dict:
    """``imcflow fpga run --images <images>`` against ``build`` through a pty (the bench's
    report: the host's JSON under ``host``, the link's speed in simulated time). The simulation
    runs a frame in about a second of wall time, so the host's resend timeout is the whole
    deadline: a window of frames takes tens of seconds to be answered."""
    command = [sys.executable, "-m", "imcflow", "fpga", "run", "--images", str(images),
               "--network", "digits", "--baud", str(BAUD), "--timeout", str(deadline_s), "--json"]
    return runner.run(build, TB, testcase="host_through_pty",
                      parameters={"command": command, "deadline_s": deadline_s})


def test_host_through_pty_is_bit_exact(board):
    build, design, _ = board
    result = host_through_pty(build, IMAGES)
    host = result["host"]
    print({k: v for k, v in result.items() if k != "host"}, host)
    assert host["images"] == IMAGES and host["bit_exact"] == IMAGES and not host["mismatches"]
    assert host["resent"] == 0 and not host["errors"] and host["dropped_frames"] == 0
    assert result["answered"] == IMAGES and host["info"]["window"] < IMAGES   # the window binds
    assert host["link_bound_images_per_s"] == round(BAUD / 10 / 70, 1)
    assert host["info"]["design_id"] == f"0x{design.design_id:08x}"
    labels = design.labels[:IMAGES]
    assert host["accuracy"] == host["golden_accuracy"] == float(
        (golden_run(design.qnet, design.images[:IMAGES]).argmax(1) == labels).mean())
