"""The deadlock diagnosis of a stuck accelerator, from its ``status`` port.

A generated top (`imcflow.gen.accelerator`) reports four bits per inter-stage link on ``status``
(the manifest's ``status.links`` says which); `link_states` decodes them and `diagnose` names the
stalled stage, the full FIFOs and the starved stages. Both `imcflow.verif.sim` (the C++ engine's
watchdog) and the cocotb testbench `imcflow.verif.accelerator_tb` use it; it imports only the
standard library, so the testbench's process stays light.
"""

from __future__ import annotations

__all__ = ["link_states", "diagnose"]


def link_states(status: int, links: list[dict]) -> list[dict]:
    """Each link of the manifest's ``status.links`` with its four status bits decoded."""
    names = ("in_valid", "in_ready", "out_valid", "out_ready")
    return [{**link, **{name: bool(status >> (link["bit"] + k) & 1)
                        for k, name in enumerate(names)}} for link in links]


def diagnose(status: int, links: list[dict], *, idle_cycles: int, bound: int) -> str:
    """A one-paragraph deadlock report from the ``status`` port of a stuck accelerator.

    A FIFO is full when its input is not ready; a stage input is empty when its FIFO offers
    nothing. The stalled stage is one whose inputs disagree: one holds beats that it cannot use
    while another is empty (a join waiting for its main path while its skip FIFO is full is the
    classic case: the fork cannot pass the next pixel to the main path).
    """
    states = link_states(status, links)
    inputs: dict[str, list[dict]] = {}
    for s in states:
        inputs.setdefault(s["consumer"], []).append(s)

    def where(s):
        skip = f" (skip FIFO, {s['depth']} words)" if s["kind"] == "skip" else ""
        return f"{s['producer']!r}{skip}"

    parts = [f"deadlock: no output handshake for {idle_cycles} cycles (watchdog bound {bound})"]
    for consumer, ins in inputs.items():
        holding = [s for s in ins if s["out_valid"]]
        empty = [s for s in ins if not s["out_valid"]]
        if holding and empty:
            parts.append(
                f"stalled stage {consumer!r}: waits for its input from "
                f"{', '.join(where(s) for s in empty)} while its input from "
                f"{', '.join(where(s) for s in holding)} holds beats"
                + ("".join(f"; the skip FIFO from {s['producer']!r} is full, so "
                           f"{s['producer']!r} cannot pass the next beat on to the main path"
                           for s in holding if s["kind"] == "skip" and not s["in_ready"])))
    full = [f"{s['producer']}->{s['consumer']}" for s in states if not s["in_ready"]]
    starved = sorted({s["consumer"] for s in states if not s["out_valid"]})
    parts.append(f"full FIFOs: {', '.join(full) or 'none'}")
    parts.append(f"stages with an empty input: {', '.join(starved) or 'none'}")
    return "; ".join(parts)
