"""Verification backbone (see docs/verification.md).

pytest side: `runner` (cached Verilator builds, cocotb runs, lint), `bank` (many components in one
toplevel, one build) and `formal` (SymbiYosys proofs).
cocotb side: `bench` (clock, reset, per-cycle loop, parameters, report) and `streams` (driver and
monitor). Both: `scoreboard` (in-order checker) and `patterns` (idle/backpressure patterns).
Amaranth simulator: `amaranth_sim` (stream put/get/send/receive, `run_streams`: a block's whole
stream test against golden words).
"""
