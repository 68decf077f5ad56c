"""cocotb testbench of CrossbarLayer bundles, run by tests/test_core_cocotb.py.

Parameters: ``units``, one dict per layer of the bundle (``prefix``, ``rows``, ``channels``,
``act_bits``, ``signed``, ``latency``, ``interval``, ``seed``, ``idle``, ``stall``), ``image``
(``last`` on every ``image``-th beat) and ``data``, an ``.npz`` file with, per prefix, the windows
``x_a``, ``x_c`` and the golden output pixels ``y_a``, ``y_c``
(`imcflow.sw.golden.crossbar_layer`).

Each layer, concurrently with the others: windows A under random idle cycles and backpressure,
then windows C at full speed, where every window is taken ``interval`` cycles after the previous
one (a stage of P pixels takes P * interval cycles) and each output pixel is valid ``latency``
cycles after its window.
"""

import cocotb
import numpy as np
from cocotb.triggers import gather

from crossbar_units import Unit, vectors
from imcflow.hw.streams import VectorLayout
from imcflow.verif.bench import Bench, parameters, report


async def exercise(unit: Unit, u: dict, data, image: int) -> int:
    x = {phase: vectors(data[f"{u['prefix']}x_{phase}"], image) for phase in "ac"}
    y = {phase: vectors(data[f"{u['prefix']}y_{phase}"], image) for phase in "ac"}
    timeout = 20 * u["interval"] * (len(x["a"]) + len(x["c"])) + 20 * u["latency"] + 200

    unit.randomize(u["idle"], u["stall"])
    await unit.transfer({"i": x["a"]}, y["a"], timeout=timeout)
    unit.full_speed()
    cycles = await unit.transfer({"i": x["c"]}, y["c"], timeout=timeout)
    unit.check_rate(cycles, "i", u["latency"], u["interval"])
    await unit.finish(2 * u["latency"] + u["interval"] + 4)
    return len(y["a"]) + len(y["c"])


@cocotb.test()
async def layers(dut):
    """Every layer of the bundle against the golden model, then at full speed."""
    p = parameters()
    data = np.load(p["data"])
    bench = Bench(dut)
    units = [Unit(bench, dut, u["prefix"], {"i": VectorLayout(u["rows"], u["act_bits"])},
                  ("o", VectorLayout(u["channels"], u["act_bits"], u["signed"])), u["seed"])
             for u in p["units"]]
    await bench.start()
    beats = await gather(*(exercise(unit, u, data, p["image"]) for unit, u in zip(units, p["units"])))
    report(beats=list(beats), cycles=bench.cycle)
