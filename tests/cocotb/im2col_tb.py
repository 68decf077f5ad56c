"""cocotb testbench of a bank of WindowSources, run by tests/test_im2col_cocotb.py.

The toplevel holds several independent window sources, ``g<n>_i`` -> ``g<n>_o``, one per geometry
(so one Verilator build covers many geometries); every testcase drives all of them at once.
Parameters (from the runner): ``geometries``, a list of dicts with ``port``, ``h``, ``w``, ``c``,
``bits``, ``kernel``, ``stride``, ``padding``, ``strategy``, ``signed``, ``pad_value``, ``latency``
and ``seed`` (the pixels, idle and backpressure of that geometry); ``images`` per geometry.
"""

import random

import cocotb
import numpy as np

from imcflow.hw.im2col import window_schedule
from imcflow.hw.streams import VectorLayout
from imcflow.sw.arith import act_range
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.golden import windows
from imcflow.verif.bench import Bench, parameters, report
from imcflow.verif.scoreboard import Scoreboard
from imcflow.verif.streams import StreamDriver, StreamMonitor


class Geometry:
    """One window source of the bank: its layouts, images and golden windows."""

    def __init__(self, g, images):
        self.g, self.port = g, g["port"]
        h, w, c, bits = g["h"], g["w"], g["c"], g["bits"]
        k = g["kernel"]
        self.i_layout = VectorLayout(c, bits, g["signed"])
        self.o_layout = VectorLayout(k * k * c, bits, g["signed"])
        rng = np.random.default_rng(g["seed"])
        lo, hi = act_range(bits, g["signed"])
        self.fmaps = rng.integers(lo, hi + 1, size=(images, h, w, c))
        self.pixels = [(list(map(int, px)), n == h * w - 1)
                       for fmap in self.fmaps for n, px in enumerate(fmap.reshape(-1, c))]
        golden = windows(self.fmaps, k, g["stride"], g["padding"], g["pad_value"])
        per_image = golden.shape[1]
        self.windows = [(list(map(int, win)), j == per_image - 1)
                        for image in golden for j, win in enumerate(image)]

    def __str__(self):
        g = self.g
        return (f"{self.port}: {g['h']}x{g['w']}x{g['c']} bits={g['bits']} k={g['kernel']} "
                f"s={g['stride']} p={g['padding']} {g['strategy']} signed={g['signed']} "
                f"pad={g['pad_value']} seed={g['seed']}")


def bank():
    p = parameters()
    return [Geometry(g, p["images"]) for g in p["geometries"]]


@cocotb.test()
async def random_stalls(dut):
    """Images back to back into every window source under seeded random idle cycles and
    backpressure: every window equals sw.golden.windows, in order, none lost or duplicated."""
    geometries = bank()
    bench = Bench(dut)
    agents = []
    for geo in geometries:
        rng = random.Random(geo.g["seed"])
        idle, backpressure = rng.choice([0.1, 0.3, 0.6]), rng.choice([0.1, 0.4, 0.7])
        dut._log.info(f"{geo} idle={idle} backpressure={backpressure}")
        board = Scoreboard(geo.windows, name=f"{geo.port}_o ({geo})")
        source = bench.add(StreamDriver(dut, f"{geo.port}_i", layout=geo.i_layout, idle=idle, rng=rng))
        sink = bench.add(StreamMonitor(dut, f"{geo.port}_o", layout=geo.o_layout,
                                       backpressure=backpressure, rng=rng, on_beat=board.actual))
        source.send(geo.pixels)
        agents.append((geo, board, sink))
    await bench.start()
    longest = max(len(geo.pixels) + len(geo.windows) for geo in geometries)
    await bench.wait_until(lambda: all(len(s.beats) == len(geo.windows) for geo, _, s in agents),
                           timeout=20 * longest + 100, what="every window")
    await bench.wait(20)   # nothing extra may follow
    for _, board, _ in agents:
        board.finish()
    report(random_cycles=bench.cycle, windows=sum(len(s.beats) for _, _, s in agents))


@cocotb.test()
async def full_rate(dut):
    """No idle cycles, no backpressure: every pixel and window handshake happens in the cycle
    window_schedule predicts (one window per cycle after the fill, no cycle lost between
    images), and every window is bit-exact."""
    geometries = bank()
    bench = Bench(dut)
    agents = []
    for geo in geometries:
        source = bench.add(StreamDriver(dut, f"{geo.port}_i", layout=geo.i_layout))
        sink = bench.add(StreamMonitor(dut, f"{geo.port}_o", layout=geo.o_layout))
        source.send(geo.pixels)
        agents.append((geo, source, sink))
    await bench.start()
    longest = max(len(geo.pixels) + len(geo.windows) for geo in geometries)
    await bench.wait_until(lambda: all(len(s.beats) == len(geo.windows) for geo, _, s in agents),
                           timeout=4 * longest + 100, what="every window")
    figures = {}
    for geo, source, sink in agents:
        g = geo.g
        Scoreboard.check(geo.windows, sink.beats, name=f"{geo.port}_o ({geo})")
        pixels, emitted = window_schedule(
            WindowGeometry(g["h"], g["w"], g["c"], g["kernel"], g["stride"], g["padding"]),
            strategy=g["strategy"], images=parameters()["images"])
        start = source.cycles[0]
        assert [c - start for c in source.cycles] == pixels.tolist(), f"{geo}: pixel handshakes"
        assert [c - start for c in sink.cycles] == emitted.tolist(), f"{geo}: window cycles"
        per_image = len(geo.windows) // parameters()["images"]
        figures[geo.port] = {"fill": sink.cycles[0] - start,
                             "image_cycles": sink.cycles[-1] - sink.cycles[-1 - per_image],
                             "cycles": sink.cycles[-1] - start + 1}
    report(full_rate=figures)
