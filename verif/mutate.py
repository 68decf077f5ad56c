"""Mutation coverage of the hw blocks: how many injected RTL bugs the regression and proofs catch.

`imcflow mutate BLOCK` does what YosysHQ's MCY does, in one process:

1. The block's *mutation design* (a few configurations of it, side by side in a
   `~imcflow.verif.bank.Bank` when it has several) is converted to RTLIL with source locations
   and flattened by Yosys; ``mutate -list N -seed S`` draws ``N`` mutations (a port bit of a cell
   inverted, tied to 0 or 1, or replaced by another bit of the cell, modes ``inv``, ``const0``,
   ``const1``, ``cnot0``, ``cnot1``) among the cells whose ``src`` attribute lies in the block's
   own source files. Mutations of clock inputs are left out (they do not model a logic bug).
2. All mutants go into one design: ``mutate -ctrl mutsel W k`` adds mutation ``k`` behind a new
   input ``mutsel`` (``mutsel == 0`` is the original). Verilator builds it once.
3. The block's *mutation regression* runs once per mutant with ``mutsel`` set (the cocotb
   `~imcflow.verif.bench.Bench` drives the port from the ``mutsel`` parameter), many mutants in
   one simulator run (tests/cocotb/mutants_tb.py): the block's own cocotb testbench with its
   golden-model scoreboards under random idle cycles and backpressure, and its full-rate
   latency and rate checks, on fixed configurations and seeds. A mutant that
   passes it meets the block's formal contract next (`imcflow.verif.contracts`, as a bounded
   model check from reset of the mutant wrapped in an ``Instance``), where one exists.
4. A mutant that both pass is checked for equivalence with the original (the mutated unit of a
   bank alone): Yosys ``equiv_make``, ``equiv_simple``, ``equiv_induct`` (the two netlists agree
   in every cycle for every input from the same initial state), else SymbiYosys k-induction on a
   miter of the two whose inputs follow the stream rules
   (`~imcflow.verif.contracts.SameBehaviour`: a mutant that differs only when a producer
   breaks the rules, or only in a payload that is not valid, is no bug), else PDR
   (z3's Spacer), which proves over the states reachable from reset only (a mutant that
   differs only in a state no input reaches, a product no input gives, is no bug either;
   induction cannot show that): first on the original alone, that in no reachable state the
   mutant's next state or outputs would differ (then again with the mutated register's bits
   free: it may differ there, but no value of them changes an output or another register, as
   a product bit that the rounding drops), then on the same miter. Proven equivalent mutants
   are reported apart; the rest are *survivors*: bugs nothing caught, each listed with the
   source line it mutated.

The kill rate is ``killed / (mutants - equivalent)``. docs/verification.md ("Mutation coverage")
explains how to read the report.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.hdl import Const

from imcflow import toolchain
from imcflow.errors import UserError

__all__ = ["BLOCKS", "Mutation", "Regression", "Target", "mutations", "mutant_design",
           "equivalent", "simulate", "campaign", "quiet", "progress"]

ROOT = Path(__file__).resolve().parent.parent
TB_DIR = ROOT / "tests" / "cocotb"


_STDERR = sys.stderr


def progress(message: str) -> None:
    """A progress line on stderr (the real one while `quiet` redirects the tools' output)."""
    print(f"imcflow mutate: {message}", file=_STDERR, flush=True)


@contextlib.contextmanager
def quiet(log: Path):
    """Send everything the tools print (cocotb's log, Verilator's) to file ``log``, so that
    stdout keeps only the report and stderr only the progress lines."""
    global _STDERR
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    _STDERR = os.fdopen(os.dup(saved[1]), "w")
    with open(log, "a") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            _STDERR.close()
            _STDERR = sys.stderr


# --- Yosys -------------------------------------------------------------------------------------

def _yosys(script: str, work: Path, timeout: int | None = None) -> str:
    """Run a Yosys script in ``work``; its log, or `RuntimeError` with the log's tail (also
    after ``timeout`` CPU seconds: a verdict that does not depend on the machine's load; 20
    times as many seconds of wall time end it too)."""
    import resource
    (work / "script.ys").write_text(script)

    def limit():
        resource.setrlimit(resource.RLIMIT_CPU, (timeout, timeout))

    try:
        out = subprocess.run([toolchain.require("yosys"), "-q", "-l", "yosys.log", "script.ys"],
                             cwd=work, capture_output=True, text=True, env=toolchain.environ(),
                             preexec_fn=limit if timeout else None,
                             timeout=20 * timeout if timeout else None)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"yosys: no result within {20 * timeout} s wall") from None
    log = (work / "yosys.log").read_text(errors="replace") if (work / "yosys.log").exists() else ""
    if out.returncode != 0:
        raise RuntimeError("yosys failed:\n" + "\n".join((log + out.stderr).splitlines()[-15:]))
    return log


def _prepare(top: str) -> str:
    return f"read_rtlil design.il\nprep -flatten -top {top}\n"


@dataclass(frozen=True)
class Mutation:
    """One mutation as ``mutate -list`` wrote it.

    Attributes
    ----------
    index : int
        Its ``mutsel`` value (1, 2, ...).
    args : str
        The ``mutate`` arguments that apply it (``-mode ... -module ... -cell ... -port ...``).
    sources : tuple of str
        The ``src`` locations of the mutated cell or wire (``file:line``), innermost last.
    """

    index: int
    args: str
    sources: tuple[str, ...]

    @property
    def source(self) -> str:
        """The mutated line: the last location in this repository (else the first given)."""
        ours = [s for s in self.sources if s.startswith(str(ROOT)) and "/.venv/" not in s]
        return (ours or list(self.sources) or ["(no source location)"])[-1]

    def describe(self) -> str:
        """``hw/fifo.py:125: <the line's text>  [mode cell.port[bit]]``."""
        where, text = self.source, ""
        match = re.fullmatch(r"(.+):(\d+)", where)
        if match and Path(match[1]).is_file():
            path, line = Path(match[1]).resolve(), int(match[2])
            lines = path.read_text().splitlines()
            text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}"
        f = dict(re.findall(r"-(mode|cell|port|portbit) (\S+)", self.args))
        what = f"{f.get('mode')} {f.get('cell')}.{f.get('port')}[{f.get('portbit')}]"
        return f"{where}: {text}  [{what}]" if text else f"{where}  [{what}]"


def mutations(rtlil_text: str, top: str, count: int, seed: int,
              select: str = "") -> list[Mutation]:
    """``count`` mutations of module ``top`` drawn by Yosys' ``mutate -list`` with ``seed``,
    among the cells selected by ``select`` (a Yosys selection, possibly preceded by ``mutate``'s
    filters such as ``-mode inv -port WR_DATA``; default all); clock ports are left out."""
    with tempfile.TemporaryDirectory(prefix="imcflow-mutate-") as tmp:
        work = Path(tmp)
        (work / "design.il").write_text(rtlil_text)
        # more than asked for, so that `count` remain once clock ports are dropped
        _yosys(_prepare(top) + f"mutate -list {2 * count + 10} -seed {seed} -o list.txt "
               f"{select}\n", work)
        lines = (work / "list.txt").read_text().splitlines()
    found = []
    for line in lines:
        words = shlex.split(line)
        if not words or words[0] != "mutate" or re.search(r"-port \S*CLK\b", line):
            continue
        sources = tuple(words[i + 1] for i, w in enumerate(words) if w == "-src")
        args = re.sub(r" -(src|wire|wirebit) \S+", "", line[len("mutate "):]).strip()
        found.append(Mutation(len(found) + 1, args, sources))
        if len(found) == count:
            break
    return found


def mutsel_width(count: int) -> int:
    return max(1, int(count).bit_length())


def mutant_design(rtlil_text: str, top: str, muts: list[Mutation]) -> tuple[str, str]:
    """Verilog and RTLIL of module ``top`` with every mutation of ``muts`` behind input
    ``mutsel`` (mutation ``k`` active when ``mutsel == k``; 0 is the original design)."""
    width = mutsel_width(len(muts))
    with tempfile.TemporaryDirectory(prefix="imcflow-mutate-") as tmp:
        work = Path(tmp)
        (work / "design.il").write_text(rtlil_text)
        script = _prepare(top) + "".join(f"mutate -ctrl mutsel {width} {m.index} {m.args}\n"
                                         for m in muts)
        _yosys(script + "write_verilog -noattr mutants.v\nwrite_rtlil mutants.il\n", work)
        return (work / "mutants.v").read_text(), (work / "mutants.il").read_text()


def _units(component, mutation: Mutation):
    """Smaller designs holding the cell ``mutation`` mutates: ``(design, mutate arguments for
    Yosys module unit, Yosys commands run on gold and gate after the mutation)``. For a
    `~imcflow.verif.bank.Bank` (whose units are independent, so the others cannot tell the
    mutant from the original): the mutated unit alone, a bank of just that unit, then the whole
    bank with the other units' logic deleted and their outputs, then undriven, tied to 0 in
    both (Yosys' optimizations may keep another of two merged cells in a smaller design, where
    the mutated cell's name is then missing); else the component itself."""
    from imcflow.verif.bank import Bank
    args = re.sub(r"-module \S+", "-module unit", mutation.args)
    match = re.search(r"-cell \$flatten\\(\w+)\.(\S+)", args)
    if not isinstance(component, Bank) or not match or match[1] not in component.units:
        yield component, args, ""
        return
    unit, rest = component.units[match[1]], match[2]   # the cell inside: `\sub.$18` or `$18`
    yield unit, args.replace(match[0], "-cell " + (f"$flatten{rest}" if rest.startswith("\\")
                                                   else rest)), ""
    yield Bank({match[1]: unit}), args, ""
    yield component, args, "".join(f"delete {m}/c:$flatten\\{u}.* {m}/c:{u}.*\n"
                                   for m in ("gold", "gate") for u in component.units
                                   if u != match[1]) + "setundef -undriven -zero\nopt_clean\n"


def _submodule(component, mutation: Mutation):
    """The innermost submodule of the unit of `_units` that holds the cell ``mutation``
    mutates, when the cell lies in one (``$flatten\\a1.\\reducer.$81``: the unit's attribute
    ``reducer``, named as its submodule), with the ``mutate`` arguments for it as Yosys module
    ``unit``; else None."""
    from imcflow.verif.bank import Bank
    match = re.search(r"-cell \$flatten\\(\w+)\.(\S+)", mutation.args)
    if not isinstance(component, Bank) or not match or match[1] not in component.units:
        return None
    design, rest, depth = component.units[match[1]], match[2], 0
    while (step := re.fullmatch(r"\\(\w+)\.(\S+)", rest)) and hasattr(design, step[1]):
        design, rest, depth = getattr(design, step[1]), step[2], depth + 1
    if not depth or not hasattr(design, "signature"):
        return None
    cell = f"$flatten{rest}" if rest.startswith("\\") else rest
    return design, re.sub(r"-module \S+", "-module unit", mutation.args).replace(
        match[0], "-cell " + cell)


