"""Generators: a mapped network elaborated into one accelerator, written as the generated directory
(Verilog, manifest, golden model, weight images, report) that `imcflow sim` and `imcflow fpga`
read (docs/design.md, "The flow").

Public API (``from imcflow.gen import generate, load``): `prepare`, `generate`, `load` and the
`Generated` they return, `held_out` (the images of a generated directory), `TARGET_ARCH`; the
accelerator (`Accelerator`, `AxiStreamTop`, `ReplicatedLayer`); standalone blocks (`BLOCKS`,
`write_block`).
"""

from importlib import import_module

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


def __getattr__(name):
    # PEP 562: a public name is imported from its module on first use, so importing one module
    # of the package (a cocotb testbench's, `imcflow doctor`'s) does not import all of them
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_API})
