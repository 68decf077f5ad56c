"""The board top without its PLL (SerialAccelerator: UART, host link and the digits accelerator
of `imcflow.gen.accelerator`) under Verilator: frames over the UART pins against the protocol
and golden models, and ``imcflow fpga run`` through a pseudo-terminal bridged to the simulated
pins, bit-exact on held-out digits images."""

import sys
from pathlib import Path

import numpy as np
import pytest

from imcflow.fpga.design import accelerator_for, load_design
from imcflow.fpga.top import SerialAccelerator
from imcflow.sw.inference import run as golden_run
from imcflow.verif import runner
from imcflow.verif.sim import BUILD_FLAGS

TB = Path(__file__).parent / "cocotb" / "fpga_board_tb.py"
DIVISOR = 4            # cycles per bit: a 70-byte image frame takes 2800 cycles
TIMEOUT = 4000         # the board drops a frame after this many silent cycles
IMAGES = 8             # held-out images through the pty


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    design = load_design("digits")
    system = SerialAccelerator(accelerator_for(design), height=design.height, width=design.width,
                               divisor=DIVISOR, timeout=TIMEOUT, design_id=design.design_id)
    info = system.link.info
    build = runner.build(system, name=f"serial_digits_d{DIVISOR}",
                         parameters={"divisor": DIVISOR, "timeout": TIMEOUT,
                                     "info": {k: getattr(info, k) for k in (
                                         "height", "width", "channels", "classes", "logit_bits",
                                         "logit_signed", "window", "design_id")}},
                         flags=BUILD_FLAGS)
    images = design.dataset.test_images[:24]
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


def test_host_through_pty_is_bit_exact(board):
    build, design, _ = board
    command = [sys.executable, "-m", "imcflow", "fpga", "run", "--images", str(IMAGES),
               "--network", "digits", "--timeout", "30", "--json"]
    result = runner.run(build, TB, testcase="host_through_pty",
                        parameters={"command": command, "deadline_s": 600})
    host = result["host"]
    print(host, result["host_stderr"])
    assert host["images"] == IMAGES and host["bit_exact"] == IMAGES and not host["mismatches"]
    assert host["info"]["design_id"] == f"0x{design.design_id:08x}"
    labels = design.dataset.test_labels[:IMAGES]
    assert host["accuracy"] == host["golden_accuracy"] == float(
        (golden_run(design.qnet, design.dataset.test_images[:IMAGES]).argmax(1) == labels).mean())
