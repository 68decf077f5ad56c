"""How an accelerator is laid out on a board's memories.

Multipliers need no plan: the behavioural crossbar (`imcflow.hw.crossbar.CrossbarTile`) sums
its products as adder trees over the weight bits, so it has no multipliers at all, and the few
wide multiplies left (requantization of an accumulator by a 16-bit constant, one per output
channel; joins and average pools) go to the DSPs, as Yosys maps them by default (122 for digits,
of the LFE5U-85F's 156).

Memories. A window buffer (`imcflow.hw.linebuffer.LineBuffer`, `~imcflow.hw.framebuffer.FrameBuffer`)
is read through one port per kernel tap (9 for a 3x3 kernel). Left to itself, Yosys builds such
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

__all__ = ["BRAM_RESERVE", "MemoryUse", "memories", "memory_plan", "multipliers",
           "multiplier_plan", "yosys_script", "LOGIC", "Estimate", "estimate"]

#: fraction of the block RAMs `memory_plan` leaves to the memories it does not place
BRAM_RESERVE = 0.1


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
    """Block RAM for the multi-port memories, largest first, while `board`'s block RAMs last.

    A memory with ``R`` read ports takes ``R * ceil(width / W) * ceil(depth / D)`` block RAMs
    (``W x D`` the widest configuration of one block RAM: 36 x 512 on ECP5, 16 x 256 on iCE40).

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
    return {"placements": placements, "brams": used, "available": board.brams}


def multipliers(elaboratable, path: str) -> list[str]:
    """The requantization products of every `~imcflow.hw.accumulator.AdcAccumulator` in
    ``elaboratable`` (elaborated without a platform), one per output column, in the order of the
    design: ``<module>/w:prod<column>``, the Yosys wire each multiply drives, in the design
    whose hierarchy puts ``elaboratable`` at ``path``."""

    found = []

    def walk(fragment, where):
        for sub, name, _ in fragment.subfragments:
            here = f"{where}.{name}"
            accumulator = next((o for o in getattr(sub, "origins", None) or ()
                                if isinstance(o, AdcAccumulator)), None)
            if accumulator is not None:
                found.extend(f"{here}/w:prod{c}" for c in range(accumulator.cols))
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

#: LUT4s per (row x column-per-cycle x weight bit x input bit) of a crossbar tile: a gate and a
#: full adder per bit of every product's adder tree
TREE_LUTS = 2.0
#: LUT4s per stored weight bit of a tile that steps over column groups (a 16:1 LUT multiplexer
#: is 5 LUT4s); a tile without groups folds its constant weights into the trees at half the cost
ROM_LUTS, CONSTANT_TREE = 5 / 16, 0.5
#: flip-flops per (tree input bit x pipeline stage) of the adder trees (a stage cuts a tree
#: where its partial sums are about an eighth as many)
STAGE_FFS = 1 / 8
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


@dataclass(frozen=True)
class Estimate:
    """Estimated LUT4s, flip-flops, block RAMs and DSPs of a mapped network on a board, with the
    largest consumers (``consumers``: stage name -> its LUT4s)."""

    luts: int
    ffs: int
    brams: int
    dsps: int
    consumers: dict

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
                + ", ".join(f"{name} {luts:,} LUT4" for name, luts in top))


def estimate(mapping, board) -> Estimate:
    """LUT4s, flip-flops, block RAMs and DSPs of ``mapping``'s accelerator behind the host link on
    ``board``, from the mapping alone (seconds, no elaboration).

    Per crossbar tile of ``R`` rows stepping ``p`` columns per cycle over ``W``-bit weights and
    ``A``-bit inputs (1 for ``bit_serial``): ``TREE_LUTS * R*p*W*A`` LUT4s plus ``ROM_LUTS`` per
    stored weight bit, and ``mac_stages * STAGE_FFS * R*p*W*A`` flip-flops. Per output channel of
    a crossbar layer copy, a join input, a global or average pool: one DSP (the requantization
    multiply; digits: 122, as measured) and ``CHANNEL_LUTS``/``CHANNEL_FFS``. Window buffers with
    several read ports take block RAMs as `memory_plan` places them (one copy per port; digits:
    117, as measured), the rest LUT-RAM or flip-flops. On the iCE40 the products beyond its
    DSPs take ``MULT_LUTS`` LUT4s each (`multiplier_plan`). The constants come from single-block
    Yosys runs (docs/fpga.md); against the full digits ULX3S build the estimate has the DSPs and block
    RAMs exactly, LUT4s 11.5 % and flip-flops 15.3 % low (`tests/test_fpga_fit.py`).
    """
    arch = mapping.arch
    stages = {l.name: l for l in mapping.stages}
    consumers, luts, ffs, dsps = {}, HOST_LUTS, HOST_FFS, 0
    windows = []
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
            w = arch.weight_bits
            for rows, cols in l.built_tiles(arch):  # a grouped conv's empty tiles are not built
                p = arch.columns_per_cycle(cols)
                tree = rows * p * w * a
                if p < cols:
                    stage_luts += l.replication * (TREE_LUTS * tree + ROM_LUTS * rows * w * cols)
                else:
                    stage_luts += l.replication * CONSTANT_TREE * TREE_LUTS * tree
                stage_ffs += l.replication * arch.mac_stages * STAGE_FFS * tree
            channels = l.cols * l.replication
        elif l.role == "join":
            channels = 2 * l.out_shape.c
        elif l.op.requantizing:  # global and average pooling
            channels = l.out_shape.c
        else:
            channels = 0
        dsps += channels
        stage_luts += CHANNEL_LUTS * channels
        stage_ffs += CHANNEL_FFS * channels
        if l.buffer in ("line", "frame"):
            ports = l.kernel ** 2
            windows.append((l.name, ports, c_in * in_bits, l.buffer_words))
            stage_ffs += ports * c_in * in_bits           # the window register
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
    return Estimate(round(luts), round(ffs), brams, dsps,
                    {k: round(v) for k, v in consumers.items()})
