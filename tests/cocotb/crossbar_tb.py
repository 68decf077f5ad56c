"""cocotb testbench of CrossbarTile bundles, run by tests/test_crossbar_cocotb.py.

Parameters: ``units``, one dict per tile of the bundle (``prefix``, ``rows``, ``cols``,
``act_bits``, ``weight_bits``, ``out_bits``, ``steps``, ``latency``, ``interval``, ``seed``, ``idle``, ``stall``),
``image`` (beats per image: ``last`` on every ``image``-th) and ``data``, an ``.npz`` file with,
per prefix, the windows ``x_a``, ``x_b``, ``x_c`` and their golden ADC outputs ``y_a``, ``y_b``,
``y_c`` (`imcflow.sw.arith.crossbar_mvm`), and the column writes ``write_col``/``write_data``.

Each tile, concurrently with the others: windows A under random idle cycles and backpressure;
as soon as A is taken, the column writes (while the last MVM of A may still be reading); then
windows B, which must see the new image; then windows C at full speed, where every window is
taken ``interval`` cycles after the previous one and its result is valid ``latency`` cycles
after it. Nothing may be lost, duplicated, reordered or added.

The report has, per tile, its output beats and the cycle of every handshake on ``i``,
``i_weight`` and ``o`` (``handshakes``): two tiles given the same seed and stimulus, one of each
flavour, must have the same lists.
"""

import cocotb
import numpy as np
from cocotb.triggers import gather

from crossbar_units import Unit, vectors
from imcflow.hw.crossbar import WeightWriteLayout
from imcflow.hw.streams import VectorLayout
from imcflow.verif.bench import Bench, parameters, report


async def exercise(unit: Unit, u: dict, data, image: int) -> int:
    x = {phase: vectors(data[f"{u['prefix']}x_{phase}"], image) for phase in "abc"}
    y = {phase: vectors(data[f"{u['prefix']}y_{phase}"], image) for phase in "abc"}
    layout = WeightWriteLayout(u["rows"], u["cols"], u["weight_bits"])
    writes = [layout.const({"col": int(c), "data": column.tolist()}).as_value().value
              for c, column in zip(data[f"{u['prefix']}write_col"], data[f"{u['prefix']}write_data"])]
    timeout = 20 * u["interval"] * (len(x["a"]) + len(x["b"]) + len(x["c"])) + 20 * len(writes) + 200

    unit.randomize(u["idle"], u["stall"])
    unit.expect(y["a"])
    await unit.sent("i", x["a"], timeout=timeout)
    await unit.sent("i_weight", writes, timeout=timeout)
    # a column write waits until the MVM in flight has read all its column groups
    assert unit.drivers["i_weight"].cycles[0] >= unit.drivers["i"].cycles[-1] + u["steps"]
    unit.expect(y["b"])
    await unit.sent("i", x["b"], timeout=timeout)
    await unit.drained(timeout=timeout)

    unit.full_speed()
    cycles = await unit.transfer({"i": x["c"]}, y["c"], timeout=timeout)
    unit.check_rate(cycles, "i", u["latency"], u["interval"])
    await unit.finish(2 * u["latency"] + u["interval"] + 4)
    return sum(len(v) for v in y.values())


@cocotb.test()
async def tiles(dut):
    """Every tile of the bundle against the golden model, reprogrammed, then at full speed."""
    p = parameters()
    data = np.load(p["data"])
    bench = Bench(dut)
    units = [Unit(bench, dut, u["prefix"],
                  {"i": VectorLayout(u["rows"], u["act_bits"]), "i_weight": None},
                  ("o", VectorLayout(u["cols"], u["out_bits"], signed_=True)), u["seed"])
             for u in p["units"]]
    await bench.start()
    beats = await gather(*(exercise(unit, u, data, p["image"]) for unit, u in zip(units, p["units"])))
    handshakes = [{"i": unit.drivers["i"].cycles, "i_weight": unit.drivers["i_weight"].cycles,
                   "o": unit.monitor.cycles} for unit in units]
    report(beats=list(beats), cycles=bench.cycle, handshakes=handshakes)
