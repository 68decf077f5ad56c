"""Verification backbone (see docs/verification.md).

pytest side: `runner` (cached Verilator builds, cocotb runs), `bank` (many components in one
toplevel, one build) and `formal` (SymbiYosys proofs). cocotb side: `bench` (clock, reset,
per-cycle loop, parameters, report) and `streams` (driver and monitor). Both: `scoreboard`
(in-order checker) and `patterns` (idle/backpressure patterns). Amaranth simulator:
`amaranth_sim` (stream put/get/send/receive, `run_streams`: a block's whole stream test against
golden words). Whole accelerators: `sim` (``imcflow sim``: `simulate`, `SimResult`) on the engines
`engine` (C++ harness) and `cocotb_engine`, compared by `compare`, deadlocks named by `diagnose`.

Public API (``from imcflow.verif import simulate, Scoreboard``): `simulate`, `SimResult`,
`Scoreboard`, `StreamDriver`, `StreamMonitor`, `Bench`, `run_streams`, `Bank`,
`AxiStreamChecker`, `BuildError`, `SimulationError`. (A name that is also a module's, such as
``diagnose``, is taken from its module: ``from imcflow.verif.diagnose import diagnose``.)
"""

from imcflow import lazy_api

#: public name -> the module that defines it
_API = {
    "simulate": "imcflow.verif.sim",
    "SimResult": "imcflow.verif.sim",
    "Scoreboard": "imcflow.verif.scoreboard",
    "StreamDriver": "imcflow.verif.streams",
    "StreamMonitor": "imcflow.verif.streams",
    "Bench": "imcflow.verif.bench",
    "run_streams": "imcflow.verif.amaranth_sim",
    "Bank": "imcflow.verif.bank",
    "AxiStreamChecker": "imcflow.verif.protocol",
    "BuildError": "imcflow.verif.runner",
    "SimulationError": "imcflow.verif.runner",
}
__all__ = sorted(_API)

__getattr__, __dir__ = lazy_api(__name__, _API)
