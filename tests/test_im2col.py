# amaranth: UnusedElaboratable=no
"""WindowSource (LineBuffer / FrameBuffer + Im2colAddressGenerator) in the Amaranth simulator.

Every window of several images sent back to back must equal `imcflow.sw.golden.windows`, in order,
under seeded random idle cycles on the producer and backpressure on the consumer. The same runs
check the producer's ``ready`` against the buffer's rule in every cycle (a line buffer stalls only
when the next pixel would overwrite one still needed), and free-running runs check the timing
cycle by cycle against `window_schedule`: one window per cycle, ``latency`` after the last pixel
a window needs, no cycle lost at image boundaries. The cocotb regressions under Verilator
(tests/test_im2col_cocotb.py) repeat this on larger geometries.
"""

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment, Shape
from amaranth.sim import Simulator

from imcflow.hw.framebuffer import FrameBuffer
from imcflow.hw.im2col import Im2colAddressGenerator, WindowSource, window_schedule
from imcflow.hw.linebuffer import LineBuffer
from imcflow.hw.streams import VectorLayout
from imcflow.errors import UserError
from imcflow.sw.arith import act_range
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.golden import line_buffer_words, window_input_range, windows
from imcflow.verif.amaranth_sim import flat
from imcflow.verif.patterns import pauses

# h, w, c, bits, kernel, stride, padding: the edges (k = 1, k = W = H, stride 2 on odd sizes,
# padding k-1, a kernel larger than the map, a 1x1 map) and common layers.
GEOMETRIES = [
    (5, 5, 2, 4, 3, 1, 1),
    (6, 6, 1, 4, 5, 1, 2),     # padding > stride: rows of windows that restart at pixel 0
    (7, 5, 3, 4, 3, 2, 0),     # stride 2, odd sizes
    (7, 7, 2, 3, 3, 2, 1),
    (4, 4, 2, 3, 4, 1, 0),     # k = W = H: a dense layer after Flatten
    (5, 6, 2, 4, 1, 2, 0),     # k = 1, stride 2
    (4, 5, 1, 4, 3, 1, 2),     # padding = k - 1
    (3, 2, 1, 4, 4, 1, 3),     # kernel larger than the map
    (1, 5, 2, 4, 3, 1, 2),     # ... where row 0's pixels wait for the next row of windows
    (1, 1, 3, 4, 3, 1, 1),     # 1x1 map
]
IDS = ["x".join(map(str, g)) for g in GEOMETRIES]


def window(geometry):
    """``(WindowGeometry, bits)`` of a ``(h, w, c, bits, kernel, stride, padding)`` tuple."""
    h, w, c, bits, kernel, stride, padding = geometry
    return WindowGeometry(h, w, c, kernel, stride, padding), bits


def _fmaps(geometry, images, rng, signed=False):
    h, w, c, bits = geometry[:4]
    lo, hi = act_range(bits, signed)
    return rng.integers(lo, hi + 1, size=(images, h, w, c))


def simulate(dut, fmaps, *, idle=None, backpressure=None, seed=0, signed=False):
    """Send ``fmaps`` (images, H, W, C) through ``dut``; return the cycle trace.

    Returns a dict of per-cycle arrays ``i_valid``, ``i_ready``, ``o_valid``, ``o_ready`` and
    the lists ``windows`` (values, last) and ``i_cycles``/``o_cycles`` (handshake cycles).
    """
    images, h, w, c = fmaps.shape
    i_layout = VectorLayout(c, dut.buffer.bits, signed)
    o_layout = VectorLayout(dut.generator.kernel ** 2 * c, dut.buffer.bits, signed)
    beats = [i_layout.pack(px, n == h * w - 1)
             for fmap in fmaps for n, px in enumerate(fmap.reshape(-1, c))]
    expected = images * dut.oh * dut.ow
    rng = random.Random(seed)
    idle, backpressure = pauses(idle, rng), pauses(backpressure, rng)
    i, o = flat(dut.i), flat(dut.o)
    trace = {key: [] for key in ("i_valid", "i_ready", "o_valid", "o_ready", "windows",
                                 "i_cycles", "o_cycles")}

    async def bench(ctx):
        sent, offering, cycle, quiet = 0, False, 0, 0
        # Run until every window is out, then a few cycles more: nothing may follow.
        while len(trace["windows"]) < expected or quiet < 8:
            if not offering and sent < len(beats) and not next(idle):
                offering = True
                ctx.set(i.payload, beats[sent])
            ctx.set(i.valid, offering)
            ctx.set(o.ready, not next(backpressure))
            _, _, iv, ir, ov, orr, payload = await ctx.tick().sample(
                i.valid, i.ready, o.valid, o.ready, o.payload)
            for key, value in zip(("i_valid", "i_ready", "o_valid", "o_ready"), (iv, ir, ov, orr)):
                trace[key].append(bool(value))
            if iv and ir:
                trace["i_cycles"].append(cycle)
                sent, offering = sent + 1, False
            if ov and orr:
                trace["o_cycles"].append(cycle)
                trace["windows"].append(o_layout.unpack(payload))
            quiet = quiet + 1 if len(trace["windows"]) >= expected else 0
            cycle += 1
            assert cycle < 50 * (len(beats) + expected) + 100, "timeout: the pipeline is stuck"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return {key: np.array(value) if key != "windows" else value for key, value in trace.items()}


