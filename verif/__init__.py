"""Verification backbone: Verilator/cocotb runner, stream drivers and monitors, scoreboards, formal."""
