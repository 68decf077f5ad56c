"""`Bank`: independent components side by side in one toplevel, so one Verilator build checks them
all.

Every parameter of an imcflow block (geometry, weights, gains) is part of its RTL, so each
configuration would need its own build. A regression instead puts many configurations in one
`Bank` and drives all of them at once from a cocotb testbench::

    bank = Bank({f"u{k}": block for k, block in enumerate(blocks)})
    build = runner.build(bank, name="join_bank")

Port ``p`` of unit ``name`` becomes the toplevel's port ``<name>_<p>`` (in Verilog
``<name>_<p>__valid``, ``<name>_<p>__ready``, ``<name>_<p>__payload``), so the testbench addresses
a unit's streams by the prefix ``<name>_``. Arrays of ports (``In(...).array(n)``) keep their
dimensions.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

__all__ = ["Bank"]


def _leaves(outer, inner, dimensions):
    """Pairs of corresponding elements of two (possibly nested) port arrays."""
    if not dimensions:
        yield outer, inner
        return
    for a, b in zip(outer, inner):
        yield from _leaves(a, b, dimensions[1:])


class Bank(wiring.Component):
    """Independent components side by side in one toplevel.

    Parameters
    ----------
    units : dict of str to wiring.Component
        The components by name; ``name`` prefixes their ports (``<name>_<port>``) and names their
        submodules. Names must be Verilog identifiers.
    """

    def __init__(self, units: dict):
        self.units = dict(units)
        super().__init__({f"{name}_{port}": member for name, unit in self.units.items()
                          for port, member in unit.signature.members.items()})

    def elaborate(self, platform):
        m = Module()
        for name, unit in self.units.items():
            m.submodules[name] = unit
            for port, member in unit.signature.members.items():
                outer, inner = getattr(self, f"{name}_{port}"), getattr(unit, port)
                for a, b in _leaves(outer, inner, member.dimensions):
                    if member.is_port:                      # a plain signal
                        m.d.comb += (b.eq(a) if member.flow == In else a.eq(b))
                    else:
                        wiring.connect(m, wiring.flipped(a), b)
        return m
