"""The timing contract of the RTL blocks: their latencies and the window schedule, in one place.

The blocks of `imcflow.hw` read their ``latency`` from here, as they read their arithmetic from
`imcflow.sw.arith`; the performance model (`imcflow.sw.perf`) composes the same numbers into
stage latencies and its event model, and the mapper (`imcflow.sw.mapper`) sizes the skip FIFOs
from them. A block that gains a register changes its number here, and the model follows
(docs/design.md, "Timing").

Latencies are clock cycles from an input handshake to the output ``valid``, when nothing
stalls. Every block that requantizes (crossbar accumulator, join, average and global average
pooling) registers the product of its multiply (with the rounding constant added, but for a join
of one pass) before shifting and saturating it into its output register (`REQUANT_LATENCY`):
the multiply and the saturation are then never in one cycle, which is what limits the clock of
an FPGA build (docs/fpga.md, "What limits Fmax"); where a sum comes before the multiply
(accumulator, pools), it is registered too, so each DSP multiply runs from a register to a
register, and the join registers the sum of its two products (`JOIN_LATENCY`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.geometry import WindowGeometry
from imcflow.validate import check_int

__all__ = [
    "WINDOW_BUFFER_LATENCY", "ADDRESS_GENERATOR_LATENCY", "WINDOW_LATENCY", "CROSSBAR_REGISTERS",
    "REQUANT_LATENCY", "ACCUMULATOR_LATENCY", "MERGE_LATENCY", "MAX_POOL_LATENCY",
    "AVG_POOL_LATENCY", "GLOBAL_POOL_LATENCY", "JOIN_LATENCY", "FORK_LATENCY", "FIFO_LATENCY",
    "FIFO_DEPTH", "FRAME_IMAGES", "tile_latency", "BlockTiming", "steps", "engine_latency",
    "crossbar_engine_latency", "passes_latency", "join_registers", "ROLE_LATENCY",
    "fill_latency", "link_latency", "capacity", "window_needs", "window_rules", "accept_pixels",
    "read_windows", "window_schedule", "window_ports", "source_latency",
]

# --- block latencies ------------------------------------------------------------------------------

#: `~imcflow.hw.linebuffer.LineBuffer` and `~imcflow.hw.framebuffer.FrameBuffer`: a pixel is
#: readable in the cycle after its handshake, through combinational read ports
WINDOW_BUFFER_LATENCY = 0
#: `~imcflow.hw.im2col.Im2colAddressGenerator`: the window is read into its output register
ADDRESS_GENERATOR_LATENCY = 1
#: `~imcflow.hw.im2col.WindowSource`: handshake of a window's last pixel to the window valid
WINDOW_LATENCY = WINDOW_BUFFER_LATENCY + ADDRESS_GENERATOR_LATENCY
#: `~imcflow.hw.crossbar.CrossbarTile` registers besides its issue steps and ``mac_stages``: the
#: dot-product register, the rounded-sum register (the ADC's rounding, then its saturation in the
#: next cycle) and the output register
CROSSBAR_REGISTERS = 3
#: a requantization ``saturate(round_shift(x * mult, shift))``: the product register (holding
#: the rounding constant), then the shift and saturation into the output register
REQUANT_LATENCY = 2
#: `~imcflow.hw.accumulator.AdcAccumulator`: the row-tile sum plus bias register, then the
#: requantization (with one multiplier per column; `passes_latency` more with fewer)
ACCUMULATOR_LATENCY = 1 + REQUANT_LATENCY
#: `~imcflow.gen.replication.Merger`: the merge of replicated copies (registered)
MERGE_LATENCY = 1
#: `~imcflow.hw.pool.WindowMax`: the comparator tree into the output register
MAX_POOL_LATENCY = 1
#: `~imcflow.hw.pool.WindowAverage`: the window sum, then the requantization (the multiply
#: takes a register, as in the accumulator)
AVG_POOL_LATENCY = 1 + REQUANT_LATENCY
#: `~imcflow.hw.pool.GlobalAvgPool`: an image's last pixel to its result: the image's sum, then
#: the requantization
GLOBAL_POOL_LATENCY = 1 + REQUANT_LATENCY
#: `~imcflow.hw.residual.Join`: both rescaling products, their sum, then its rounding and
#: saturation (a register between the adder and the saturation: at 100 MHz on an ECP5 the two do
#: not fit in one cycle)
JOIN_LATENCY = REQUANT_LATENCY + 1
#: `~imcflow.hw.residual.Fork`: combinational
FORK_LATENCY = 0
#: `~imcflow.hw.fifo.PipelineFifo`: enqueue to the beat valid at its output
FIFO_LATENCY = 1
#: depth of the `~imcflow.hw.fifo.PipelineFifo` between stages (one beat per cycle needs
#: ``FIFO_LATENCY + FORK_LATENCY + 1``)
FIFO_DEPTH = 2
#: images a `~imcflow.hw.framebuffer.FrameBuffer` holds (one written while one is read)
FRAME_IMAGES = 2


def tile_latency(steps_: int, mac_stages: int) -> int:
    """`~imcflow.hw.crossbar.CrossbarTile`: input handshake to ``o.valid`` when the consumer keeps
    up: its issue ``steps`` (bit planes x column groups), ``mac_stages`` and `CROSSBAR_REGISTERS`."""
    return steps_ + mac_stages + CROSSBAR_REGISTERS


@dataclass(frozen=True)
class BlockTiming:
    """Latencies of the RTL blocks, in cycles, and the FIFO depth, as the model uses them.

    The defaults are the blocks' (the constants above, which the blocks of `imcflow.hw` read);
    other values model other blocks, e.g. ``dataclasses.replace(BlockTiming(), fifo_depth=4)``.

    Attributes
    ----------
    window_latency : int
        `WINDOW_LATENCY`.
    crossbar_latency : int
        `CROSSBAR_REGISTERS`: a tile's latency minus its ``steps`` and ``arch.mac_stages``.
    accumulator_latency : int
        `ACCUMULATOR_LATENCY`: row-tile sum, bias, requantization, ReLU.
    merge_latency : int
        `MERGE_LATENCY` (only when ``r > 1``).
    max_pool_latency, avg_pool_latency, global_pool_latency : int
        The pooling reducers: `MAX_POOL_LATENCY`, `AVG_POOL_LATENCY`, `GLOBAL_POOL_LATENCY`.
    join_latency : int
        `JOIN_LATENCY`.
    fork_latency : int
        `FORK_LATENCY`, added to each link of a stage with several consumers.
    fifo_latency : int
        `FIFO_LATENCY`.
    fifo_depth : int
        Depth of the FIFO between stages (skip FIFOs are at least as deep).
    image_gap : int
        Cycles each stage loses between the last beat of an image and the first of the next.
    """

    window_latency: int = WINDOW_LATENCY
    crossbar_latency: int = CROSSBAR_REGISTERS
    accumulator_latency: int = ACCUMULATOR_LATENCY
    merge_latency: int = MERGE_LATENCY
    max_pool_latency: int = MAX_POOL_LATENCY
    avg_pool_latency: int = AVG_POOL_LATENCY
    global_pool_latency: int = GLOBAL_POOL_LATENCY
    join_latency: int = JOIN_LATENCY
    fork_latency: int = FORK_LATENCY
    fifo_latency: int = FIFO_LATENCY
    fifo_depth: int = FIFO_DEPTH
    image_gap: int = 0

    def __post_init__(self):
        minimum = {"window_latency": 1, "max_pool_latency": 1, "avg_pool_latency": 1,
                   "global_pool_latency": 1, "join_latency": 1, "fifo_latency": 1,
                   "fifo_depth": 1}
        for f in fields(self):
            v, lo = getattr(self, f.name), minimum.get(f.name, 0)
            check_int(f"timing.{f.name}", v, lo)
        if self.fifo_depth < self.fifo_latency + self.fork_latency + 1:
            raise UserError(f"timing.fifo_depth: must be at least fifo_latency + fork_latency + 1 "
                            f"= {self.fifo_latency + self.fork_latency + 1} for one beat per "
                            f"cycle, not {self.fifo_depth}")


# --- stage latencies, composed -------------------------------------------------------------------

def steps(layer, arch) -> int:
    """Issue cycles of one MVM of the layer's widest column tile: column groups x bit planes x
    row folds (`imcflow.sw.arch.CrossbarParams.steps`)."""
    return arch.crossbar.steps(layer.tile_cols, layer.row_folds)


def engine_latency(layer, arch, timing: BlockTiming) -> int:
    """Cycles from a stage's engine taking an input (a window; a pixel for joins and global
    pooling) to the output handshake, when nothing stalls: the layer kind's
    `~imcflow.sw.ops.Op.latency` (by default its role's, `ROLE_LATENCY`)."""
    return layer.op.latency(layer, arch, timing)


def passes_latency(layer, timing: BlockTiming) -> int:
    """The cycles the passes of the stage's shared requantization multipliers
    (`~imcflow.sw.mapper.LayerMapping.requant_passes`, ``Arch.requant_lanes``) beyond the first
    add to its engine latency: one each, in a block with a product register (a model whose
    accumulator or global pool latency is below 2 has none: its passes are not modelled), and
    for a join one more, its input registers (`join_registers`)."""
    registers = {"crossbar": timing.accumulator_latency, "gap": timing.global_pool_latency,
                 "join": timing.join_latency}.get(layer.role, 0)
    if registers < 2:
        return 0
    return layer.requant_passes - 1 + (layer.role == "join" and join_registers(layer, timing))


def join_registers(layer, timing: BlockTiming) -> bool:
    """Whether a join takes its inputs into registers before its products: with several
    passes, which read them (`~imcflow.hw.residual.Join`); a model whose join latency is below
    2 does not model its passes."""
    return layer.requant_passes > 1 and timing.join_latency >= 2


def crossbar_engine_latency(layer, arch, timing: BlockTiming) -> int:
    """A crossbar stage's engine: its tiles, the accumulator and, with copies, the merge."""
    return (tile_latency(steps(layer, arch), arch.mac_stages)
            - CROSSBAR_REGISTERS + timing.crossbar_latency + timing.accumulator_latency
            + passes_latency(layer, timing)
            + (timing.merge_latency if layer.replication > 1 else 0))


#: The engine latency of the roles with one block, ``f(layer, arch, timing)``: what an op of that
#: role has unless it declares its own (`~imcflow.sw.ops.Op.latency`); a ``pool`` kind names its
#: reducer's, a ``fused`` kind has no stage.
ROLE_LATENCY = {
    "source": lambda layer, arch, timing: 0,
    "crossbar": crossbar_engine_latency,
    "gap": lambda layer, arch, timing: (timing.global_pool_latency
                                        + passes_latency(layer, timing)),
    "join": lambda layer, arch, timing: timing.join_latency + passes_latency(layer, timing),
}


def fill_latency(layer, arch, timing: BlockTiming) -> int:
    """Cycles from the handshake of the last input pixel an output needs to that output's
    handshake, when nothing stalls."""
    window = source_latency(layer, timing) if layer.role in ("crossbar", "pool") else 0
    return window + engine_latency(layer, arch, timing)


def link_latency(timing: BlockTiming, consumers: int) -> int:
    """Cycles from a producer's output handshake to the beat valid at one of its consumers."""
    return timing.fifo_latency + (timing.fork_latency if consumers > 1 else 0)


def capacity(layer, arch, timing: BlockTiming) -> int:
    """Inputs an engine (one copy) holds between taking them and their output handshake: the
    issue stage holds one for all its steps, every later register one (every block's registers
    are elastic: each takes when the next is empty or being emptied), the accumulator's product
    register one for all its passes."""
    issue = steps(layer, arch) - 1 if layer.role == "crossbar" else 0
    return engine_latency(layer, arch, timing) - issue - passes_latency(layer, timing)


# --- the window schedule -------------------------------------------------------------------------

def window_ports(taps: int, passes: int) -> tuple[int, int]:
    """``(ports, passes)`` of a window source that reads its ``taps`` taps over at most
    ``passes`` cycles: ``ceil(taps / passes)`` read ports, and the fewest passes they need (9
    taps over 4 passes: 3 ports, 3 passes)."""
    ports = -(-taps // passes)
    return ports, -(-taps // ports)


def source_latency(layer, timing: BlockTiming) -> int:
    """A window stage's window source: from the handshake of a window's last pixel to the window
    valid, when nothing stalls: `BlockTiming.window_latency`, a cycle per read pass beyond the
    first (`~imcflow.sw.mapper.LayerMapping.window_passes`) and, with several, one more (the
    buffer's ports are then not transparent: a pixel is readable the cycle after its
    handshake)."""
    passes = layer.window_passes
    return timing.window_latency + passes - 1 + (passes > 1)


def window_needs(geometry: WindowGeometry, *,
                 strategy: str = "line") -> tuple[np.ndarray, np.ndarray, int]:
    """The window buffer's rules for ``geometry``: ``(keep, last, words)``.

    For each window of an image in output raster order, ``keep`` is the oldest input pixel it or
    a later window needs (the buffer may overwrite the pixels before it) and ``last`` the last
    input pixel that must have arrived before it is read (windows leave in order: a running
    maximum); ``words`` is the buffer's depth in pixels. A frame buffer reads an image's windows
    once all of it has arrived and holds `FRAME_IMAGES` images.
    """
    if strategy not in ("line", "frame"):
        raise ValueError(f"Strategy must be 'line' or 'frame', not {strategy!r}")
    first, last = geometry.input_range()
    if strategy == "frame":
        pixels = geometry.pixels
        return (np.zeros_like(first), np.full_like(last, pixels - 1), FRAME_IMAGES * pixels)
    return (np.minimum.accumulate(first[::-1])[::-1], np.maximum.accumulate(last),
            geometry.line_words)


def window_rules(geometry: WindowGeometry, *, strategy: str = "line",
                 images: int = 1) -> tuple[list, list]:
    """`window_needs` over ``images`` images back to back, as the two lists the window schedule
    (`accept_pixels`, `read_windows`) reads: ``need[j]``, the input pixel (counted over all
    images) whose handshake window ``j`` waits for, and ``slot[i]``, the windows that must have
    been read before pixel ``i`` is accepted, because it overwrites what they need (for a frame
    buffer, the pixels of image ``n - FRAME_IMAGES``)."""
    keep, last, words = window_needs(geometry, strategy=strategy)
    offsets = np.repeat(np.arange(images, dtype=np.int64), len(last)) * geometry.pixels
    need = np.tile(last, images) + offsets
    pixels = np.arange(images * geometry.pixels)
    slot = np.searchsorted(np.tile(keep, images) + offsets, pixels - words, side="right")
    return need.tolist(), slot.tolist()


def accept_pixels(take: list, slot: list, arrived, link: int, freed: list, delay: int) -> bool:
    """Append to ``take`` the input handshakes whose constraints are known; returns whether any.

    Input ``i`` is taken in the first cycle that is at least ``link`` cycles after
    ``arrived[i]`` (the producer's output handshake), after input ``i - 1``'s, and ``delay``
    cycles after ``freed[slot[i] - 1]`` (for a window buffer: the start of the read of the last
    window that needs what pixel ``i`` overwrites, `window_rules`; ``delay`` its passes, the
    pixel is written in the cycle after the last). ``arrived`` and ``freed`` may still grow.
    """
    n = start = len(take)
    limit = min(len(slot), len(arrived))
    done = len(freed)
    while n < limit:
        s = slot[n]
        if s > done:
            break
        x = arrived[n] + link
        if n and take[n - 1] >= x:
            x = take[n - 1] + 1
        if s and freed[s - 1] + delay > x:
            x = freed[s - 1] + delay
        take.append(x)
        n += 1
    return n > start


def read_windows(read: list, take: list, need: list, hand: list, latency: int,
                 passes: int = 1) -> bool:
    """Append to ``read`` the cycles windows start being read into the window source's output
    registers whose constraints are known; returns whether any.

    Window ``j`` is read in the cycle of the handshake of pixel ``need[j]`` (`window_rules`) or
    later, ``passes`` cycles after window ``j - 1`` (its read takes ``passes`` cycles), and once
    the ``latency`` registers before its output have room: not before ``hand[j - latency]``, the
    output handshake of the window ``latency`` places ahead (each register takes when it is
    empty or being emptied). With several passes both a cycle later: the buffer's ports are then
    not transparent, and the read starts only when the output register is empty. It is valid
    at the output ``latency + passes - 1`` cycles after its read starts (`source_latency`).
    ``take`` and ``hand`` may still grow.
    """
    n = start = len(read)
    end, taken, handed = len(need), len(take), len(hand)
    lag = passes > 1
    while n < end and need[n] < taken and (n < latency or n - latency < handed):
        x = take[need[n]] + lag
        if n:
            if read[n - 1] + passes > x:
                x = read[n - 1] + passes
            if n >= latency and hand[n - latency] + lag > x:
                x = hand[n - latency] + lag
        read.append(x)
        n += 1
    return n > start


def window_schedule(geometry: WindowGeometry, *, strategy: str = "line", images: int = 1,
                    passes: int = 1):
    """Cycle-accurate timing of a `~imcflow.hw.im2col.WindowSource` of ``geometry`` (reading a
    window over ``passes`` cycles, `window_ports`) whose input is always valid and output always
    ready.

    Returns ``(pixels, windows)``: int arrays of the cycle of each input handshake and of the
    first cycle each window is valid on ``o``, counting from the cycle the first pixel is offered
    (cycle 0), over ``images`` images back to back. The rules are `window_rules`', solved by
    `accept_pixels` and `read_windows`: a pixel is accepted unless it would overwrite a pixel
    still needed (line) or the image being read (frame); a window is read in the cycle its last
    pixel is accepted or later, one per ``passes`` cycles, and is valid `WINDOW_LATENCY` +
    ``passes - 1`` cycles later; the pixels it needs are kept until its last pass. The
    performance model's window stages are the same two functions, under stalls and with the
    consumer's handshakes (`imcflow.sw.perf`).
    """
    _, passes = window_ports(geometry.taps, passes)
    need, slot = window_rules(geometry, strategy=strategy, images=images)
    take, read, valid = [], [], []
    offered = range(len(slot))  # always valid: pixel i is offered from cycle i on
    while len(read) < len(need) or len(take) < len(slot):
        moved = accept_pixels(take, slot, offered, 0, read, passes)
        moved |= read_windows(read, take, need, valid, WINDOW_LATENCY, passes)
        # taken as soon as valid
        valid.extend(r + WINDOW_LATENCY + passes - 1 for r in read[len(valid):])
        if not moved:
            raise AssertionError("window_schedule: the window rules deadlock")
    return np.array(take, dtype=np.int64), np.array(valid, dtype=np.int64)
