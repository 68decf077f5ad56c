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

`yosys_script` turns the plan into the commands run after reading the design; the build report
records it (``memories``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


__all__ = ["BRAM_RESERVE", "MemoryUse", "memories", "memory_plan", "yosys_script"]

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


def yosys_script(memory: dict) -> str:
    """The Yosys commands of the memory plan, run after the design is read (``proc`` first:
    Yosys ignores modules that still hold processes when it selects)."""
    commands = ["proc"]
    for p in memory["placements"]:
        if p["style"] != "auto":
            target = f"{p['path'].rsplit('.', 1)[0]}/m:{p['path'].rsplit('.', 1)[1]}"
            commands += [f"select -assert-count 1 {target}",
                         f'setattr -set ram_style "{p["style"]}" {target}']
    return "; ".join(commands) if len(commands) > 1 else ""