def _pair(unit, args: str, reduce: str = "") -> str | None:
    """RTLIL of modules ``gold`` (``unit``) and ``gate`` (``unit`` with the mutation ``args``
    applied, then the Yosys commands ``reduce`` on both), or None if Yosys cannot apply it (a
    cell of that name is missing). The block's own assertions (e.g. the Join's ``last`` check,
    a precondition on its inputs) are removed from both: they drive no output, and the
    equivalence is of the outputs."""
    from amaranth.back import rtlil
    with tempfile.TemporaryDirectory(prefix="imcflow-equiv-") as tmp:
        work = Path(tmp)
        (work / "design.il").write_text(rtlil.convert(unit, name="unit"))
        try:
            _yosys(_prepare("unit") + f"hierarchy -top unit\ncopy unit gold\n"
                   f"mutate {args}\nrename unit gate\n{reduce}chformal -remove\n"
                   "write_rtlil pair.il\n", work)
        except RuntimeError:
            return None
        return (work / "pair.il").read_text()


def _gold_and_gate(component, mutation: Mutation) -> tuple[object, str] | None:
    """The first design of `_units` to which Yosys can apply the mutation, and RTLIL of its
    modules ``gold`` (the original) and ``gate`` (the mutant); None if there is none."""
    for unit, args, reduce in _units(component, mutation):
        if (text := _pair(unit, args, reduce)) is not None:
            return unit, text
    return None


def _bits(spec: str) -> list[str]:
    """The bits of RTLIL signal ``spec`` (``\\w``, ``\\w [3]``, ``\\w [5:2]``, ``4'0101``,
    ``{ ... }``, most significant part first), least significant first, each as a one-bit
    signal (``\\w [k]``, ``1'0``); a whole wire ``\\w`` as ``\\w [*]`` (`_widen` expands it)."""
    bits = []
    for token in reversed(re.findall(r"\d+'[01xzm-]*|[\\$][^\s{}]+(?: \[\d+(?::\d+)?\])?",
                                     spec)):
        if re.fullmatch(r"\d+'.*", token):
            bits += [f"1'{b}" for b in reversed(token.split("'", 1)[1])]
        elif (index := re.fullmatch(r"(\S+) \[(\d+)(?::(\d+))?\]", token)):
            hi, lo = int(index[2]), int(index[3] if index[3] is not None else index[2])
            bits += [f"{index[1]} [{k}]" for k in range(lo, hi + 1)]
        else:
            bits.append(f"{token} [*]")
    return bits


def _widen(bits: list[str], widths: dict[str, int]) -> list[str]:
    return [b for bit in bits for b in ([f"{bit[:-4]} [{k}]" for k in range(widths[bit[:-4]])]
                                        if bit.endswith(" [*]") else [bit])]


def _cells(module: str) -> tuple[dict[str, int], list[tuple[str, str, dict[str, str]]],
                                  list[tuple[str, str]]]:
    """Wire widths, cells ``(type, name, {port: signal})`` and ``connect`` statements ``(lhs,
    rhs)`` of one RTLIL module's text."""
    widths, cells, connects, cell = {}, [], [], None
    for line in module.splitlines():
        if (wire := re.fullmatch(r"  wire (.*?)(\S+)", line)):
            words = wire[1].split()
            widths[wire[2]] = int(words[words.index("width") + 1]) if "width" in words else 1
        elif (head := re.fullmatch(r"  cell (\S+) (\S+)", line)):
            cell = (head[1], head[2], {})
        elif line == "  end" and cell is not None:
            cells.append(cell)
            cell = None
        elif cell is not None and (port := re.fullmatch(r"    connect \\(\w+) (.+)", line)):
            cell[2][port[1]] = port[2]
        elif cell is None and (both := re.fullmatch(r"  connect (.+)", line)):
            lhs, rhs = _split_connect(both[1])
            connects.append((lhs, rhs))
    return widths, cells, connects


def _split_connect(text: str) -> tuple[str, str]:
    """The two signals of an RTLIL ``connect`` statement's text ``lhs rhs``."""
    tokens = re.findall(r"\{[^}]*\}|\d+'[01xzm-]*|[\\$]\S+(?: \[\d+(?::\d+)?\])?", text)
    return tokens[0], tokens[1]


REGISTERS = r"\$_?(a?l?dff\w*|sdff\w*|ff|dlatch\w*|sr\w*)"


def _held_bits(module: str) -> list[str]:
    """Register bits (their ``Q`` bits, e.g. ``\\prod0 [5]``) of RTLIL module text ``module``
    that the value of a mutation (``mutate -ctrl``'s multiplexer) reaches in one clock edge
    through multiplexers' data inputs and wires alone: the mutated register itself (a mutated
    ``Q`` that a register reads back while it holds, or a mutated product that it loads), and
    the register bits a held bit moves on to the same way, clock edge after clock edge (the
    product registers of shared multipliers, a shift chain). A bit that meets any other cell on
    its way (an adder, the rounding) stops there: the one-step check compares what that cell
    feeds."""
    widths, cells, connects = _cells(module)

    def bits(spec):
        return _widen(_bits(spec), widths)

    edges: dict[str, set[str]] = {}
    for lhs, rhs in connects:
        for a, b in zip(bits(rhs), bits(lhs)):
            edges.setdefault(a, set()).add(b)
    seeds, registers = set(), {}
    for kind, name, ports in cells:
        if kind in ("$mux", "$pmux") and "Y" in ports:
            y = bits(ports["Y"])
            if "mutate_ctrl_mux" in name:
                seeds |= set(y)
            data = bits(ports["A"]) + bits(ports["B"])   # not the select: a mutated enable
            for k, a in enumerate(data):                   # is no value a register holds
                edges.setdefault(a, set()).add(y[k % len(y)])
        elif re.fullmatch(REGISTERS, kind) and "D" in ports and "Q" in ports:
            for d, q in zip(bits(ports["D"]), bits(ports["Q"])):
                registers.setdefault(d, set()).add(q)
    found, seen, todo = set(), set(seeds), list(seeds)
    while todo:
        bit = todo.pop()
        held = registers.get(bit, set())
        found |= held
        for nxt in [*edges.get(bit, ()), *held]:    # and on from a held bit: a shift chain
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return sorted(found)


def _shown(bits: list[str], module: str) -> str:
    """``bits`` (of `_held_bits`) as their readers know them: a mutated ``Q`` bit, which
    ``mutate`` moved to a wire of its own, by the wire its multiplexer drives (``\\prod0
    [5]``)."""
    widths, cells, _ = _cells(module)
    names = {}
    for _, name, ports in cells:
        if "mutate_ctrl_mux" in name:
            names.update(zip(_widen(_bits(ports["A"]), widths), _widen(_bits(ports["Y"]),
                                                                       widths)))
    return ", ".join(names.get(b, b).lstrip("\\") for b in bits)