def check_windows(trace, fmaps, geometry, pad_value=0):
    """Every window equals the golden one, in order, with ``last`` on each image's last."""
    kernel, stride, padding = geometry[4:]
    golden = windows(fmaps, kernel, stride, padding, pad_value)  # (images, J, k*k*C)
    per_image = golden.shape[1]
    assert len(trace["windows"]) == golden.shape[0] * per_image, "windows lost or duplicated"
    for n, (values, last) in enumerate(trace["windows"]):
        image, j = divmod(n, per_image)
        assert values == golden[image, j].tolist(), f"image {image}, window {j}"
        assert last == (j == per_image - 1), f"image {image}, window {j}: last = {last}"


def expected_ready(trace, geometry, strategy, images):
    """The producer's ``ready`` in each cycle by the buffer's rule, from the handshakes alone.

    The oldest window not yet read is the one after those emitted and the one held on ``o``.
    Line: ready while the next pixel would not overwrite a pixel that window or a later one of
    its image needs. Frame: ready while the next pixel's half does not hold an unread image.
    """
    h, w, c, bits, kernel, stride, padding = geometry
    first, _ = window_input_range(h, w, kernel, stride, padding)
    keep = np.minimum.accumulate(first[::-1])[::-1]
    per_image, pixels = len(first), h * w
    written = np.concatenate([[0], np.cumsum(trace["i_valid"] & trace["i_ready"])[:-1]])
    emitted = np.concatenate([[0], np.cumsum(trace["o_valid"] & trace["o_ready"])[:-1]])
    unread = emitted + trace["o_valid"]
    image, j = np.divmod(unread, per_image)
    if strategy == "frame":
        return written < image * pixels + 2 * pixels
    keep_at = np.where(image < images, image * pixels + keep[np.minimum(j, per_image - 1)],
                       images * pixels)
    return written < keep_at + line_buffer_words(h, w, kernel, stride, padding)


