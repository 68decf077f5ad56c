"""imcflow: RTL generator and verification suite for layer-pipelined in-memory-computing CNN accelerators.

Subpackages
-----------
sw      network IR, quantization, bit-exact golden model, mapper and performance model
hw      Amaranth components of the digital periphery of an IMC core
gen     turns a mapped network into Verilog, a manifest and weight images
verif   Verilator/cocotb runner, stream drivers, scoreboards, formal harness
fpga    board tops, host link, synthesis runs
"""

import sys
from importlib import import_module

__version__ = "0.1.0"


def lazy_api(package: str, api: dict[str, str]):
    """``(__getattr__, __dir__)`` for a subpackage whose public names (``api``: name -> the module
    that defines it) are imported on first use (PEP 562), so importing one module of the package
    (a cocotb testbench's, `imcflow doctor`'s) does not import all of them."""

    def __getattr__(name):
        if name in api:
            value = getattr(import_module(api[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted({*vars(sys.modules[package]), *api})

    return __getattr__, __dir__