def _escaped(text: str) -> str:
    """``text`` as the inside of an RTLIL string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _one_step(unit, args: str, *, free: bool = False) -> str | None:
    """RTLIL of module ``unit`` (the original) with one assertion: in the state it is in, the
    mutant (the mutation ``args``) would load the same next state into every register and show
    the same outputs for the same inputs. A combinational copy of the logic with the mutation on
    computes them from the original's registers (memories mapped to registers first). Where that
    holds in every reachable state, the mutant's run is the original's for every input: it is
    no bug. None if Yosys cannot apply the mutation.

    With ``free``, the register bits the mutation reaches through multiplexers' data alone
    (`_held_bits`: the mutated register) take any value in the copy (a ``$anyseq``, new in
    every cycle) and their next values are not compared; every other register's and every
    output are. Where that holds in every reachable state of the original, the mutant's state
    differs from the original's at most in those bits in every cycle (by induction from reset,
    where they are equal), and its outputs never: it is no bug, whatever values those bits take
    (a product bit that the rounding drops). The bits are named in the assertion cell's
    attribute ``\\imcflow_free``. None also if no register bit is reached."""
    from amaranth.back import rtlil
    with tempfile.TemporaryDirectory(prefix="imcflow-one-step-") as tmp:
        work = Path(tmp)
        (work / "design.il").write_text(rtlil.convert(unit, name="unit"))
        try:
            _yosys(_prepare("unit") + f"chformal -remove\nmutate -ctrl mutsel 1 1 {args}\n"
                   "memory_map\nopt_clean\ndffunmap\nwrite_rtlil mutated.il\n", work)
        except RuntimeError:
            return None
        text = (work / "mutated.il").read_text()
    if "mutate_ctrl_mux" not in text:
        return None
    start = text.index("\nmodule \\unit\n") + 1
    end = text.index("\nend\n", start) + 1

    def copy(spec):   # the copy's name of every wire in a signal
        return re.sub(r"(?<!\S)[\\$]\S+", lambda m: "\\step." + m[0].lstrip("\\"), spec)

    on, mutsel = "1'1", "\\mutsel"     # the copy has the mutation on
    held = _held_bits(text[start:end]) if free else []
    if free and not held:
        return None
    widths, ports, compared, cell = {}, [], [], None
    added = [f"  wire width {len(held)} $one_step_free"] if held else []
    for line in text[start:end].splitlines()[1:]:
        if (wire := re.fullmatch(r"  wire (.*?)(\S+)", line)):
            words = wire[1].split()
            widths[wire[2]] = int(words[words.index("width") + 1]) if "width" in words else 1
            ports += [(w, wire[2]) for w in words if w in ("input", "output")]
            kept = [w for i, w in enumerate(words) if w not in ("input", "output", "inout")
                    and (i == 0 or words[i - 1] not in ("input", "output", "inout"))]
            added.append(f"  wire {' '.join([*kept, copy(wire[2])])}")
        elif (head := re.fullmatch(r"  cell (\S+) (\S+)", line)):
            cell = {"type": head[1], "name": head[2], "lines": []}
        elif line == "  end" and cell is not None:
            connections = re.findall(r"    connect \\(\w+) (.+)", "\n".join(cell["lines"]))
            if re.fullmatch(REGISTERS, cell["type"]):
                # a register: the copy reads the original's; compare what it would load (a
                # held bit: the copy reads any value, and its next value is not compared)
                ports_of = dict(connections)
                qs = _widen(_bits(ports_of["Q"]), widths)
                ds = _widen(_bits(ports_of["D"]), widths) if "D" in ports_of else []
                for k, q in enumerate(qs):
                    source = f"$one_step_free [{held.index(q)}]" if q in held else q
                    added.append(f"  connect {copy(q)} {source}")
                    if k < len(ds) and q not in held:
                        compared.append(ds[k])
                compared += [spec for port, spec in connections
                             if port not in ("Q", "D", "CLK", "C")]
            elif cell["type"] != "$print":
                added += [f"  cell {cell['type']} {copy(cell['name'])}",
                          *(re.sub(r"(    connect \\\w+ )(.+)", lambda m: m[1] + copy(m[2]), l)
                            for l in cell["lines"]), "  end"]
            cell = None
        elif cell is not None:
            cell["lines"].append(line)
        elif line.startswith("  connect "):
            added.append("  connect " + copy(line[len("  connect "):]))
    for direction, name in ports:
        if direction == "output":
            compared.append(name)
        else:
            added.append(f"  connect {copy(name)} {on if name == mutsel else name}")
    widths.update({copy(name): width for name, width in list(widths.items())})
    original = _widen([b for spec in compared for b in _bits(spec)], widths)
    mutant = _widen([b for spec in compared for b in _bits(copy(spec))], widths)
    added += ["  connect \\mutsel 1'0", "  wire $one_step_same", "  cell $eq $one_step_eq",
              "    parameter \\A_SIGNED 0", "    parameter \\B_SIGNED 0",
              f"    parameter \\A_WIDTH {len(original)}",
              f"    parameter \\B_WIDTH {len(mutant)}", "    parameter \\Y_WIDTH 1",
              f"    connect \\A {{ {' '.join(reversed(original))} }}",
              f"    connect \\B {{ {' '.join(reversed(mutant))} }}",
              "    connect \\Y $one_step_same", "  end",
              *(["  cell $anyseq $one_step_any",
                 f"    parameter \\WIDTH {len(held)}", "    connect \\Y $one_step_free",
                 "  end"] if held else []),
              *([f"  attribute \\imcflow_free \"{_escaped(_shown(held, text[start:end]))}\""]
                if held else []),
              "  cell $assert $one_step_assert",
              "    connect \\A $one_step_same", "    connect \\EN 1'1", "  end"]
    module = re.sub(r"wire (width \d+ )?input \d+ \\mutsel\n", r"wire \1\\mutsel\n",
                    text[start:end])
    return text[:start] + module + "\n".join(added) + "\n" + text[end:]


def _equiv_induct(text: str, *, rounds: int = 4, timeout: int = 45) -> bool:
    """Whether Yosys proves modules ``gold`` and ``gate`` of RTLIL ``text`` equal at their ports
    in every cycle for every input. ``equiv_make`` pairs the signals of the two by name,
    ``equiv_struct`` merges identical logic, ``equiv_simple`` and ``equiv_induct`` prove the pairs
    (each assuming the others held before: an inductive invariant). An inner pair that is not
    proven (a signal the mutation changes although the ports do not show it) is unpaired and the
    proof repeated, at most ``rounds`` times; an unproven port ends it."""
    ports = set(re.findall(r"^\s*wire .*\b(?:input|output) \d+ (\\\S+)$", text, re.M))
    # whole-wire aliases (`connect \a \b` in a module): Yosys names a pair after one of them
    aliases: dict[str, set[str]] = {}
    for a, b in re.findall(r"^  connect (\\\S+) (\\\S+)$", text, re.M):
        group = aliases.get(a, {a}) | aliases.get(b, {b})
        for name in group:
            aliases[name] = group
    blacklist: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="imcflow-equiv-") as tmp:
        work = Path(tmp)
        (work / "pair.il").write_text(text)
        for _ in range(rounds):
            (work / "blacklist.txt").write_text("".join(f"{name[1:]}\n" for name in blacklist))
            try:
                log = _yosys("read_rtlil pair.il\nmemory_map\nopt_clean\n"
                             "equiv_make -blacklist blacklist.txt gold gate equiv\n"
                             "hierarchy -top equiv\nequiv_struct\nequiv_simple\nequiv_induct\n"
                             "equiv_status\n", work, timeout)
            except RuntimeError:
                return False
            unproven = {alias for name in re.findall(r"Unproven \$equiv \S+: (\\\S+)_gold ", log)
                        for alias in aliases.get(name, {name})}
            if not unproven:
                return True
            if unproven & ports or unproven <= blacklist:
                return False
            blacklist |= unproven
    return False


def equivalent(component, mutation: Mutation, *, depth: int = 4,
               protocol_timeout: int = 45, pdr_timeout: int = 60) -> str | None:
    """How the mutant was proven equivalent to the original, or None if it was not (it may still
    be). The proofs take the mutated unit of a bank alone (`_units`), the first two from every
    state where they agree, so a mutant that differs only in unreachable states (a level above
    the depth, a product no input gives) is not proven by them but by the third:

    1. Yosys (`_equiv_induct`): equal ports in every cycle for every input.
    2. SymbiYosys k-induction (``depth`` steps, ``protocol_timeout`` CPU seconds) on
       `imcflow.verif.contracts.SameBehaviour`: the two show the same outputs in every cycle for
       every input that follows the stream rules, payloads compared only while valid.
    3. PDR (`imcflow.verif.formal.check` mode ``pdr``, z3's Spacer, ``pdr_timeout`` CPU
       seconds each) over the states reachable from reset only: first on the original unit
       alone (`_one_step`, `~imcflow.verif.contracts.Driven`: one copy of the state, so
       faster), that in every reachable state the mutant's next state and outputs would be the
       original's (then its run is the original's), then the same with the mutated
       register's bits free (`_one_step` with ``free``: its state differs from the original's
       at most there); then the property of 2., on the innermost
       submodule that
       holds the mutated cell (`_submodule`; smaller, so faster) with
       ``SameBehaviour(rules=False)`` (equal ports for every input: it may replace the original
       in any design), then on the unit under the stream rules.
    """
    from imcflow.verif.contracts import Driven, SameBehaviour
    from imcflow.verif.formal import FormalError, check
    pair = _gold_and_gate(component, mutation)
    if pair is None:
        return None
    unit, text = pair
    if _equiv_induct(text):
        return "equiv_induct: equal ports in every cycle for every input"
    try:
        check(SameBehaviour(unit, "gold", "gate"), mode="prove", depth=depth,
              name="mutate-same-behaviour", modules=[text], timeout=protocol_timeout)
        return "k-induction: equal outputs for every input that follows the stream rules"
    except FormalError:
        pass
    attempts = []   # (spec, module text, what a proof shows)
    for design, args, reduce in _units(component, mutation):
        if not reduce and (alone := _one_step(design, args)) is not None:
            attempts.append((lambda design=design: Driven(design, "unit"), alone,
                             "pdr: the mutant's next state and outputs are the original's in "
                             "every reachable state for every input that follows the stream "
                             "rules"))
            if (held := _one_step(design, args, free=True)) is not None:
                bits = re.search(r'attribute \\imcflow_free "((?:[^"\\]|\\.)*)"', held)[1]
                attempts.append((lambda design=design: Driven(design, "unit"), held,
                                 f"pdr: the mutant's state differs from the original's at most "
                                 f"in {bits.replace(chr(92) * 2, chr(92))} (the mutated "
                                 f"register), whose values change no output and no other "
                                 f"register, in every reachable state for every input that "
                                 f"follows the stream rules"))
            break
    if (sub := _submodule(component, mutation)) and (inner := _pair(*sub)) is not None:
        attempts.append((lambda: SameBehaviour(sub[0], "gold", "gate", rules=False), inner,
                         f"pdr: equal ports of {type(sub[0]).__name__} in every reachable state "
                         f"for every input"))
    attempts.append((lambda: SameBehaviour(unit, "gold", "gate"), text,
                     "pdr: equal outputs in every reachable state for every input that follows "
                     "the stream rules"))
    for spec, modules, proof in attempts:
        try:
            check(spec(), mode="pdr", name="mutate-pdr", modules=[modules], timeout=pdr_timeout)
            return proof
        except FormalError:
            pass
    return None


# --- the blocks' mutation regressions ----------------------------------------------------------

#: Default idle and backpressure of a unit, phases ``[probability, cycles]`` repeated: random
#: stalls, full speed, and long stalls that fill a buffer and let the producer run far ahead
#: (the first from the start: a window buffer fills before any window has left)
IDLE = [[0.3, 200], [0.0, 100], [0.9, 50]]
BACKPRESSURE = [[0.98, 120], [0.4, 200], [0.0, 100], [0.97, 80]]


@dataclass
class Stream:
    """Golden traffic of one unit of a bank for tests/cocotb/stream_bank_tb.py."""

    name: str
    dut: object
    inputs: dict            # port -> array of maps (N, ..., lanes)
    outputs: dict           # port -> array of maps
    seed: int
    idle: float | list = field(default_factory=lambda: IDLE)
    backpressure: float | list = field(default_factory=lambda: BACKPRESSURE)
    timing: Callable[[dict], None] | None = None   # checks the full-rate handshake cycles
    # checks the handshake cycles under stalls, given the recorded valid/ready flags
    stalled: Callable[[dict, dict], None] | None = None
    # the producer's idle flags ("0"/"1", one per cycle without a beat on offer) of a third
    # case, with the consumer always ready, checked by `stalled` (`_handover_idle`)
    handover: str | None = None

    def parameters(self, full_rate: bool) -> dict:
        words, layouts = {}, {}
        for port, maps in {**self.inputs, **self.outputs}.items():
            layout = _port(self.dut, port).p.shape()
            maps = np.asarray(maps).reshape(len(maps), -1, layout.lanes)
            words[port] = [layout.pack(v, last=j == maps.shape[1] - 1)
                           for m in maps for j, v in enumerate(m)]
            layouts[port] = [layout.lanes, layout.bits, layout.signed]
        return {"name": self.name, "seed": self.seed, "record": self.stalled is not None,
                "idle": 0 if full_rate else self.idle,
                "backpressure": 0 if full_rate else self.backpressure,
                "inputs": {p: words[p] for p in self.inputs},
                "outputs": {p: words[p] for p in self.outputs}, "layouts": layouts}

    def handover_parameters(self) -> dict:
        """The unit's parameters in the third case: idle ``handover``, never backpressure."""
        return {**self.parameters(True), "record": True, "idle": self.handover}


