"""imcflow: RTL generator and verification suite for layer-pipelined in-memory-computing CNN accelerators.

Subpackages
-----------
sw      network IR, quantization, bit-exact golden model, mapper and performance model
hw      Amaranth components of the digital periphery of an IMC core
gen     turns a mapped network into Verilog, a manifest and weight images
verif   Verilator/cocotb runner, stream drivers, scoreboards, formal harness
fpga    board tops, host link, synthesis runs
"""

__version__ = "0.1.0"
