"""Generators: a mapped network elaborated into one accelerator, written as the generated directory
(Verilog, manifest, golden model, weight images, report) that `imcflow sim` and `imcflow fpga`
read (docs/design.md, "The flow").

Public API (``from imcflow.gen import generate, load``): `prepare`, `generate`, `load` and the
`Generated` they return, `held_out` (the images of a generated directory), `TARGET_ARCH`; the
accelerator (`Accelerator`, `AxiStreamTop`, `ReplicatedLayer`); standalone blocks (`BLOCKS`,
`write_block`).
"""

from imcflow import lazy_api

#: public name -> the module that defines it
_API = {
    "Generated": "imcflow.gen.project",
    "prepare": "imcflow.gen.project",
    "generate": "imcflow.gen.project",
    "load": "imcflow.gen.project",
    "held_out": "imcflow.gen.project",
    "TARGET_ARCH": "imcflow.gen.project",
    "Accelerator": "imcflow.gen.accelerator",
    "AxiStreamTop": "imcflow.gen.accelerator",
    "ReplicatedLayer": "imcflow.gen.replication",
    "BLOCKS": "imcflow.gen.blocks",
    "write_block": "imcflow.gen.blocks",
}
__all__ = sorted(_API)

__getattr__, __dir__ = lazy_api(__name__, _API)
