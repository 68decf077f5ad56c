"""How an accelerator is laid out on a board's resources: multipliers and memories.

Multipliers. The behavioural crossbar (`imcflow.hw.crossbar.CrossbarTile`) forms, every cycle,
the products of the ``rows`` inputs of a tile with the weights of ``p = col_parallelism``
columns: ``rows * p`` multiplications of an activation (``act_bits + 1`` bits, signed) by a
weight (``weight_bits`` bits). The weights come from a small ROM addressed by the column group,
so they are variables to synthesis, and Yosys maps each product onto an 18x18 DSP multiplier by
default: the digits network at ``p = 4`` has 1,828 of them, the LFE5U-85F 156. Requantization
multiplies (an accumulator by a 16-bit constant, one per output channel; joins and pools) are
wide and few: they belong in the DSPs. `multiplier_plan` decides: when the crossbar products do
not all fit into the board's DSPs, every multiplication of two operands of at most
``SMALL_BITS`` bits is turned into LUT logic (Yosys' ``booth`` pass) and only the wide ones use
DSPs.

Memories. A window buffer (`imcflow.hw.linebuffer.LineBuffer`, `~imcflow.hw.framebuffer.FrameBuffer`)
is read through one port per kernel tap (9 for a 3x3 kernel). Left to itself, Yosys builds such
a memory from flip-flops and read multiplexers: one 3x3x16-channel line buffer of an 8x8 map
costs 20,602 LUT4 and 3,617 flip-flops that way, 3,611 LUT4 and 576 LUT-RAM cells as
distributed RAM, 1,307 LUT4 and 36 DP16KD as block RAM (one copy per read port). `memory_plan`
puts the multi-port memories into block RAM, largest first, while the board's block RAMs last
(keeping ``BRAM_RESERVE`` of them free), and the others into LUT-RAM (ECP5) or leaves them to
Yosys (iCE40, which has no LUT-RAM); it passes the choice to Yosys as a ``ram_style`` attribute
on each memory, checking that each memory's path selects exactly one memory.

`yosys_script` joins both plans into the commands run after reading the design; the build report
records them (``multipliers``, ``memories``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from imcflow.sw.golden import tile_slices

__all__ = ["SMALL_BITS", "BRAM_RESERVE", "crossbar_products", "multiplier_plan", "MemoryUse",
           "memories", "memory_plan", "yosys_script"]

#: operands of at most this many bits are multiplied in LUTs when the DSPs run out
#: (activations are at most 8 bits, 9 signed; weights at most 8)
SMALL_BITS = 9


def crossbar_products(qnet) -> int:
    """Multiplications the crossbar tiles of ``qnet`` perform per cycle: the sum over every
    tile of ``rows * min(col_parallelism, cols)``; 0 for ``bit_serial`` input, whose products
    with one bit plane are AND gates."""
    arch = qnet.arch
    if arch.input_encoding == "bit_serial":
        return 0
    total = 0
    for q in qnet.crossbar_layers:
        for rows in tile_slices(q.rows, arch.rows):
            for cols in tile_slices(q.cols, arch.cols):
                width = cols.stop - cols.start
                total += (rows.stop - rows.start) * min(arch.col_parallelism or width, width)
    return total


def multiplier_plan(qnet, board) -> dict:
    """Where the multiplications go on ``board``.

    Returns
    -------
    dict
        ``crossbar_products``, ``dsps`` (available) and ``small_in_luts`` (whether operands of
        at most `SMALL_BITS` bits are multiplied in LUTs).
    """
    products = crossbar_products(qnet)
    in_luts = products > board.dsps
    return {"crossbar_products": products, "dsps": board.dsps, "small_in_luts": in_luts}


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
    from amaranth.hdl import Fragment, Shape
    from amaranth.lib.memory import Memory

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


def yosys_script(multipliers: dict, memory: dict) -> str:
    """The Yosys commands of both plans, run after the design is read (``proc`` first: Yosys
    ignores modules that still hold processes when it selects)."""
    commands = ["proc"]
    if multipliers["small_in_luts"]:
        commands.append(f"booth t:$mul r:A_WIDTH<={SMALL_BITS} %i r:B_WIDTH<={SMALL_BITS} %i")
    for p in memory["placements"]:
        if p["style"] != "auto":
            target = f"{p['path'].rsplit('.', 1)[0]}/m:{p['path'].rsplit('.', 1)[1]}"
            commands += [f"select -assert-count 1 {target}",
                         f'setattr -set ram_style "{p["style"]}" {target}']
    return "; ".join(commands) if len(commands) > 1 else ""