def _port(dut, port: str):
    """``dut.i`` for ``"i"``, ``dut.i[1]`` for ``"i__1"``."""
    name, *index = port.split("__")
    value = getattr(dut, name)
    for k in index:
        value = value[int(k)]
    return value


@dataclass
class Target:
    """A block's mutation campaign: its design, where its mutations may go, and its checks.

    ``design()`` returns ``(component, build parameters, Regression)``. ``proofs(component,
    rtlil_module_text, module, width, mutsel)``, if any, raises
    `~imcflow.verif.formal.FormalError` when the mutant breaks the block's contract.
    """

    name: str
    sources: tuple[str, ...]           # files (under hw/) whose cells may be mutated
    design: Callable
    proofs: Callable | None = None
    about: str = ""

    @property
    def select(self) -> str:
        return " ".join(f"a:src=*{s}:*" for s in self.sources)


@dataclass
class Regression:
    """A block's mutation regression: ``cases``, testcases of the block's cocotb testbenches
    (``{"testbench": module in tests/cocotb, "testcase": name, "parameters": {...}}``), which
    tests/cocotb/mutants_tb.py runs on every mutant in one simulator run, and ``check(reports)``,
    which raises `AssertionError` when what one mutant's cases reported (in order) is wrong, e.g.
    the cycle of a handshake."""

    cases: list[dict]
    check: Callable[[list[dict]], None] | None = None


def _stream_bank(name: str, units: list[Stream], timeout: int = 20_000):
    from imcflow.verif.bank import Bank

    def case(full_rate):
        return {"testbench": "stream_bank_tb", "testcase": "streams",
                "parameters": {"units": [u.parameters(full_rate) for u in units],
                               "timeout": timeout, "tail": 16, "seed": 1}}

    handovers = [u for u in units if u.handover is not None]
    cases = [case(False), case(True)]
    if handovers:   # a third case: the units with a handover pattern alone
        cases.append({"testbench": "stream_bank_tb", "testcase": "streams",
                      "parameters": {"units": [u.handover_parameters() for u in handovers],
                                     "timeout": timeout, "tail": 16, "seed": 1}})

    def mine(unit, figures):
        return {k.split(".", 1)[1]: v for k, v in figures.items() if k.startswith(unit.name + ".")}

    def check(reports):
        for unit in units:
            try:
                if unit.stalled is not None:
                    unit.stalled(mine(unit, reports[0]["cycles"]),
                                 mine(unit, reports[0]["flags"]))
                if unit.timing is not None:
                    unit.timing(mine(unit, reports[1]["cycles"]))
                if unit.handover is not None:
                    unit.stalled(mine(unit, reports[2]["cycles"]),
                                 mine(unit, reports[2]["flags"]))
            except AssertionError as e:      # which unit: the report names the configuration
                raise AssertionError(f"{unit.name}: {e}") from None

    return Bank({u.name: u.dut for u in units}), {}, Regression(cases, check)


def _queue(name: str, make, payload: dict, beats: int = 3200):
    def design():
        dut = make()
        params = {**payload, "depth": dut.depth, "latency": dut.latency,
                  "interval": dut.interval}
        return dut, params, Regression([
            {"testbench": "fifo_tb", "testcase": testcase,
             "parameters": {"seed": 7, "beats": beats}}
            for testcase in ("random_traffic", "full_rate")])
    return design


def _maps(rng, shape, bits, signed):
    from imcflow.sw.arith import act_range
    lo, hi = act_range(bits, signed)
    x = rng.integers(lo, hi + 1, size=shape)
    return np.where(rng.random(shape) < 0.2, rng.choice([lo, hi], size=shape), x)


def _close_maps(rng, shape, bits, signed, spread):
    """Maps whose pixels lie in ``spread`` values above a random base, one per map."""
    from imcflow.sw.arith import act_range
    lo, hi = act_range(bits, signed)
    spread = min(spread, hi - lo + 1)
    base = rng.integers(lo, hi - spread + 2, size=(shape[0],) + (1,) * (len(shape) - 1))
    return base + rng.integers(0, spread, size=shape)


