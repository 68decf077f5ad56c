"""How an accelerator is laid out on a board's memories.

Multipliers need no plan: the behavioural crossbar (`imcflow.hw.crossbar.CrossbarTile`) sums
its products as adder trees over the weight bits, so it has no multipliers at all, and the few
wide multiplies left (requantization of an accumulator by a 16-bit constant, one per output
channel; joins and average pools) go to the DSPs, as Yosys maps them by default (122 for digits,
of the LFE5U-85F's 156).

Memories. A window buffer (`imcflow.hw.linebuffer.LineBuffer`, `~imcflow.hw.framebuffer.FrameBuffer`)
is read through one port per kernel tap (9 for a 3x3 kernel; fewer with `Arch.window_ports`,
which reads a window over several cycles). Left to itself, Yosys builds such
a memory from flip-flops and read multiplexers: one 3x3x16-channel line buffer of an 8x8 map
costs 20,602 LUT4 and 3,617 flip-flops that way, 3,611 LUT4 and 576 LUT-RAM cells as
distributed RAM, 1,307 LUT4 and 36 DP16KD as block RAM (one copy per read port). `memory_plan`
puts the multi-port memories into block RAM, largest first, while the board's block RAMs last
(keeping ``BRAM_RESERVE`` of them free), and the others into LUT-RAM (ECP5) or leaves them to
Yosys (iCE40, which has no LUT-RAM); it passes the choice to Yosys as a ``ram_style`` attribute
on each memory, checking that each memory's path selects exactly one memory.

Multipliers on the iCE40 UP5K. Its Yosys flow maps multiplies to logic unless ``synth_ice40
-dsp``, and then maps every one to an SB_MAC16, of which the UP5K has 8. A requantization
multiply in logic costs about 165 LUT4s, in a DSP about 17 (measured with ``synth_ice40
-noflatten``); `multiplier_plan` keeps the first ``board.dsps`` requantization products of the
accumulators (`multipliers`) in DSPs and maps the others to logic before synthesis. On the ECP5
(156 MULT18X18D) Yosys' default, every multiply in a DSP, is the plan.

`yosys_script` turns the plans into the commands run after reading the design; the build report
records them (``memories``, ``multipliers``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from amaranth.hdl import Fragment, Shape
from amaranth.lib.memory import Memory

from imcflow.hw.accumulator import AdcAccumulator
from imcflow.sw.timing import window_ports

__all__ = ["BRAM_RESERVE", "MemoryUse", "memories", "memory_plan", "multipliers",
           "multiplier_plan", "yosys_script", "LOGIC", "Estimate", "estimate"]

#: fraction of the block RAMs `memory_plan` leaves to the memories it does not place
BRAM_RESERVE = 0.1
#: the name of a crossbar tile's weight memory (`imcflow.hw.crossbar.CrossbarTile`)
WEIGHTS = "weights"


@dataclass(frozen=True)
class MemoryUse:
    """One `amaranth.lib.memory.Memory` of a design: its hierarchical path (Yosys module and
    memory name joined by ``.``), depth, width in bits and ports."""

    path: str
    depth: int
    width: int
    read_ports: int
    write_ports: int

    @property
    def module(self) -> str:
        return self.path.rsplit(".", 1)[0]

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[1]


def memories(elaboratable, path: str) -> list[MemoryUse]:
    """Every memory of ``elaboratable`` (elaborated without a platform), named as in the
    design whose hierarchy puts ``elaboratable`` at ``path`` (e.g. ``top.system``)."""

    found = []

    def walk(fragment, where):
        for sub, name, _ in fragment.subfragments:
            here = f"{where}.{name}"
            memory = next((o for o in getattr(sub, "origins", None) or ()
                           if isinstance(o, Memory)), None)
            if memory is not None:
                found.append(MemoryUse(here, memory.depth, Shape.cast(memory.shape).width,
                                       len(memory.read_ports), len(memory.write_ports)))
            else:
                walk(sub, here)

    walk(Fragment.get(elaboratable, None), path)
    return found


def memory_plan(uses: list[MemoryUse], board) -> dict:
    """Block RAM for the multi-port memories, largest first, while `board`'s block RAMs last,
    then for the crossbar tiles' weight memories deeper than `WEIGHT_BRAM_WORDS` words (row
    folds make them deep and narrow), largest first; the rest is left to Yosys.

    A memory with ``R`` read ports takes ``R * ceil(width / W) * ceil(depth / D)`` block RAMs
    (``W x D`` the widest configuration of one block RAM: 36 x 512 on ECP5, 16 x 256 on iCE40),
    a weight memory `bram_blocks`.

    Returns
    -------
    dict
        ``placements`` (path, depth, width, read ports, ``style``: ``block``, ``distributed`` or
        ``auto``, estimated ``brams``), ``brams`` (estimated total), ``available``.
    """
    budget = math.floor(board.brams * (1 - BRAM_RESERVE))
    multi = sorted((u for u in uses if u.read_ports > 1),
                   key=lambda u: u.read_ports * u.width * u.depth, reverse=True)
    placements, used = [], 0
    for u in multi:
        blocks = (u.read_ports * math.ceil(u.width / board.bram_width)
                  * math.ceil(u.depth / board.bram_depth))
        if used + blocks <= budget:
            style, used = "block", used + blocks
        else:
            style, blocks = ("distributed" if board.lutram else "auto"), 0
        placements.append({**asdict(u), "style": style, "brams": blocks})
    weights = sorted((u for u in uses if u.read_ports == 1 and u.name == WEIGHTS
                      and u.depth > WEIGHT_BRAM_WORDS),
                     key=lambda u: u.width * u.depth, reverse=True)
    for u in weights:
        blocks = bram_blocks(u.width, u.depth, board)
        if used + blocks <= budget:
            used += blocks
            placements.append({**asdict(u), "style": "block", "brams": blocks})
    return {"placements": placements, "brams": used, "available": board.brams}


def multipliers(elaboratable, path: str) -> list[str]:
    """The requantization products of every `~imcflow.hw.accumulator.AdcAccumulator` in
    ``elaboratable`` (elaborated without a platform), one per multiplier (its ``lanes``: a column
    each, or with ``requant_lanes`` shared over its passes), in the order of the design:
    ``<module>/w:prod<column>``, the register each multiply drives (a multiplier's first), in
    the design whose hierarchy puts ``elaboratable`` at ``path``."""

    found = []

    def walk(fragment, where):
        for sub, name, _ in fragment.subfragments:
            here = f"{where}.{name}"
            accumulator = next((o for o in getattr(sub, "origins", None) or ()
                                if isinstance(o, AdcAccumulator)), None)
            if accumulator is not None:
                found.extend(f"{here}/w:prod{c}" for c in range(accumulator.lanes))
            walk(sub, here)

    walk(Fragment.get(elaboratable, None), path)
    return found


def multiplier_plan(products: list[str], board) -> dict:
    """Which requantization products go to DSPs on ``board``: on the iCE40 the first
    ``board.dsps`` (the others to logic), on the ECP5 all (Yosys' default).

    Returns
    -------
    dict
        ``dsp`` and ``logic`` (the products, as `multipliers` names them), ``dsps`` (used) and
        ``available``.
    """
    keep = board.dsps if board.family == "ice40" else len(products)
    return {"dsp": products[:keep], "logic": products[keep:], "dsps": min(keep, len(products)),
            "available": board.dsps}


def yosys_script(memory: dict, multiplier: dict | None = None) -> str:
    """The Yosys commands of the memory plan and the multiplier plan, run after the design is
    read (``proc`` first: Yosys ignores modules that still hold processes when it selects). A
    product in logic is the one multiply in the input cone of its ``prod`` register, mapped to
    gates (``techmap``) so that ``synth_ice40 -dsp`` leaves it to the LUTs."""
    commands = ["proc"]
    for p in memory["placements"]:
        if p["style"] != "auto":
            target = f"{p['path'].rsplit('.', 1)[0]}/m:{p['path'].rsplit('.', 1)[1]}"
            commands += [f"select -assert-count 1 {target}",
                         f'setattr -set ram_style "{p["style"]}" {target}']
    for product in (multiplier or {}).get("logic", ()):
        module = product.split("/", 1)[0]
        target = f"{product} %ci* {module}/t:$mul %i"
        commands += [f"select -assert-count 1 {target}", f"techmap {target}"]
    return "; ".join(commands) if len(commands) > 1 else ""


# --- the fit check: a resource estimate from the mapping, before synthesis -----------------------

#: LUT4s per adder-tree input bit of a crossbar tile (row of a row fold x column per cycle x
#: weight bit x input bit): the gate and the adder bits behind it. Measured with synth_ecp5 on a
#: 144 x 16 tile at p = 1, mac_stages = 3, CCU2C counted as two LUT4s (as nextpnr's
#: TRELLIS_COMB): 13,422 LUT4 at row_folds = 1, 7,274 at 2, 4,140 at 4, 2,551 at 8; 3,407 for
#: 36 x 16 at 1. A tile without column groups or row folds folds its constant weights into the
#: trees at half the cost.
TREE_LUTS, CONSTANT_TREE = 2.7, 0.5
#: LUT4s per input bit of a tile's rows when it steps over row folds (the fold's input select)
FOLD_LUTS = 0.8
#: LUT4s per bit of a weight memory word per 16 words when the weights are a LUT ROM
ROM_LUTS = 1.0
#: a tile's control (step counters, tags, stall)
TILE_LUTS = 100
#: weight memories deeper than this go to block RAM while it lasts (`memory_plan`), the others
#: are LUT ROMs (Yosys' own choice for 16 words)
WEIGHT_BRAM_WORDS = 16
#: flip-flops per (tree input bit x pipeline stage) of the adder trees (a stage cuts a tree
#: where its partial sums are about an eighth as many; fitted to the whole digits build, in
#: which Yosys keeps fewer than the 5,466 of the 144 x 16 tile alone)
STAGE_FFS = 1 / 8
#: (width, depth) configurations of one block RAM as a ROM or single-port RAM
BRAM_SHAPES = {"ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
               "ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048))}
#: LUT4s and flip-flops per output channel of a requantizing stage (bias, rounding, saturation
#: and the accumulator register around its DSP multiply)
CHANNEL_LUTS, CHANNEL_FFS = 60, 40
#: per bit of a stream register or a 2-deep FIFO between stages
LINK_LUTS, LINK_FFS = 1.0, 3.0
#: LUT4s per block RAM of a window buffer in block RAM (addressing and tap multiplexers)
BRAM_LUTS = 36
#: a window buffer in LUT-RAM (ECP5): LUT4s per read port x bit x 16 words; from flip-flops
#: (iCE40): LUT4s per read port x bit x word, and one flip-flop per stored bit
LUTRAM_LUTS, FLOP_RAM_LUTS = 1.57, 0.94
#: LUT4s of a requantization multiply in logic, beyond the DSPs of an iCE40 (`multiplier_plan`;
#: 165 LUT4 per channel measured with synth_ice40 with and without ``-dsp``)
MULT_LUTS = 165
#: the UART host link, frame receiver and sender, image buffer and LEDs
HOST_LUTS, HOST_FFS = 1500, 1200
#: device -> (LUT4s, flip-flops): ECP5 slices hold two of each, iCE40 logic cells one of each
LOGIC = {"LFE5U-85F": (83_640, 83_640), "iCE40UP5K": (5_280, 5_280)}


def bram_blocks(width: int, depth: int, board) -> int:
    """Block RAMs of ``board`` holding a ``width`` x ``depth`` ROM or single-port memory, in the
    configuration (`BRAM_SHAPES`) that needs the fewest."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM_SHAPES[board.family])


@dataclass(frozen=True)
class Estimate:
    """Estimated LUT4s, flip-flops, block RAMs and DSPs of a mapped network on a board, with the
    largest consumers (``consumers``: stage name -> its LUT4s).

    ``crossbar_luts`` are the LUT4s of the crossbar tiles (adder trees, row-fold input select,
    weight ROMs, control), ``weight_brams`` the block RAMs holding tile weights (in ``brams``).
    ``macs_per_image`` are the multiply-accumulates the crossbars complete per image (output
    pixels x weights of every crossbar layer), ``cycles_per_image`` the pipeline's interval
    (`imcflow.sw.mapper.Mapping.cycles_per_image`, its slowest stage), ``peak_macs_per_cycle``
    what the tiles complete per cycle while all are busy (rows x columns per cycle / (bit
    planes x row folds), summed)."""

    luts: int
    ffs: int
    brams: int
    dsps: int
    consumers: dict
    crossbar_luts: int = 0
    weight_brams: int = 0
    macs_per_image: int = 0
    cycles_per_image: int = 0
    peak_macs_per_cycle: float = 0.0

    @property
    def macs_per_cycle(self) -> float:
        """Crossbar MACs completed per cycle at the pipeline's throughput."""
        return self.macs_per_image / self.cycles_per_image if self.cycles_per_image else 0.0

    @property
    def luts_per_mac_per_cycle(self) -> float:
        """LUT4s of the crossbar tiles per MAC they complete per cycle at the pipeline's
        throughput: the area cost of crossbar throughput (lower is better)."""
        return self.crossbar_luts / self.macs_per_cycle if self.macs_per_cycle else 0.0

    @property
    def luts_per_peak_mac_per_cycle(self) -> float:
        """The same per MAC per cycle of the tiles all busy (the tiles' own cost)."""
        return (self.crossbar_luts / self.peak_macs_per_cycle if self.peak_macs_per_cycle
                else 0.0)

    def crossbar(self) -> dict:
        """The crossbar figures, for reports: ``luts``, ``weight_brams``, ``macs_per_image``,
        ``cycles_per_image``, ``macs_per_cycle``, ``luts_per_mac_per_cycle``,
        ``peak_macs_per_cycle``, ``luts_per_peak_mac_per_cycle``."""
        return {"luts": self.crossbar_luts, "weight_brams": self.weight_brams,
                "macs_per_image": self.macs_per_image, "cycles_per_image": self.cycles_per_image,
                "macs_per_cycle": round(self.macs_per_cycle, 2),
                "luts_per_mac_per_cycle": round(self.luts_per_mac_per_cycle, 2),
                "peak_macs_per_cycle": round(self.peak_macs_per_cycle, 2),
                "luts_per_peak_mac_per_cycle": round(self.luts_per_peak_mac_per_cycle, 2)}

    def fractions(self, board) -> dict:
        luts, ffs = LOGIC[board.device]
        return {"luts": self.luts / luts, "ffs": self.ffs / ffs,
                "brams": self.brams / board.brams, "dsps": self.dsps / board.dsps}

    def fits(self, board) -> bool:
        return max(self.fractions(board).values()) <= 1

    def summary(self, board) -> str:
        """One line: each resource against the board, then the largest consumers."""
        f, (luts, ffs) = self.fractions(board), LOGIC[board.device]
        parts = [f"{self.luts:,} LUT4 of {luts:,} ({100 * f['luts']:.0f} %)",
                 f"{self.ffs:,} FF of {ffs:,} ({100 * f['ffs']:.0f} %)",
                 f"{self.brams} BRAM of {board.brams} ({100 * f['brams']:.0f} %)",
                 f"{self.dsps} DSP of {board.dsps} ({100 * f['dsps']:.0f} %)"]
        top = sorted(self.consumers.items(), key=lambda kv: -kv[1])[:3]
        return ("estimated " + ", ".join(parts) + "; largest: "
                + ", ".join(f"{name} {luts:,} LUT4" for name, luts in top)
                + f"; crossbars {self.crossbar_luts:,} LUT4, "
                  f"{self.luts_per_mac_per_cycle:.1f} LUT4 per MAC per cycle")


def estimate(mapping, board) -> Estimate:
    """LUT4s, flip-flops, block RAMs and DSPs of ``mapping``'s accelerator behind the host link on
    ``board``, from the mapping alone (seconds, no elaboration).

    Per crossbar tile of ``R`` rows stepping ``p`` columns per cycle over ``W``-bit weights and
    ``A``-bit inputs (1 for ``bit_serial``): ``TREE_LUTS * R*p*W*A`` LUT4s plus ``ROM_LUTS`` per
    stored weight bit, and ``mac_stages * STAGE_FFS * R*p*W*A`` flip-flops. Per output channel of
    a crossbar layer copy, a join input, a global or average pool: ``CHANNEL_LUTS``/
    ``CHANNEL_FFS`` and one DSP, the requantization multiply (digits: 122, as measured), but
    with ``requant_lanes`` only the shared multipliers (an accumulator's ``lanes``,
    `CrossbarParams.requant_passes`; a join's or global pool's, `LayerMapping.requant_passes`).
    Window buffers with several read ports take block RAMs as `memory_plan` places them (one
    copy per port; digits: 117, as measured), the rest LUT-RAM or flip-flops. On the iCE40 the products beyond its
    DSPs take ``MULT_LUTS`` LUT4s each (`multiplier_plan`). The constants come from single-block
    Yosys runs (docs/fpga.md); against the full digits ULX3S build the estimate has the DSPs and block
    RAMs exactly, LUT4s 11.5 % and flip-flops 15.3 % low (`tests/test_fpga_fit.py`).
    """
    arch = mapping.arch
    stages = {l.name: l for l in mapping.stages}
    consumers, luts, ffs, dsps = {}, HOST_LUTS, HOST_FFS, 0
    windows, weights = [], []                     # weights: (stage, copies, width, words)
    tile_luts = macs = peak = 0
    for l in mapping.stages:
        if l.role == "source":
            continue
        in_bits = 8 if any(stages[i].role == "source" for i in l.inputs) else arch.act_bits
        c_in = l.in_shape.c if l.in_shape is not None else l.out_shape.c
        stage_luts = stage_ffs = 0
        # the stream register and FIFO in front of each input
        link_bits = c_in * in_bits * len(l.inputs)
        stage_luts += LINK_LUTS * link_bits
        stage_ffs += LINK_FFS * link_bits
        if l.role == "crossbar":
            a = 1 if arch.input_encoding == "bit_serial" else in_bits
            w, folds = arch.weight_bits, l.row_folds
            for rows, cols in l.built_tiles(arch):  # a grouped conv's empty tiles are not built
                p = arch.columns_per_cycle(cols)
                chunk = -(-rows // folds)
                words = -(-cols // p) * folds
                tree = chunk * p * w * a
                tile = TILE_LUTS + (FOLD_LUTS * rows * a if folds > 1 else 0)
                if words > 1:
                    tile += TREE_LUTS * tree
                    weights.append((l.name, l.replication, p * chunk * w, words))
                else:
                    tile += CONSTANT_TREE * TREE_LUTS * tree
                tile_luts += l.replication * tile
                stage_luts += l.replication * tile
                stage_ffs += l.replication * arch.mac_stages * STAGE_FFS * tree
                peak += l.replication * rows * p / (arch.planes * folds)
            macs += l.output_pixels * l.weights
            channels = l.cols * l.replication
            # an accumulator per column tile, `lanes` multipliers each
            params = arch.replace(row_folds=folds).crossbar
            widths = [min(arch.cols, l.cols - u * arch.cols) for u in range(l.col_tiles)]
            products = l.replication * sum(-(-c // params.requant_passes(c)) for c in widths)
        elif l.role == "join":   # a pair of multipliers per lane, shared over its passes
            channels, products = 2 * l.out_shape.c, 2 * -(-l.out_shape.c // l.requant_passes)
        elif l.op.requantizing:  # global and average pooling
            channels, products = l.out_shape.c, -(-l.out_shape.c // l.requant_passes)
        else:
            channels = products = 0
        dsps += products
        stage_luts += CHANNEL_LUTS * channels
        stage_ffs += CHANNEL_FFS * channels
        if l.buffer in ("line", "frame"):
            ports, _ = window_ports(l.kernel ** 2, l.window_passes)
            windows.append((l.name, ports, c_in * in_bits, l.buffer_words))
            stage_ffs += l.kernel ** 2 * c_in * in_bits   # the window register
        elif l.buffer == "skip":
            windows.append((l.name, 1, c_in * in_bits, l.buffer_words))
        consumers[l.name] = stage_luts
        luts += stage_luts
        ffs += stage_ffs
    if board.family == "ice40" and dsps > board.dsps:   # the rest in logic (`multiplier_plan`)
        consumers["multiplies in logic"] = MULT_LUTS * (dsps - board.dsps)
        luts += MULT_LUTS * (dsps - board.dsps)
        dsps = board.dsps
    # window buffers and skip FIFOs: block RAM while it lasts (largest first), else LUT-RAM or
    # flip-flops, as `memory_plan` places them
    budget, brams = math.floor(board.brams * (1 - BRAM_RESERVE)), 0
    for name, ports, width, depth in sorted(windows, key=lambda m: -m[1] * m[2] * m[3]):
        blocks = ports * math.ceil(width / board.bram_width) * math.ceil(depth / board.bram_depth)
        if ports > 1 and brams + blocks <= budget:
            brams += blocks
            cost, cost_ffs = BRAM_LUTS * blocks, 0
        elif board.lutram:
            cost, cost_ffs = LUTRAM_LUTS * ports * width * math.ceil(depth / 16), 0
        else:
            cost, cost_ffs = FLOP_RAM_LUTS * ports * width * depth, width * depth
        consumers[name] += cost
        luts += cost
        ffs += cost_ffs
    # tile weight memories deeper than WEIGHT_BRAM_WORDS: block RAM while it lasts (largest
    # first), else LUT ROMs (`memory_plan`)
    weight_brams = 0
    for name, copies, width, words in sorted(weights, key=lambda m: -m[2] * m[3]):
        blocks = copies * bram_blocks(width, words, board)
        if words > WEIGHT_BRAM_WORDS and brams + blocks <= budget:
            brams += blocks
            weight_brams += blocks
            cost = BRAM_LUTS * blocks
        else:
            cost = copies * ROM_LUTS * width * math.ceil(words / 16)
        consumers[name] += cost
        luts += cost
        tile_luts += cost
    return Estimate(round(luts), round(ffs), brams, dsps,
                    {k: round(v) for k, v in consumers.items()}, crossbar_luts=round(tile_luts),
                    weight_brams=weight_brams, macs_per_image=macs,
                    cycles_per_image=mapping.cycles_per_image, peak_macs_per_cycle=peak)
