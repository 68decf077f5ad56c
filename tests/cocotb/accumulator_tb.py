"""cocotb testbench of AdcAccumulator bundles, run by tests/test_accumulator_cocotb.py.

Parameters: ``units``, one dict per accumulator of the bundle (``prefix``, ``row_tiles``,
``cols``, ``in_bits``, ``act_bits``, ``signed``, ``latency``, ``interval``, ``seed``, ``idle``,
``stall``), ``image`` (``last`` on every ``image``-th beat) and ``data``, an ``.npz`` file with,
per prefix, the row-tile outputs ``parts_a``/``parts_c`` (row_tiles, beats, cols) and the golden
activations ``y_a``/``y_c`` (`imcflow.sw.arith.requantize` of their sum plus the bias).

Each accumulator, concurrently with the others: beats A with independent random idle cycles on
every row-tile input and backpressure on the output; then beats C at full speed, where all
inputs are taken together in every cycle and each result is valid ``latency`` cycles later.
"""

import cocotb
import numpy as np
from cocotb.triggers import gather

from crossbar_units import Unit, vectors
from imcflow.hw.streams import VectorLayout
from imcflow.verif.bench import Bench, parameters, report


async def exercise(unit: Unit, u: dict, data, image: int) -> int:
    inputs = [f"i__{t}" for t in range(u["row_tiles"])]
    parts = {phase: data[f"{u['prefix']}parts_{phase}"] for phase in "ac"}
    beats = {phase: {port: vectors(parts[phase][t], image) for t, port in enumerate(inputs)}
             for phase in "ac"}
    y = {phase: vectors(data[f"{u['prefix']}y_{phase}"], image) for phase in "ac"}
    timeout = 20 * (len(y["a"]) + len(y["c"])) + 200

    unit.randomize(u["idle"], u["stall"])
    await unit.transfer(beats["a"], y["a"], timeout=timeout)
    unit.full_speed()
    cycles = await unit.transfer(beats["c"], y["c"], timeout=timeout)
    unit.check_rate(cycles, inputs[0], u["latency"], u["interval"])
    assert all(cycles[port] == cycles[inputs[0]] for port in inputs), "row tiles taken apart"
    await unit.finish(2 * u["latency"] + 4)
    return len(y["a"]) + len(y["c"])


@cocotb.test()
async def accumulators(dut):
    """Every accumulator of the bundle against the golden model, then at full speed."""
    p = parameters()
    data = np.load(p["data"])
    bench = Bench(dut)
    units = [Unit(bench, dut, u["prefix"],
                  {f"i__{t}": VectorLayout(u["cols"], u["in_bits"], signed_=True)
                   for t in range(u["row_tiles"])},
                  ("o", VectorLayout(u["cols"], u["act_bits"], u["signed"])), u["seed"])
             for u in p["units"]]
    await bench.start()
    beats = await gather(*(exercise(unit, u, data, p["image"]) for unit, u in zip(units, p["units"])))
    report(beats=list(beats), cycles=bench.cycle)