def _peak_maps(rng, shape, bits, signed):
    """Maps ``(n, h, w, c)`` of one value ``v - 1`` with a single peak ``v`` per channel (``v``
    random per map and channel, the peak at a random pixel): every comparator of a max tree then
    sees two values one apart, the larger the window's unique maximum, at every tap position."""
    from imcflow.sw.arith import act_range
    lo, hi = act_range(bits, signed)
    n, h, w, c = shape
    peak = rng.integers(lo + 1, hi + 1, size=(n, 1, 1, c))
    maps = np.broadcast_to(peak - 1, shape).copy()
    where = rng.integers(0, h * w, size=(n, c))
    for i in range(n):
        for ch in range(c):
            maps[i, where[i, ch] // w, where[i, ch] % w, ch] = peak[i, 0, 0, ch]
    return maps


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _fork():
    from imcflow.hw.residual import Fork
    from imcflow.hw.streams import VectorLayout
    units = []
    for n, (lanes, bits, signed) in enumerate([(3, 4, False), (1, 6, True)]):
        rng = np.random.default_rng(n)
        fmap = _maps(rng, (3, 4, 5, lanes), bits, signed)

        def timing(c):
            _expect(c["i"] == list(range(len(c["i"]))), "fork: input not one beat per cycle")
            _expect(c["o_main"] == c["o_skip"] == c["i"], "fork: outputs not with the input")
        units.append(Stream(f"f{n}", Fork(VectorLayout(lanes, bits, signed)), {"i": fmap},
                            {"o_main": fmap, "o_skip": fmap}, n, 0.3, 0.5, timing))
    return _stream_bank("fork", units)


JOINS = [  # c, a (bits, signed), b (bits, signed), mult_a, mult_b, shift, act_bits, act_signed,
    #        passes
    (2, (8, False), (8, True), 3, 700, 7, 8, True, 1),
    (3, (6, True), (4, False), 40001, 9003, 14, 6, False, 1),   # odd: every product bit varies
    # the largest multipliers; half saturate
    (1, (8, False), (8, False), 65535, 65535, 16, 8, False, 1),
    # 5 channels through 3 pairs of shared multipliers over 2 passes (Arch.requant_lanes): input
    # registers first, the rounding constant in i_b's products; both bounds saturate
    (5, (5, True), (6, True), 1201, 777, 10, 6, True, 2),
]


def _all_pairs(a_bits, a_signed, b_bits, b_signed):
    """Every pair of values (``a``, ``b``) of the two input ranges, as two flat arrays."""
    from imcflow.sw.arith import act_range
    a = np.arange(act_range(a_bits, a_signed)[0], act_range(a_bits, a_signed)[1] + 1)
    b = np.arange(act_range(b_bits, b_signed)[0], act_range(b_bits, b_signed)[1] + 1)
    return tuple(v.reshape(-1) for v in np.meshgrid(a, b))


def _rounding_pairs(a, b, mult_a, mult_b, shift, count, bounds=None):
    """``count`` of the pairs (``a``, ``b``) whose sum ``a * mult_a + b * mult_b`` has its
    ``shift`` dropped bits closest to half (the rounding boundary of `round_shift`), both sides
    of it; a mutant of the product or the sum's low bits changes the rounded value only there.
    With ``bounds`` (``lo, hi``), only of the pairs whose rounded sum lies within them (a
    saturated output shows no rounding)."""
    from imcflow.sw.arith import round_shift
    if shift == 0:
        return a[:0], b[:0]
    if bounds is not None:
        u = round_shift(a * mult_a + b * mult_b, shift)
        inside = (u >= bounds[0]) & (u <= bounds[1])
        a, b = a[inside], b[inside]
    dropped = (a * mult_a + b * mult_b) % (1 << shift) - (1 << (shift - 1))
    order = np.argsort(np.abs(dropped + 0.5), kind="stable")[:count]
    return a[order], b[order]


def _bound_pairs(a, b, mult_a, mult_b, shift, lo, hi):
    """Of the pairs (``a``, ``b``), those whose rounded sum before the saturation to ``[lo,
    hi]`` is ``lo - 1``, ``lo``, ``lo + 1``, ``hi - 1``, ``hi`` or ``hi + 1``, one each where a
    pair gives it: a saturation bound's compare or constant with a bit tied differs only around
    the bound (`_beyond`), which random pairs rarely hit exactly."""
    from imcflow.sw.arith import round_shift
    u = round_shift(a * mult_a + b * mult_b, shift)
    at = [np.flatnonzero(u == v)[:1] for v in (lo - 1, lo, lo + 1, hi - 1, hi, hi + 1)]
    at = np.concatenate(at).astype(int)
    return a[at], b[at]


def _join():
    from amaranth.hdl import signed, unsigned
    from imcflow.hw.residual import Join
    from imcflow.sw import golden
    from imcflow.sw.arith import Requantizer, act_range
    units = []
    for n, (c, (ab, asg), (bb, bsg), mult_a, mult_b, shift, act_bits, act_signed, passes) in \
            enumerate(JOINS):
        rng = np.random.default_rng(10 + n)
        a, b = _maps(rng, (3, 3, 4, c), ab, asg), _maps(rng, (3, 3, 4, c), bb, bsg)
        # the pairs around the saturation bounds, then half as many pairs as the random maps
        # hold where the rounding decides (the sum's dropped bits at or next to half), of those
        # that do not saturate: in j0 the closest 36 of all pairs were all of b = -128 (700 * b
        # a multiple of 128), saturated, so a product bit tied there changed no output (join
        # #38 at 2f01601: j0's product_a0 bit 4 tied to 1 changes the output of 761 pairs)
        pairs = _all_pairs(ab, asg, bb, bsg)
        bounds = act_range(act_bits, act_signed)
        edge_a, edge_b = _rounding_pairs(*pairs, mult_a, mult_b, shift, a.size // 2, bounds)
        bound_a, bound_b = _bound_pairs(*pairs, mult_a, mult_b, shift, *bounds)
        edge_a, edge_b = np.concatenate([bound_a, edge_a]), np.concatenate([bound_b, edge_b])
        # every channel gets every one of them (the k-th pair in its beat k), in maps of their
        # own before the random ones: spread over the channels (pair k in channel k mod c), each
        # channel met only 1/c of them, and a multiplier or product register of one channel
        # only its share (join #8 at 2f01601: j3's multiplier of b in lane 2, which serves
        # channel 2 alone, with its factor 777 read as 776, changed the output of 11 of the 96
        # pairs, none of them in channel 2)
        maps = -(-len(edge_a) // 12)
        pair_a = _maps(rng, (maps, 3, 4, c), ab, asg)
        pair_b = _maps(rng, (maps, 3, 4, c), bb, bsg)
        pair_a.reshape(-1, c)[:len(edge_a)] = edge_a[:, None]
        pair_b.reshape(-1, c)[:len(edge_b)] = edge_b[:, None]
        a, b = np.concatenate([pair_a, a]), np.concatenate([pair_b, b])
        dut = Join(c, signed(ab) if asg else unsigned(ab), signed(bb) if bsg else unsigned(bb),
                   Requantizer((mult_a, mult_b), shift, act_bits, act_signed), passes=passes)
        y = golden.join(a, b, mult_a, mult_b, shift, act_bits=act_bits, signed=act_signed)

        def timing(cy, dut=dut):
            _expect(cy["i_a"] == cy["i_b"] == list(range(0, dut.interval * len(cy["i_a"]),
                                                        dut.interval)),
                    "join: not a pair per interval")
            _expect(cy["o"] == [t + dut.latency for t in cy["i_a"]], "join: latency")
        # under stalls too. With passes, the input, product, sum and output registers are the
        # global pool's total and product registers (one beat per image) and two after them;
        # with one pass, the product, sum and output registers are its total and product
        # registers and one after them (a sum register that waited for the output even when
        # empty, j0's `sum_free` without `~sum_valid`, join #25 at 91e86ec, kept every value)
        stalled = _model_stalls(lambda offered, ready, dut=dut: requant_model(
            1, offered, ready, dut.passes, 2 if dut.passes > 1 else 1), ("i_a", "i_b"))
        units.append(Stream(f"j{n}", dut, {"i_a": a, "i_b": b}, {"o": y}, n, 0.3, 0.4, timing,
                            stalled))
    return _stream_bank("join", units)


def _window_timing(geometry, images, extra=0, strategy="line", passes=1):
    from imcflow.hw.im2col import window_schedule
    from imcflow.sw.geometry import WindowGeometry
    h, w, kernel, stride, padding = geometry

    def timing(c):
        pixels, windows = window_schedule(WindowGeometry(h, w, 1, kernel, stride, padding),
                                          strategy=strategy, images=images, passes=passes)
        _expect(c["i"] == list(pixels), "input handshakes differ from window_schedule")
        _expect(c["o"] == list(windows + extra), "output handshakes differ from window_schedule")
    return timing


POOLS = [  # h, w, c, bits, kernel, stride, padding, signed
    (5, 6, 2, 4, 3, 2, 1, True),
    (4, 5, 1, 3, 2, 1, 0, False),
    (3, 4, 2, 8, 3, 1, 2, False),
]


def _maxpool():
    from imcflow.hw.pool import MaxPool
    from imcflow.sw import golden
    from imcflow.sw.arith import act_range
    from imcflow.sw.geometry import WindowGeometry
    units = []
    for n, (h, w, c, bits, k, s, p, sg) in enumerate(POOLS):
        rng = np.random.default_rng(20 + n)
        # random maps, then maps of close values (a comparator with an input bit flipped or
        # tied picks the wrong one of two close values, which random pixels rarely put at the
        # top of a window together: maxpool #19, #27 survived on random maps alone), then maps
        # of a single peak one above the rest (a comparator whose B bit 1 is tied to 0 takes
        # v - 1 over v only when those two meet with v the maximum: maxpool #46 survived the
        # close maps)
        fmap = np.concatenate([_maps(rng, (3, h, w, c), bits, sg),
                               *(_close_maps(rng, (6, h, w, c), bits, sg, spread)
                                 for spread in (4, 16)),
                               _peak_maps(rng, (8, h, w, c), bits, sg)])
        y = golden.max_pool(fmap, k, s, p, pad_value=act_range(bits, sg)[0])
        dut = MaxPool(WindowGeometry(h, w, c, k, s, p), bits, signed=sg)
        units.append(Stream(f"m{n}", dut, {"i": fmap}, {"o": y}, n,
                            timing=_window_timing((h, w, k, s, p), len(fmap),
                                                  dut.reducer.latency),
                            stalled=_window_stalls((h, w, k, s, p), len(fmap), "line",
                                                   dut.reducer.latency)))
    return _stream_bank("maxpool", units)


AVGPOOLS = [  # h, w, c, bits, kernel, stride, signed, mult, shift, act_bits, act_signed
    (5, 6, 2, 4, 2, 2, True, 3000, 13, 5, True),
    (6, 6, 1, 8, 3, 3, False, 3641, 15, 8, False),   # mult / 2**shift = 1/9: no saturation
    (4, 4, 2, 6, 1, 2, True, 300, 8, 6, False),
]


def _step_images(rng, shape, bits, signed, k, s, edges):
    """Images whose ``k`` x ``k`` windows (stride ``s >= k``: they do not overlap) sum to
    ``edges(all window sums)`` (`_requant_edges`), the other pixels random."""
    from imcflow.sw.arith import act_range
    (h, w, c), (lo, hi) = shape, act_range(bits, signed)
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    sums = [rng.permutation(edges(np.arange(k * k * lo, k * k * hi + 1))) for _ in range(c)]
    images = -(-max(map(len, sums)) // (oh * ow))
    sums = np.stack([np.resize(e, images * oh * ow) for e in sums], -1)
    terms = _split(rng, sums, k * k, lo, hi).reshape(k, k, images, oh, ow, c)
    fmap = _maps(rng, (images, h, w, c), bits, signed)
    for ky in range(k):
        for kx in range(k):
            fmap[:, ky:ky + (oh - 1) * s + 1:s, kx:kx + (ow - 1) * s + 1:s] = terms[ky, kx]
    return fmap


def _avgpool():
    from imcflow.hw.pool import AvgPool
    from imcflow.sw import golden
    from imcflow.sw.arith import Requantizer, act_range, requantize
    from imcflow.sw.geometry import WindowGeometry
    units = []
    for n, (h, w, c, bits, k, s, sg, mult, shift, ab, asg) in enumerate(AVGPOOLS):
        rng = np.random.default_rng(30 + n)
        fmap = np.concatenate([_maps(rng, (3, h, w, c), bits, sg), _step_images(
            rng, (h, w, c), bits, sg, k, s, lambda sums: _requant_edges(
                sums, mult, shift, lambda t: requantize(t, mult, shift, act_bits=ab, signed=asg),
                96, act_range(ab, asg)))])
        y = golden.avg_pool(fmap, k, s, mult, shift, act_bits=ab, signed=asg)
        dut = AvgPool(WindowGeometry(h, w, c, k, s), bits, Requantizer(mult, shift, ab, asg),
                      signed=sg)
        units.append(Stream(f"a{n}", dut, {"i": fmap}, {"o": y}, n,
                            timing=_window_timing((h, w, k, s, 0), len(fmap),
                                                  dut.reducer.latency),
                            stalled=_window_stalls((h, w, k, s, 0), len(fmap), "line",
                                                   dut.reducer.latency)))
    return _stream_bank("avgpool", units)


GAPS = [  # h, w, c, bits, signed, mult, shift, act_bits, act_signed, passes
    (3, 4, 2, 6, True, 3000, 15, 6, True, 1),
    (2, 3, 3, 8, False, 65535, 17, 8, False, 1),
    (1, 1, 1, 4, False, 1, 0, 4, False, 1),
    # 5 channels through 2 shared multipliers over 3 passes (Arch.requant_lanes): the totals
    # move down through their registers, the products in at the top (a pad register above)
    (2, 2, 5, 5, True, 2901, 14, 4, True, 3),
]


GAP_IMAGES = 16


def requant_model(pixels: int, offered: str, ready: str, passes: int = 1, after: int = 1):
    """Cycle-accurate model of a `~imcflow.hw.pool.GlobalAvgPool` of ``pixels`` pixels per image
    (or, with ``pixels`` 1, of a `~imcflow.hw.accumulator.AdcAccumulator`, whose sum register
    takes every beat) under stalls (as `window_model`): the cycles of its input and output
    handshakes. The sum of an image enters the total register at the handshake of its last
    pixel, which waits until that register is free; then the product register, filled over
    ``passes`` cycles (the block's ``passes``: shared multipliers), which empties the total
    register in its last pass, and ``after`` registers, the output register last (2 for a
    `~imcflow.hw.residual.Join`: its sum register, then the output); each advances when the next
    is empty or being emptied."""
    total = product = False
    chain = [False] * after     # the registers after the product register, the output last
    step = count = 0
    accepted, taken = [], []
    for c, (offer, take) in enumerate(zip(offered, ready)):
        if chain[-1] and take == "1":
            taken.append(c)
        free = [False] * after   # whether each register of the chain takes this cycle
        for k in reversed(range(after)):
            free[k] = not chain[k] or (take == "1" if k == after - 1 else free[k + 1])
        product_free = not product or free[0]
        last = step == passes - 1
        total_free = not total or (product_free and last)
        end = count == pixels - 1
        write = offer == "1" and (not end or total_free)
        for k in reversed(range(after)):
            if free[k]:
                chain[k] = chain[k - 1] if k else product
        if product_free:
            product = total and last
        if product_free and total:
            step = 0 if last else step + 1
        total = (write and end) or (total and not total_free)
        if write:
            accepted.append(c)
            count = 0 if end else count + 1
    return accepted, taken


def _gap():
    from imcflow.hw.pool import GlobalAvgPool
    from imcflow.sw import golden
    from imcflow.sw.arith import Requantizer, act_range, requantize
    units = []
    for n, (h, w, c, bits, sg, mult, shift, ab, asg, passes) in enumerate(GAPS):
        # one output per image: many images, two of them all-lowest and all-highest (the
        # extreme sums, where the accumulator's top bits and the rounding carry matter)
        rng = np.random.default_rng(40 + n)
        fmap = _maps(rng, (GAP_IMAGES, h, w, c), bits, sg)
        lo, hi = act_range(bits, sg)
        fmap[1], fmap[2] = lo, hi
        # then images whose sums are the steps of the requantized output and just below them
        steps = _requant_edges(np.arange(h * w * lo, h * w * hi + 1), mult, shift, lambda t:
                               requantize(t, mult, shift, act_bits=ab, signed=asg), 48,
                               act_range(ab, asg))
        sums = np.stack([rng.permutation(steps) for _ in range(c)], -1)
        fmap = np.concatenate([fmap, np.moveaxis(_split(rng, sums, h * w, lo, hi), 0, 1)
                               .reshape(len(steps), h, w, c)])
        y = golden.global_avg_pool(fmap, mult, shift, act_bits=ab, signed=asg)
        dut = GlobalAvgPool(h, w, c, bits, Requantizer(mult, shift, ab, asg), signed=sg,
                            passes=passes)

        def timing(cy, hw=h * w, images=len(fmap), dut=dut):
            _expect(cy["i"] == list(range(images * hw)), "gap: input not one pixel per cycle")
            _expect(cy["o"] == [(n + 1) * hw - 1 + dut.latency
                                for n in range(images)], "gap: output cycles")
        # under stalls too: a total register that waits for the product register even when
        # empty (gap #1/#3 of the seed-1 campaign at 53aade4) only costs cycles
        units.append(Stream(f"g{n}", dut, {"i": fmap}, {"o": y}, n, timing=timing,
                            stalled=_model_stalls(lambda offered, ready, hw=h * w, dut=dut:
                                                  requant_model(hw, offered, ready, dut.passes))))
    return _stream_bank("gap", units)


WINDOWS = [  # h, w, c, bits, kernel, stride, padding, strategy, signed, pad_value, passes
    (5, 5, 2, 4, 3, 1, 1, "line", False, 0, 1),
    (7, 5, 1, 4, 3, 2, 0, "line", True, -3, 1),
    (4, 4, 1, 3, 2, 1, 1, "frame", False, 5, 1),
    (3, 4, 2, 3, 3, 1, 2, "line", False, 0, 1),
    (6, 6, 1, 3, 3, 2, 0, "line", False, 0, 1),    # stride 2: the last row and column unused
    (5, 4, 2, 3, 1, 2, 0, "line", True, 0, 1),     # kernel 1, stride 2
    (6, 5, 1, 4, 3, 2, 1, "frame", False, 7, 1),   # stride 2 with padding 1
    # read over passes (Arch.window_ports): one port and 9 passes (the fpga preset's line
    # buffers), and 3 ports over 3 passes (4 asked: the fewest the ports need)
    (6, 5, 2, 4, 3, 1, 1, "line", True, -2, 9),
    (5, 4, 1, 3, 3, 2, 1, "frame", False, 3, 4),
]


def window_model(h, w, kernel, stride, padding, strategy, images, offered: str, ready: str,
                 stages: int = 0, passes: int = 1):
    """Cycle-accurate model of a `~imcflow.hw.im2col.WindowSource` under stalls, followed by
    ``stages`` pipeline registers (a pool's reducer: each advances when the next is empty or
    being emptied): the cycles of its input and output handshakes when ``offered[c]``
    (``"1"``/``"0"``) says whether the producer offers a pixel in cycle ``c`` and ``ready[c]``
    whether the consumer takes an output. The window rules are those of
    `imcflow.sw.timing.window_schedule` (`window_needs`): a pixel is accepted unless it would
    overwrite one still needed (line) or the image being read (frame); a window is read
    (registered into ``o``) once its last pixel has been accepted (that cycle's included) and
    ``o`` is free or being taken. With ``passes > 1`` (a source of ``WindowSource(...,
    passes=passes)``, no ``stages``) the read takes ``passes`` cycles and starts only when its
    last pixel was accepted in an earlier cycle (the ports are not transparent) and ``o`` is
    empty (not while it is being taken); the window is valid after its last pass, in which the
    pixels it alone needs are freed (`imcflow.sw.timing.read_windows`, `accept_pixels`)."""
    from imcflow.sw.geometry import WindowGeometry
    from imcflow.sw.timing import window_needs, window_ports
    geometry = WindowGeometry(h, w, 1, kernel, stride, padding)
    keep, last, words = window_needs(geometry, strategy=strategy)
    passes = window_ports(geometry.taps, passes)[1]
    assert passes == 1 or not stages, "window_model: passes with reducer stages"
    pixels, per_image = h * w, len(last)
    count = window = fired = 0
    valid = False
    step = None                         # the pass of the read under way (passes > 1)
    piped = [False] * stages            # the registers after the window source, output last
    accepted, taken = [], []
    for c, (offer, take) in enumerate(zip(offered, ready)):
        take = take == "1"
        frees = []
        for v in reversed(piped):
            take = not v or take
            frees.insert(0, take)
        if stages and piped[-1] and ready[c] == "1":
            taken.append(c)
        for k in reversed(range(stages)):
            if frees[k]:
                piped[k] = valid if k == 0 else piped[k - 1]
        bound = words if strategy == "frame" else keep[window] + words
        write = offer == "1" and count < bound and len(accepted) < images * pixels
        if passes == 1:
            fire = (fired < images * per_image and count + write > last[window]
                    and (not valid or take))
        else:
            if step is None and fired < images * per_image and count > last[window] \
                    and not valid:
                step = 0
            fire = step == passes - 1
            step = None if step is None or fire else step + 1
        if write:
            accepted.append(c)
        if valid and take and not stages:
            taken.append(c)
        valid = fire or (valid and not take)
        if fire:
            fired, window = fired + 1, window + 1
            if window == per_image:
                window, count = 0, count - pixels
        count += write
    return accepted, taken


def _model_stalls(model, inputs=("i",)):
    """A `Stream.stalled` check: every input and output handshake in the cycle that
    ``model(offered, ready)`` (the recorded ``i.valid`` and ``o.ready`` of every cycle) says.
    With several ``inputs`` taken together (the accumulator's row tiles, the join's two
    streams), a beat is offered in the cycles all of them are valid, and each is taken in the
    cycles the model says."""
    def stalled(cycles, flags):
        offered = "".join("1" if all(flags[p][c] == "1" for p in inputs) else "0"
                          for c in range(len(flags["o"])))
        accepted, taken = model(offered, flags["o"])
        for port, expected in (*((p, accepted) for p in inputs), ("o", taken)):
            k = next((k for k, (a, b) in enumerate(zip(cycles[port], expected)) if a != b),
                     min(len(cycles[port]), len(expected)))
            _expect(cycles[port] == expected, f"{port}: handshake {k} under stalls in cycle "
                    f"{cycles[port][k:k + 1]}, the model says {expected[k:k + 1]}")
    return stalled


def _window_stalls(geometry, images, strategy, stages=0, passes=1):
    return _model_stalls(lambda offered, ready: window_model(*geometry, strategy, images,
                                                             offered, ready, stages, passes))


#: Images per window source (at least; see `_window_images`), and its backpressure: long stalls
#: often, so that some come while the last rows of an image are read and the producer is far
#: into the next one (a wrong `keep` lets it overwrite pixels still needed only then)
WINDOW_IMAGES = 5
WINDOW_BACKPRESSURE = [[0.98, 120], [0.4, 80], [0.97, 40], [0.2, 60], [0.97, 40], [0.0, 50]]
#: and its producer's idle cycles: first a long slow phase in which the reader waits for nearly
#: every pixel, so that a window is asked for before its last pixel has arrived (a `need` with
#: bit 3 tied to 0, im2col #34 of the seed-1 campaign, read row 2 of unit w3 before it came only
#: then; the small units have sent every image before a phase after `IDLE` begins), then `IDLE`
WINDOW_IDLE = [[0.7, 300], *IDLE]


def _window_images(pixels: int, words: int) -> int:
    """Images a window source of a ``words``-word circular buffer gets: image ``n`` starts at
    address ``n * pixels mod words``, so after ``words / gcd(pixels, words)`` images the start
    addresses repeat; one image more steps from each of them to the next (im2col #27 of the
    seed-1 campaign, a tap's address at the change of image with bit 0 tied to 1, is wrong only
    from address 10 of the 15-word buffer of w4, where the 6th image starts)."""
    return max(WINDOW_IMAGES, words // math.gcd(pixels, words) + 1)


def _handover_idle(geometry, images, strategy, passes=1) -> str:
    """The idle flags (`Stream.handover`: one per cycle in which the producer has no pixel on
    offer, ``"1"`` to pause) of a window source's producer that sends each image at full rate
    and pauses after it until the reader's last window of it, so that the next image's first
    pixel is accepted in the very cycle of that window's read (its last pass, ``done``), with
    the buffer holding exactly the image, the consumer always ready (`window_model`). The
    buffer's count then takes its ``write`` and ``done`` branch at once from ``count ==
    pixels``, which random stalls almost never give: a ``count + 1`` with bit 1 XNORed with
    bit 5 there (linebuffer #29 at 4428ab6, unit w7) and a `covered` on a write compared with
    ``need | 2`` (#50, w6: the last window's read a cycle late) passed every other case. Where
    the last window is read before the image's last pixel arrives (a kernel that leaves the
    last pixels out), the next image follows at once."""
    from imcflow.sw.geometry import WindowGeometry
    from imcflow.sw.timing import window_needs
    h, w, k, s, p = geometry
    pixels = h * w
    per_image = len(window_needs(WindowGeometry(h, w, 1, k, s, p), strategy=strategy)[1])
    cycles = 2 * images * (pixels + per_image * passes) + 100    # more than the run takes
    valid, gaps = ["1"] * cycles, []
    for n in range(images - 1):
        accepted, taken = window_model(h, w, k, s, p, strategy, images, "".join(valid),
                                       "1" * cycles, 0, passes)
        # the image's last pixel accepted, its last window read (the cycle before it is taken)
        end, done = accepted[(n + 1) * pixels - 1], taken[(n + 1) * per_image - 1] - 1
        gap = max(done - end - 1, 0)
        valid[end + 1:end + 1 + gap] = ["0"] * gap
        gaps.append(gap)
    return "".join("0" * pixels + "1" * gap for gap in gaps)


def _window_source():
    from imcflow.hw.im2col import WindowSource
    from imcflow.sw import golden
    from imcflow.sw.geometry import WindowGeometry
    units = []
    for n, (h, w, c, bits, k, s, p, strategy, sg, pad, passes) in enumerate(WINDOWS):
        dut = WindowSource(WindowGeometry(h, w, c, k, s, p), bits, strategy=strategy, signed=sg,
                           pad_value=pad, passes=passes)
        images = _window_images(h * w, dut.words)
        fmap = _maps(np.random.default_rng(50 + n), (images, h, w, c), bits, sg)
        y = golden.windows(fmap, k, s, p, pad)
        units.append(Stream(f"w{n}", dut, {"i": fmap}, {"o": y}, n, idle=WINDOW_IDLE,
                            backpressure=WINDOW_BACKPRESSURE,
                            timing=_window_timing((h, w, k, s, p), images, 0, strategy,
                                                  passes),
                            stalled=_window_stalls((h, w, k, s, p), images, strategy, 0,
                                                   passes),
                            handover=_handover_idle((h, w, k, s, p), images, strategy, passes)))
    return _stream_bank("window_source", units)


def _steps(values, f):
    """The ``values`` (sorted) at which ``f(values)`` changes, and each one's predecessor."""
    out = f(values)
    at = np.flatnonzero(out[1:] != out[:-1]) + 1
    return np.unique(np.concatenate([values[at], values[at - 1]]))


def _beyond(values, unsaturated, lo: int, hi: int):
    """The ``values`` (sorted) closest to the saturation bounds from outside: the last whose
    requantized value before the saturation (``unsaturated``) is below ``lo`` and the first
    above ``hi``, where there are such. A saturation whose bound's constant has a bit tied
    (accumulator #18 at d35e40c: ``x < 0`` as ``x < -1``, a signed one-bit zero with its bit set)
    or whose multiplexer puts out another constant (#12: -8 as -4) differs only there: the
    steps (`_steps`) lie inside the bounds."""
    u = unsaturated(values)
    below, above = values[u < lo], values[u > hi]
    return np.array([*below[-1:], *above[:1]], dtype=values.dtype)


def _requant_edges(values, mult: int, shift: int, f, count: int, bounds=None):
    """At most ``count`` of ``values`` (sorted) where requantization ``f`` (a multiply by
    ``mult``, a rounding shift by ``shift``, a saturation to ``bounds``) is on edge: the values
    just beyond the saturation bounds (`_beyond`), the first two and last two steps of ``f``
    (the saturation bounds), then those whose product's dropped bits are closest to half, both
    sides (a mutant of a sum or product bit moves the rounding there)."""
    from imcflow.sw.arith import round_shift
    steps = _steps(values, f)
    near = values[np.argsort(np.abs((values * mult) % (1 << shift) - (1 << shift >> 1) + 0.5),
                             kind="stable")] if shift else values
    beyond = _beyond(values, lambda v: round_shift(v * mult, shift), *bounds) if bounds else []
    edges = list(dict.fromkeys([*beyond, *steps[:2], *steps[-2:], *near]))
    return np.array(edges[:count])


def _split(rng, sums, parts: int, lo: int, hi: int):
    """Random terms in ``[lo, hi]``, ``parts`` of them (the first axis), adding up to ``sums``."""
    terms, left = [], np.array(sums)
    for k in range(parts - 1, 0, -1):
        term = np.clip(rng.integers(lo, hi + 1, size=left.shape), left - k * hi, left - k * lo)
        terms.append(term)
        left = left - term
    return np.stack([*terms, left])


#: The accumulator's backpressure: random stalls first, while the producer idles at random too,
#: so that the sum register runs empty while the registers after it are full and stalled (the
#: default's long stall first kept every register full: #17 at d35e40c, a sum register that
#: waits for the product register even when empty, lost no cycle in the 20 beats of unit u2)
ACCUMULATOR_BACKPRESSURE = [[0.4, 200], [0.98, 120], [0.0, 100], [0.97, 80]]


def _accumulator():
    from imcflow.hw.accumulator import AdcAccumulator
    from imcflow.sw.arch import Arch
    from imcflow.sw.arith import Requantizer, act_range, requantize, round_shift
    units = []
    # requantization chosen so most outputs fall inside the activation range (a mutant of the
    # sum must change the output, not hide behind saturation), yet every column's sums reach
    # beyond both bounds: a column that never saturates leaves its saturation untested, and the
    # mutants of it are equivalent only under the input contract (partial sums in the ADC's
    # range), which no proof assumes (accumulator #12 at d35e40c: u3's column 3, multiplier 19,
    # reached -4 at most, so its bound -8 put out as -4 survived)
    configs = [  # arch, row tiles, cols, signed, bias, mult, shift
        (Arch(act_bits=8, adc_bits=8), 3, 2, False, [200, 0], [230, 350], 9),
        (Arch(act_bits=4, adc_bits=6, input_encoding="bit_serial"), 2, 3, True,
         [100, -20, 0], [45, 37, 40], 12),
        (Arch(act_bits=3, adc_bits=4), 1, 1, True, [-2], [3], 0),
        # 3 requantization multipliers shared by 5 columns over 2 passes (requant_lanes)
        (Arch(act_bits=4, adc_bits=6, input_encoding="bit_serial", requant_lanes=3), 2, 5, True,
         [100, -20, 0, 7, -50], [45, 37, 40, 41, 38], 12),
    ]
    for n, (arch, tiles, cols, sg, bias, mult, shift) in enumerate(configs):
        rng = np.random.default_rng(60 + n)
        lo, hi = arch.crossbar.output_range
        parts = rng.integers(lo, hi + 1, size=(tiles, 12, 4, cols))
        parts = np.where(rng.random(parts.shape) < 0.15, rng.choice([lo, hi], parts.shape), parts)
        # then the sums at every step of the requantized output and just below it (rounding
        # boundaries and the saturation bounds: a mutant that moves a step shows there)
        sums = np.arange(tiles * lo, tiles * hi + 1)
        edges = [np.union1d(_steps(sums, lambda s, c=c: requantize(
            s + bias[c], mult[c], shift, act_bits=arch.act_bits, signed=sg)),
            _beyond(sums, lambda s, c=c: round_shift((s + bias[c]) * mult[c], shift),
                    *act_range(arch.act_bits, sg)))
                 for c in range(cols)]
        beats = -(-max(map(len, edges)) // 4) * 4          # maps of 4 beats, as the others
        sums = np.stack([np.resize(rng.permutation(e), beats) for e in edges], -1)
        parts = np.concatenate([parts, _split(rng, sums, tiles, lo, hi).reshape(
            tiles, beats // 4, 4, cols)], axis=1)
        y = requantize(parts.sum(axis=0) + np.array(bias), np.array(mult), shift,
                       act_bits=arch.act_bits, signed=sg)
        dut = AdcAccumulator(bias, Requantizer(mult, shift, arch.act_bits, sg), row_tiles=tiles,
                             params=arch.crossbar)

        def timing(cy, tiles=tiles, dut=dut):
            i = cy["i__0"]
            _expect(all(cy[f"i__{t}"] == i for t in range(tiles)), "accumulator: tiles apart")
            _expect(i == list(range(0, dut.interval * len(i), dut.interval)),
                    "accumulator: not one beat per interval")
            _expect(cy["o"] == [t + dut.latency for t in i], "accumulator: latency")
        # under stalls too (the sum register takes a beat while it is empty even when the
        # product and output registers are full and stalled: with `~acc_valid` tied to 0,
        # accumulator #17 at d35e40c, the data stay right and a cycle is lost)
        ports = tuple(f"i__{t}" for t in range(tiles))
        units.append(Stream(f"u{n}", dut, {p: parts[t] for t, p in enumerate(ports)},
                            {"o": y}, n, backpressure=ACCUMULATOR_BACKPRESSURE, timing=timing,
                            stalled=_model_stalls(lambda offered, ready, dut=dut: requant_model(
                                1, offered, ready, dut.passes), ports)))
    return _stream_bank("accumulator", units)


def _queue_proof(component, module_il, module, width, mutsel):
    from imcflow.verif import contracts
    from imcflow.verif.formal import check
    mutant = contracts.as_instance(component, module, {"mutsel": Const(mutsel, width)})
    check(contracts.QueueSpec(mutant, internal=False), mode="bmc",
          depth=2 * component.depth + 1, name=f"mutate-{module}", modules=[module_il])


def _bank_proof(spec, depth, covers=lambda unit: True):
    """The proofs of a bank: ``contracts.<spec>`` of every unit that ``covers(unit)``, a
    bounded model check of ``depth`` cycles on the mutant."""
    def proofs(bank, module_il, module, width, mutsel):
        from imcflow.verif import contracts
        from imcflow.verif.formal import check
        mutant = contracts.as_instance(bank, module, {"mutsel": Const(mutsel, width)})
        units = {name: unit for name, unit in bank.units.items() if covers(unit)}
        check(contracts.each_unit(mutant, units, getattr(contracts, spec), internal=False),
              mode="bmc", depth=depth, name=f"mutate-{module}", modules=[module_il])
    return proofs


def _queues():
    from imcflow.hw.fifo import PipelineFifo, SkidBuffer
    from imcflow.hw.residual import SkipFifo
    from imcflow.hw.streams import VectorLayout
    return {
        "fifo": Target("fifo", ("hw/fifo.py",), _queue("fifo", lambda: PipelineFifo(3, 5),
                                                      {"width": 3}),
                       _queue_proof, "PipelineFifo(3 bits, depth 5)"),
        "skid": Target("skid", ("hw/fifo.py",),
                       _queue("skid", lambda: SkidBuffer(3), {"width": 3}),
                       _queue_proof, "SkidBuffer(3 bits)"),
        "skipfifo": Target("skipfifo", ("hw/fifo.py", "hw/residual.py"),
                           _queue("skipfifo", lambda: SkipFifo(VectorLayout(2, 4), 37),
                                  {"lanes": 2, "bits": 4, "signed": False}, beats=4000),
                           None, "SkipFifo(2 lanes of 4 bits, depth 37)"),
    }


def _targets() -> dict[str, Target]:
    targets = _queues()
    targets.update({
        "linebuffer": Target("linebuffer", ("hw/linebuffer.py", "hw/framebuffer.py"),
                             _window_source, None, "WindowSource bank (line and frame)"),
        "im2col": Target("im2col", ("hw/im2col.py",), _window_source, None,
                         "WindowSource bank (line and frame)"),
        "accumulator": Target("accumulator", ("hw/accumulator.py", "hw/arith.py"),
                              _accumulator, None, "AdcAccumulator bank"),
        "maxpool": Target("maxpool", ("hw/pool.py",), _maxpool, None, "MaxPool bank"),
        "avgpool": Target("avgpool", ("hw/pool.py", "hw/arith.py"), _avgpool, None,
                          "AvgPool bank"),
        "gap": Target("gap", ("hw/pool.py", "hw/arith.py"), _gap, None, "GlobalAvgPool bank"),
        "fork": Target("fork", ("hw/residual.py",), _fork, _bank_proof("ForkSpec", 8), "Fork bank"),
        # JoinSpec is the contract of a join of one pass (a pair consumed whenever fewer than two
        # are pending): a join with several passes (j3) has its regression only
        "join": Target("join", ("hw/residual.py", "hw/arith.py"), _join,
                       _bank_proof("JoinSpec", 4, lambda unit: unit.passes == 1), "Join bank"),
        "crossbar": Target("crossbar", ("hw/crossbar.py", "hw/arith.py"), _crossbar, None,
                           "CrossbarTile bank (fpga flavour: pwm and bit_serial)"),
    })
    return targets


BLOCKS = ("fifo", "skid", "skipfifo", "fork", "join", "linebuffer", "im2col", "accumulator",
          "maxpool", "avgpool", "gap", "crossbar")


CROSSBARS = [  # rows, cols, Arch keywords (small: a mutant simulation is cheap)
    (3, 3, dict(act_bits=3, weight_bits=3, adc_bits=4, mvm_cycles=2, col_parallelism=2,
                mac_stages=1)),
    (4, 2, dict(act_bits=3, weight_bits=4, adc_bits=3, input_encoding="bit_serial",
                mvm_cycles=3, col_parallelism=1)),
    (2, 3, dict(act_bits=2, weight_bits=2, adc_bits=3, mvm_cycles=3)),
]


def _crossbar():
    """Tiles of the ``fpga`` flavour (the MAC array, which Yosys synthesizes) through
    tests/cocotb/crossbar_tb.py: windows under random idle and backpressure, every column
    reprogrammed, windows on the new image, then full speed with the latency and interval
    checks; golden outputs from `imcflow.sw.arith.crossbar_mvm`."""
    from imcflow.hw.crossbar import CrossbarTile
    from imcflow.sw.arch import Arch
    from imcflow.sw.arith import crossbar_mvm, weight_range
    from imcflow.verif.bank import Bank
    from imcflow.verif.runner import cache_dir
    data, tiles, units = {}, {}, []
    for k, (rows, cols, kwargs) in enumerate(CROSSBARS):
        arch = Arch(rows=rows, cols=cols, **kwargs)
        rng = np.random.default_rng(70 + k)
        lo, hi = weight_range(arch.weight_bits)
        weight, new = (np.where(rng.random((rows, cols)) < 0.2, rng.choice([lo, hi], (rows, cols)),
                                rng.integers(lo, hi + 1, (rows, cols))) for _ in range(2))
        # the gain that puts the dot products around the ADC range: some codes saturate, most
        # do not, and the rounding matters
        planes_max = (1 << arch.act_bits) - 1 if arch.input_encoding == "pwm" else 1
        shift = max(0, (rows * planes_max * hi).bit_length() - arch.adc_bits)
        tile = CrossbarTile(weight, adc_shift=shift, params=arch.crossbar)
        prefix = f"u{k}_"
        order = [*rng.permutation(cols), int(rng.integers(cols))]
        if cols & (cols - 1):
            order.insert(int(rng.integers(len(order))), cols)   # beyond the tile: ignored
        data[prefix + "write_col"] = np.array(order)
        data[prefix + "write_data"] = np.array([new[:, c] if c < cols else weight[:, 0]
                                                for c in order])
        for phase, n, image in (("a", 20, weight), ("b", 20, new), ("c", 10, new)):
            x = _maps(rng, (n, rows), arch.act_bits, False)
            data[f"{prefix}x_{phase}"] = x
            data[f"{prefix}y_{phase}"] = crossbar_mvm(
                x, image, encoding=arch.input_encoding, act_bits=arch.act_bits,
                adc_bits=arch.adc_bits, adc_shift=shift)
        tiles[f"u{k}"] = tile
        units.append({"prefix": prefix, "rows": rows, "cols": cols, "act_bits": arch.act_bits,
                      "weight_bits": arch.weight_bits, "out_bits": tile.out_bits,
                      "steps": tile.steps, "latency": tile.latency, "interval": tile.interval,
                      "seed": 70 + k, "idle": 0.3, "stall": 0.4})
    path = cache_dir("mutate") / "crossbar.data.npz"
    np.savez(path, **data)
    case = {"testbench": "crossbar_tb", "testcase": "tiles",
            "parameters": {"units": units, "image": 5, "data": str(path)}}
    return Bank(tiles), {}, Regression([case])


# --- the campaign ------------------------------------------------------------------------------

def simulate(build, regression: Regression, mutsels: list[int], name: str,
             batch: int = 25) -> dict[int, str | None]:
    """Run ``regression`` on each mutant ``mutsels`` of ``build``, ``batch`` mutants per
    simulator run (tests/cocotb/mutants_tb.py); ``{mutsel: None if it passed, else what killed
    it}``. A run that crashes is split until the mutant that crashes it runs alone: the crash
    kills it."""
    from imcflow.verif import runner
    plan = runner.cache_dir("mutate") / f"{name}.plan.json"

    def run(sels):
        plan.write_text(json.dumps({"mutsels": sels, "cases": regression.cases}))
        try:
            run_dir, outcomes = runner.run_cases(build, TB_DIR / "mutants_tb.py",
                                                 parameters={"plan": str(plan)},
                                                 test_id=f"mutate-{name}")
        except runner.SimulationError as e:
            if len(sels) == 1:
                return {sels[0]: "the simulator failed: " + str(e).splitlines()[0][:300]}
            half = len(sels) // 2
            return {**run(sels[:half]), **run(sels[half:])}
        found = {}
        for at, k in enumerate(sels):
            names = [f"m{k}_c{n}" for n in range(len(regression.cases))]
            if any("simulation ended prematurely" in (outcomes.get(n) or "") for n in names):
                # the mutant stopped the simulator (a design assertion's $stop): cocotb marks
                # every testcase after it failed too, so the mutants after it run again
                found[k] = "the simulator stopped (a design assertion or $stop)"
                return {**found, **(run(sels[at + 1:]) if sels[at + 1:] else {})}
            failure = next((f"{case['testcase']}: {outcomes[n][:300]}"
                            for n, case in zip(names, regression.cases) if outcomes.get(n)), None)
            if any(n not in outcomes for n in names):
                raise RuntimeError(f"{name}: mutant {k}'s testcases did not all run; see "
                                   f"{run_dir}")
            if failure is None and regression.check is not None:
                reports = [json.loads((run_dir / f"{n}.json").read_text())
                           if (run_dir / f"{n}.json").exists() else {} for n in names]
                try:
                    regression.check(reports)
                except AssertionError as e:
                    failure = "check: " + str(e).splitlines()[0][:300]
            found[k] = failure
        return found

    results = {}
    for start in range(0, len(mutsels), batch):
        results.update(run(mutsels[start:start + batch]))
        progress(f"{name}: {len(results)}/{len(mutsels)} simulated, "
                  f"{sum(v is not None for v in results.values())} failing")
    return results


def campaign(block: str, *, count: int = 50, seed: int = 1, equivalence: bool = True) -> dict:
    """Mutate ``block`` ``count`` times (Yosys seed ``seed``) and run its checks on each mutant.

    Returns the report: ``block``, ``design``, ``seed``, ``mutants``, ``killed``, ``survived``,
    ``equivalent``, ``kill_rate``, ``seconds`` (wall), ``cpu_seconds`` (this process and the
    tools it ran) and ``results``, one entry per mutant with its ``mutsel``, ``mutation`` (the
    ``mutate`` arguments), ``source`` (the mutated line), ``status``
    (``killed``/``survived``/``equivalent``) and ``by`` (what killed it: the regression's, the
    check's or the proof's first failure line; or what proved it equivalent; None for a
    survivor).
    """
    from amaranth.back import rtlil
    from imcflow.verif import runner
    from imcflow.verif.formal import FormalError

    if block not in BLOCKS:
        raise UserError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")
    target = _targets()[block]
    start, cpu_start = time.monotonic(), _cpu_seconds()
    component, params, regression = target.design()
    top = f"{block}_mutants"
    text = rtlil.convert(component, name=top)
    muts = mutations(text, top, count, seed, target.select)
    if not muts:
        raise UserError(f"{block}: Yosys found no mutation in {', '.join(target.sources)}")
    progress(f"{block}: {len(muts)} mutants of {target.about} (seed {seed}); building ...")
    verilog, mutants_il = mutant_design(text, top, muts)
    # A mutation may close a loop through the mutsel multiplexers that no single mutant uses:
    # Verilator's performance warning about it is waived for this design only. So is
    # CASEOVERLAP: Yosys writes a parallel multiplexer ($pmux, e.g. the accumulator's shared
    # multipliers' column select after `prep`) as a casez whose patterns overlap only when more
    # than one select is set, which the original never does (a mutant may: the first wins).
    # Traced only with IMCFLOW_KEEP_WAVES=1 (then the last run's waveform is kept).
    build = runner.build_verilog(verilog, name=top, parameters=params,
                                 flags=["-Wno-UNOPTFLAT", "-Wno-CASEOVERLAP"])
    width = mutsel_width(len(muts))
    failures = simulate(build, regression, [0, *(m.index for m in muts)], block)
    if failures[0] is not None:
        raise UserError(f"{block}: the checks fail on the original design ({failures[0]})")

    def prove(mutsel):
        try:
            target.proofs(component, mutants_il, top, width, mutsel)
        except FormalError as e:
            return "proof: " + str(e).splitlines()[0][:300]
        return None

    original = prove(0) if target.proofs is not None else None
    if original is not None:
        raise UserError(f"{block}: the proofs fail on the original design ({original})")
    results = []
    for m in muts:
        by = failures[m.index]
        if by is None and target.proofs is not None:
            by = prove(m.index)
        status = "killed" if by else "survived"
        if not by and equivalence:
            by = equivalent(component, m)
            status = "equivalent" if by else "survived"
        results.append({"mutsel": m.index, "mutation": m.args, "source": m.describe(),
                        "status": status, "by": by})
        if status != "killed":
            progress(f"{block}: mutant {m.index}/{len(muts)} {status}: {m.describe()}")
    counts = {s: sum(r["status"] == s for r in results) for s in ("killed", "survived",
                                                                   "equivalent")}
    relevant = len(results) - counts["equivalent"]
    return {"block": block, "design": target.about, "seed": seed, "mutants": len(results),
            **counts, "kill_rate": counts["killed"] / relevant if relevant else 1.0,
            "seconds": round(time.monotonic() - start, 1),
            "cpu_seconds": round(_cpu_seconds() - cpu_start, 1), "results": results}


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the tools it ran)."""
    import resource
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
