"""cocotb testbench of a design of mutants (`imcflow mutate`): a block's own testcases, once per
mutant, all in one simulator run.

Parameters (from the runner): ``plan``, the path of a JSON file ``{"mutsels": [k, ...],
"cases": [{"testbench": module, "testcase": name, "parameters": {...}}, ...]}``. For every
``mutsel`` in order and every case in order this module defines a testcase ``m<mutsel>_c<n>``
that runs the case's testcase (e.g. ``stream_bank_tb.streams``) with the case's parameters and
``mutsel``: `imcflow.verif.bench.Bench` selects that mutant and resets the design, the
testcase's clock and components end with it (cocotb cancels a test's tasks), and what it reports
goes to ``m<mutsel>_c<n>.json`` beside the run's report. Once a case of a mutant has failed,
its later cases return at once (the mutant is killed; they would only cost time).
"""

import importlib
import json
import os
from pathlib import Path

import cocotb

from imcflow.verif.bench import parameters
from imcflow.verif.runner import PARAMS_ENV, REPORT_ENV

_BASE = parameters()
_PLAN = json.loads(Path(_BASE["plan"]).read_text())
_PASSED: set[tuple[int, int]] = set()


def _testcase(mutsel: int, n: int, case: dict):
    run = getattr(importlib.import_module(case["testbench"]), case["testcase"]).func
    name = f"m{mutsel}_c{n}"

    async def mutant(dut):
        if any((mutsel, k) not in _PASSED for k in range(n)):
            return
        os.environ[PARAMS_ENV] = json.dumps({**_BASE, **case["parameters"], "mutsel": mutsel})
        os.environ[REPORT_ENV] = str(Path(os.environ[REPORT_ENV]).with_name(f"{name}.json"))
        await run(dut)
        _PASSED.add((mutsel, n))

    mutant.__name__ = mutant.__qualname__ = name
    return cocotb.test(mutant)


for _mutsel in _PLAN["mutsels"]:
    for _n, _case in enumerate(_PLAN["cases"]):
        globals()[f"m{_mutsel}_c{_n}"] = _testcase(_mutsel, _n, _case)
