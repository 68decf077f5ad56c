"""cocotb testbench of a generated accelerator top (`imcflow.gen.accelerator.AxiStreamTop`), run by
`imcflow.verif.sim` (``imcflow sim``).

It streams the images of a ``.npz`` file back to back into ``s_axis`` (optionally with idle
cycles), takes the outputs from ``m_axis`` (optionally with backpressure; the monitor checks the
stream rules on every beat), records the cycle of every handshake (cycle 0 is the first after
reset release) and writes everything, with
the wall-clock time of the run after reset, to a JSON results file. The comparison with the golden
model is the caller's. `imcflow.verif.protocol.AxiStreamChecker` checks the AXI4-Stream rules
on both ports in every cycle and fails the run at the first broken one. A watchdog stops the
run when no output handshake happened for ``watchdog`` cycles: it reads the ``status`` port (every link's valid/ready), writes the diagnosis
(`imcflow.verif.diagnose.diagnose`) into the results and fails the test with it.

Parameters: ``data`` (``.npz`` with ``pixels``, ``(images, pixels_per_image, C)``), ``results``
(JSON path), ``in_lanes``, ``out_lanes``, ``out_signed``, ``out_beats`` (output beats per image),
``links`` (the manifest's status links), ``watchdog`` and ``timeout`` (cycles), ``seed``, ``idle``,
``backpressure``, ``progress`` (a progress bar on stderr).

Idle cycles and backpressure are the seeded `imcflow.verif.patterns.port_stalls` masks, indexed
by cycle with their documented semantics, so the performance model given the same masks predicts
every handshake's cycle.
"""

import json
import sys
import time
from types import SimpleNamespace

import cocotb
import numpy as np
from tqdm import tqdm

from imcflow.hw.streams import VectorLayout
from imcflow.verif.bench import Bench, parameters
from imcflow.verif.patterns import port_stalls
from imcflow.verif.protocol import AxiStreamChecker
from imcflow.verif.diagnose import diagnose
from imcflow.verif.streams import StreamDriver, StreamMonitor

#: cycles to keep watching after the last expected output, for extra beats
DRAIN = 200


class _Payload:
    """``tdata`` and ``tlast`` seen as one stream payload handle (``last`` above the data)."""

    def __init__(self, data, last, width: int):
        self.data, self.last, self.width = data, last, width

    @property
    def value(self) -> int:
        return int(self.data.value) | int(self.last.value) << self.width

    @value.setter
    def value(self, word: int) -> None:
        self.data.value = word & ((1 << self.width) - 1)
        self.last.value = word >> self.width


def axis(dut, prefix: str, width: int):
    """An AXI4-Stream port ``<prefix>_t*`` as an Amaranth-style stream port ``axis`` for
    `StreamDriver` / `StreamMonitor`."""
    def port(name):
        return getattr(dut, f"{prefix}_{name}")
    return SimpleNamespace(axis__valid=port("tvalid"), axis__ready=port("tready"),
                           axis__payload=_Payload(port("tdata"), port("tlast"), width))


class CycleStalls:
    """A stall mask as the pause pattern of a `StreamDriver` or `StreamMonitor`: each query
    answers for the bench's current cycle (cycles past the mask's end are not stalled).

    The monitor asks in every cycle (``tready = not stall[c]``); the driver asks only in a cycle
    in which it has a beat and ``tvalid`` is low, and raises ``tvalid`` iff ``not stall[c]``.
    """

    def __init__(self, bench, mask):
        self.bench, self.mask = bench, mask

    def __iter__(self):
        return self

    def __next__(self) -> bool:
        c = self.bench.cycle
        return c < len(self.mask) and bool(self.mask[c])


class Watchdog:
    """Trips when no output handshake happened for ``bound`` cycles while outputs are missing."""

    def __init__(self, dut, sink, expected: int, bound: int, links):
        self.dut, self.sink, self.expected = dut, sink, expected
        self.bound, self.links = bound, links
        self.tripped = None

    def drive(self, cycle):
        pass

    def sample(self, cycle):
        if self.tripped or len(self.sink.beats) >= self.expected:
            return
        last = self.sink.cycles[-1] if self.sink.cycles else 0
        if cycle - last > self.bound:
            status = int(self.dut.status.value)
            self.tripped = {"cycle": cycle, "status": status, "message": diagnose(
                status, self.links, idle_cycles=cycle - last, bound=self.bound)}


@cocotb.test()
async def stream_images(dut):
    p = parameters()
    pixels = np.load(p["data"])["pixels"]
    images, per_image, _ = pixels.shape
    expected = images * p["out_beats"]
    in_layout = VectorLayout(p["in_lanes"], 8)
    out_layout = VectorLayout(p["out_lanes"], 8, p["out_signed"])
    bench = Bench(dut)
    # the run ends within timeout + DRAIN cycles of the start
    idle, backpressure = (None if mask is None else CycleStalls(bench, mask) for mask in
                          port_stalls(p["seed"], p["idle"], p["backpressure"],
                                      p["timeout"] + DRAIN + 2))
    source = bench.add(StreamDriver(axis(dut, "s_axis", 8 * p["in_lanes"]), "axis",
                                    layout=in_layout, idle=idle))
    bar = None
    if p["progress"]:
        bar = tqdm(total=images, desc="simulating", unit="image", file=sys.stderr)

    def on_beat(beat):
        if bar is not None and len(sink.beats) % p["out_beats"] == 0:
            bar.update()

    sink = bench.add(StreamMonitor(axis(dut, "m_axis", 8 * p["out_lanes"]), "axis",
                                   layout=out_layout, backpressure=backpressure,
                                   on_beat=on_beat))
    watchdog = bench.add(Watchdog(dut, sink, expected, p["watchdog"], p["links"]))
    for port in ("s_axis", "m_axis"):
        bench.add(AxiStreamChecker(dut, port))
    await bench.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    source.send((pixel.tolist(), n == per_image - 1) for image in pixels
                for n, pixel in enumerate(image))
    timeout = None
    try:
        await bench.wait_until(lambda: len(sink.beats) >= expected or watchdog.tripped is not None,
                               timeout=p["timeout"], what=f"{expected} output beats")
    except AssertionError as e:
        timeout = str(e)
    if watchdog.tripped is None and timeout is None:
        await bench.wait(DRAIN)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    if bar is not None:
        bar.close()
    with open(p["results"], "w") as f:
        json.dump({"outputs": [values for values, _ in sink.beats],
                   "last": [last for _, last in sink.beats],
                   "out_cycles": sink.cycles, "in_cycles": source.cycles, "cycles": bench.cycle,
                   "wall_seconds": wall, "cpu_seconds": cpu,
                   "deadlock": watchdog.tripped, "timeout": timeout}, f)
    assert watchdog.tripped is None, watchdog.tripped["message"]
    assert timeout is None, timeout