@pytest.mark.parametrize("strategy", ["line", "frame"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
def test_windows_match_golden_under_stalls(geometry, strategy, seeds):
    # Images back to back through the window source, with random idle cycles and backpressure:
    # every window comes out once, in order, bit-exact, and the producer is stalled exactly when
    # the buffer's rule says so (so a line buffer never overwrites a pixel still needed).
    images = 3
    for seed in seeds(2):
        rng = np.random.default_rng(seed)
        fmaps = _fmaps(geometry, images, rng)
        dut = WindowSource(*window(geometry), strategy=strategy)
        trace = simulate(dut, fmaps, idle=0.3, backpressure=0.4, seed=seed)
        check_windows(trace, fmaps, geometry)
        ready = expected_ready(trace, geometry, strategy, images)
        mismatch = np.flatnonzero(trace["i_ready"] != ready)
        assert not mismatch.size, f"i.ready differs from the buffer's rule in cycles {mismatch[:10]}"


@pytest.mark.parametrize("strategy", ["line", "frame"])
def test_signed_pixels_and_pad_value(strategy, seeds):
    # Signed max pooling pads with the lowest code: padded taps carry pad_value, others the pixel.
    geometry = (5, 4, 3, 4, 3, 2, 1)
    seed, = seeds(1)
    fmaps = _fmaps(geometry, 2, np.random.default_rng(seed), signed=True)
    dut = WindowSource(*window(geometry), strategy=strategy, signed=True, pad_value=-8)
    trace = simulate(dut, fmaps, idle=0.2, backpressure=0.3, seed=seed, signed=True)
    check_windows(trace, fmaps, geometry, pad_value=-8)


@pytest.mark.parametrize("strategy", ["line", "frame"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
def test_timing_matches_window_schedule(geometry, strategy, seeds):
    # Free-running producer and consumer: the handshakes happen in exactly the cycles the model
    # says, every window is valid `latency` cycles after its last pixel or one cycle after the
    # previous window, whichever is later (so after the fill, one window per cycle whenever its
    # pixels have arrived), and no cycle is lost at image boundaries.
    images = 4
    h, w, c, bits, kernel, stride, padding = geometry
    fmaps = _fmaps(geometry, images, np.random.default_rng(seeds(1)[0]))
    dut = WindowSource(*window(geometry), strategy=strategy)
    trace = simulate(dut, fmaps)
    check_windows(trace, fmaps, geometry)
    pixels, windows_cycles = window_schedule(window(geometry)[0], strategy=strategy,
                                             images=images)
    assert trace["i_cycles"].tolist() == pixels.tolist()
    assert trace["o_cycles"].tolist() == windows_cycles.tolist()

    _, last = window_input_range(h, w, kernel, stride, padding)
    if strategy == "frame":
        last = np.full_like(last, h * w - 1)
    arrival = trace["i_cycles"][(np.arange(images)[:, None] * h * w + last).reshape(-1)]
    ideal, previous = [], -1
    for ready in arrival + dut.latency:
        previous = max(previous + 1, ready)
        ideal.append(previous)
    if strategy == "frame" or kernel <= min(h, w):
        assert trace["o_cycles"].tolist() == ideal, "cycles lost"
    else:
        # A kernel larger than the map needs the whole image in a line buffer of H*W words:
        # the next image can only start as the last window is read (documented).
        assert (trace["o_cycles"] >= np.array(ideal)).all()


# (geometry, passes): a window read over several cycles through fewer read ports
PASSES = [(GEOMETRIES[0], 9), (GEOMETRIES[1], 3), (GEOMETRIES[3], 2), (GEOMETRIES[4], 16),
          (GEOMETRIES[6], 4), (GEOMETRIES[7], 5), (GEOMETRIES[9], 3)]


@pytest.mark.parametrize("strategy", ["line", "frame"])
@pytest.mark.parametrize("geometry, passes", PASSES,
                         ids=[f"{'x'.join(map(str, g))}-{p}" for g, p in PASSES])
def test_windows_read_over_passes(geometry, passes, strategy, seeds):
    # ceil(k*k / passes) read ports, the taps read over the fewest passes they need: the same
    # windows under stalls, the producer stalled by the same rule (the pixels kept until the
    # last pass), and free-running, the cycles of `window_schedule` with those passes (a read
    # starts the cycle after the handshake of the window's last pixel at the earliest).
    taps = geometry[4] ** 2
    ports = -(-taps // passes)
    images = 3
    seed, = seeds(1)
    fmaps = _fmaps(geometry, images, np.random.default_rng(seed))
    dut = WindowSource(*window(geometry), strategy=strategy, passes=passes)
    assert (dut.buffer.ports, dut.passes) == (ports, -(-taps // ports))
    # the ports are not transparent: a window waits a cycle after its last pixel's handshake
    assert (dut.buffer.latency, dut.latency, dut.interval) == (1, dut.passes + 1, dut.passes)
    trace = simulate(dut, fmaps, idle=0.3, backpressure=0.4, seed=seed)
    check_windows(trace, fmaps, geometry)
    mismatch = np.flatnonzero(trace["i_ready"] != expected_ready(trace, geometry, strategy, images))
    assert not mismatch.size, f"i.ready differs from the buffer's rule in cycles {mismatch[:10]}"
    trace = simulate(WindowSource(*window(geometry), strategy=strategy, passes=passes), fmaps)
    check_windows(trace, fmaps, geometry)
    pixels, windows_cycles = window_schedule(window(geometry)[0], strategy=strategy,
                                             images=images, passes=passes)
    assert trace["i_cycles"].tolist() == pixels.tolist()
    assert trace["o_cycles"].tolist() == windows_cycles.tolist()
    assert (np.diff(trace["o_cycles"]) >= dut.passes).all()


def test_full_rate_and_no_bubble_between_images():
    # A 'same' convolution: as many windows as pixels. After the fill the output never pauses,
    # not even between images: 4 images of 64 windows in 256 consecutive cycles.
    geometry = (8, 8, 1, 4, 3, 1, 1)
    fmaps = _fmaps(geometry, 4, np.random.default_rng(0))
    dut = WindowSource(*window(geometry))
    trace = simulate(dut, fmaps)
    o = trace["o_cycles"]
    assert o[0] == 9 + dut.latency   # fill: the last pixel window 0 needs is pixel W + 1
    assert np.all(np.diff(o) == 1)
    assert len(o) == 256
    assert trace["i_ready"][: trace["i_cycles"][-1] + 1].all()   # the producer is never stalled


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
def test_memory_depth(geometry):
    # The line buffer's memory holds exactly line_buffer_words pixels (the mapper's buffer_words);
    # the frame buffer's two whole images. A one-word buffer (k = 1) is given a second, unused
    # word, so that its address has a bit: Verilog has no empty vectors.
    h, w, c, bits, kernel, stride, padding = geometry
    line = LineBuffer(*window(geometry))
    frame = FrameBuffer(*window(geometry))
    for buffer, words in ((line, line_buffer_words(h, w, kernel, stride, padding)), (frame, 2 * h * w)):
        m = buffer.elaborate(None)
        Fragment.get(m, None)
        memory = m.submodules.memory
        assert buffer.words == words and memory.depth == max(words, 2)
        assert Shape.cast(memory.shape).width == c * bits and len(memory.read_ports) == kernel * kernel
    for strategy, words in (("line", line.words), ("frame", 2 * h * w)):
        source = WindowSource(*window(geometry), strategy=strategy)
        Fragment.get(source, None)
        assert source.words == source.buffer.words == words


def test_latency_attributes():
    # The buffers show a pixel to the reader in its handshake cycle; the generator's output
    # register adds one cycle. (test_timing_matches_window_schedule measures the sum.)
    source = WindowSource(WindowGeometry(4, 4, 1, 3), 8)
    Fragment.get(source, None)
    assert (source.buffer.latency, source.generator.latency, source.latency) == (0, 1, 1)
    assert FrameBuffer(WindowGeometry(4, 4, 1, 3), 8).latency == 0


G = WindowGeometry(4, 4, 1, 3)


@pytest.mark.parametrize("make, message", [
    # the geometry checks itself (tests/test_values.py); the blocks check the rest
    (lambda: LineBuffer((4, 4, 1, 3), 8),
     r"^geometry: must be a imcflow\.sw\.geometry\.WindowGeometry, not \(4, 4, 1, 3\)$"),
    (lambda: LineBuffer(WindowGeometry(4, 2, 1, 3), 8),
     r"^window\.kernel: 3 with padding 0 does not fit a 4x2 map$"),
    (lambda: FrameBuffer(G, True), r"^bits: must be a positive integer, not True$"),
    (lambda: Im2colAddressGenerator(G, 8, words="11"),
     r"^words: must be an integer >= 11, not '11'$"),
    (lambda: Im2colAddressGenerator(G, 8, words=10), r"^words: must be an integer >= 11, not 10$"),
    (lambda: WindowSource(G, 8, pad_value=1.5),
     r"^pad_value: must be an integer in 0\.\.255, not 1\.5$"),
    (lambda: WindowSource(G, 8, pad_value=-1),
     r"^pad_value: must be an integer in 0\.\.255, not -1$"),
    (lambda: WindowSource(G, 4, signed=True, pad_value=8),
     r"^pad_value: must be an integer in -8\.\.7, not 8$"),
    (lambda: WindowSource(G, 8, strategy="lines"),
     r"^strategy: must be one of 'line', 'frame', not 'lines'$"),
])
def test_constructor_checks(make, message):
    with pytest.raises(UserError, match=message):
        make()
