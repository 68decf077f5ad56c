"""FPGA prototyping: board tops, host link and the yowasp synthesis flow (docs/fpga.md).

Public API (``from imcflow.fpga import load_design, board_top, build_board``): the design a board
runs (`Design`, `load_design`, `prepare_design`, `board_top`), boards (`BOARDS`, `board`), the
build (`build_board`, its `BuildReport`, `FlowError`), the tops (`BoardTop`,
`SerialAccelerator`), the link (`HostLink`, `UartTx`, `UartRx`) and the host (`BoardClient`,
`run_images`, its `BoardRun`).
"""

from imcflow import lazy_api

#: public name -> the module that defines it
_API = {
    "Design": "imcflow.fpga.design",
    "load_design": "imcflow.fpga.design",
    "prepare_design": "imcflow.fpga.design",
    "board_top": "imcflow.fpga.design",
    "BoardPlan": "imcflow.fpga.design",
    "BOARDS": "imcflow.fpga.boards",
    "board": "imcflow.fpga.boards",
    "build_board": "imcflow.fpga.build",
    "BuildReport": "imcflow.fpga.build",
    "FlowError": "imcflow.fpga.build",
    "BoardTop": "imcflow.fpga.top",
    "SerialAccelerator": "imcflow.fpga.top",
    "HostLink": "imcflow.fpga.link",
    "UartTx": "imcflow.fpga.uart",
    "UartRx": "imcflow.fpga.uart",
    "BoardClient": "imcflow.fpga.host",
    "run_images": "imcflow.fpga.host",
    "BoardRun": "imcflow.fpga.host",
}
__all__ = sorted(_API)

__getattr__, __dir__ = lazy_api(__name__, _API)
