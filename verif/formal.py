"""Formal verification of Amaranth components with SymbiYosys and z3.

A *spec* is an `Elaboratable` that instantiates the component under test, drives its inputs
from ``AnySeq``/``AnyConst`` (``amaranth.asserts``) and states properties with ``Assert``,
``Assume`` and ``Cover`` (``amaranth.hdl``); Amaranth 0.5 has no ``Past``, so keep previous
values in ``sync`` registers. `check` elaborates it for ``platform="formal"`` (components may add
assertions about their own state then), converts it to RTLIL, writes an ``.sby`` file using the
``smtbmc z3`` engine and runs ``yowasp-sby``. Reset is asserted in the initial cycle only.

Modes
-----
``prove``
    Unbounded proof by k-induction of every ``Assert`` (base case and induction step, both
    ``depth`` cycles long).
``bmc``
    Bounded model check: no ``Assert`` fails within ``depth`` cycles from reset.
``cover``
    Every ``Cover`` is reachable within ``depth`` cycles (shows the assumptions leave the
    interesting behaviours possible, so the asserts are not vacuous).
``pdr``
    Unbounded proof of every ``Assert`` by property-directed reachability (IC3/PDR), which needs
    no inductive depth and no user invariant: it finds an inductive invariant itself (or a
    counterexample from reset). SymbiYosys' PDR engine needs ABC, which yowasp lacks; here Yosys
    writes the model as SMT-LIB functions of one state bit vector (``write_smt2 -stbv``: init,
    transition, assumptions, assertions) and z3's Spacer engine solves the constrained Horn
    clauses ``Inv(s) <- init(s)``, ``Inv(t) <- Inv(s), assumed(s), trans(s, t)``,
    ``false <- Inv(s), assumed(s), not asserted(s)``: ``sat`` (an invariant exists) is a proof,
    ``unsat`` a reachable failure, anything else (``unknown``, the ``timeout``) no proof.
    ``depth`` is not used.

Each run works in ``$IMCFLOW_CACHE/formal/<name>-<mode>/`` (``<name>`` defaults to the pytest node
id), emptied first. The directory is removed when the check passes and kept when it fails, and
`FormalError` names it together with the counterexample traces (``spec/engine_0/trace*.vcd``) and
SymbiYosys' summary of the failed properties.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
from collections.abc import Sequence

from imcflow import toolchain
from imcflow.verif.runner import cache_dir, current_test_id

__all__ = ["MODES", "FormalError", "check"]

MODES = ("prove", "bmc", "cover", "pdr")


class FormalError(AssertionError):
    """A property failed (or a cover was unreachable); the message points at the traces."""


def _rtlil(spec) -> str:
    from amaranth.asserts import Initial
    from amaranth.back import rtlil
    from amaranth.hdl import Assume, Module, ResetSignal

    top = Module()
    top.submodules.spec = spec
    top.d.comb += Assume(ResetSignal("sync") == Initial())
    return rtlil.convert(top, name="top", platform="formal", ports=())


def check(spec, *, mode: str = "prove", depth: int = 20, name: str | None = None,
          modules: Sequence[str] = (), timeout: int | None = None) -> None:
    """Run SymbiYosys on ``spec`` in ``mode`` with ``depth`` steps; raise `FormalError` on failure.

    Parameters
    ----------
    spec : Elaboratable
        The component under test with its environment and properties (see the module docstring).
    mode : str
        ``"prove"``, ``"bmc"``, ``"cover"`` or ``"pdr"``.
    depth : int
        Steps of the base case and induction (``prove``) or of the bounded search.
    name : str, optional
        Prefix of the work directory (default: the pytest node id).
    modules : sequence of str
        RTLIL texts of modules that ``spec`` instantiates with ``Instance`` (e.g. mutants),
        read before the spec.
    timeout : int, optional
        CPU seconds after which a tool gives up (a `FormalError`): of z3 in mode ``pdr``, else
        of SymbiYosys and of each solver process it starts (a verdict that does not depend on
        the machine's load); 20 times as many seconds of wall time end it too.

    Raises
    ------
    ValueError
        If ``mode`` or ``depth`` is invalid.
    FormalError
        If a property fails, a cover is unreachable or the tools report an error.
    """
    if mode not in MODES:
        raise ValueError(f"Mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"Depth must be a positive integer, not {depth!r}")
    tools = {tool: toolchain.require(tool) for tool in ("sby", "yosys", "yosys-smtbmc", "z3")}
    work = cache_dir("formal") / f"{name or current_test_id()}-{mode}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / "spec.il").write_text(_rtlil(spec))
    extra = [f"module{n}.il" for n in range(len(modules))]
    for file, text in zip(extra, modules):
        (work / file).write_text(text)
    if mode == "pdr":
        _pdr(work, extra, tools, timeout)
        shutil.rmtree(work, ignore_errors=True)
        return
    (work / "spec.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\n"
        + (f"timeout {20 * timeout}\n" if timeout else "") + "\n"
        "[engines]\nsmtbmc z3\n\n"
        "[script]\n" + "".join(f"read_rtlil {f}\n" for f in extra)
        + "read_rtlil spec.il\n"
        # flattened when it instantiates modules, so their constant inputs fold away
        + f"prep {'-flatten ' if modules else ''}-top top\n\n"
        "[files]\n" + "".join(f"{f}\n" for f in extra) + "spec.il\n")
    out = subprocess.run(
        [tools["sby"], "-f", "spec.sby", "--yosys", tools["yosys"], "--smtbmc", tools["yosys-smtbmc"]],
        cwd=work, capture_output=True, text=True, env=toolchain.environ(),
        preexec_fn=_cpu_limit(timeout) if timeout else None)
    if out.returncode == 0:
        shutil.rmtree(work, ignore_errors=True)
        return
    log = (out.stdout + out.stderr).strip().splitlines()
    summary = [line.split("summary: ", 1)[1].strip() for line in log
               if "summary: " in line and "Elapsed" not in line] or log[-5:]
    traces = sorted((work / "spec").glob("engine_*/trace*.vcd"))
    raise FormalError(f"sby {mode} (depth {depth}) failed: " + "; ".join(summary)
                      + "".join(f"\ntrace: {trace}" for trace in traces)
                      + f"\nwork directory: {work}")


#: The model SymbiYosys gives its SMT engines (its ``model/design*.ys``), ending in one state
#: bit vector, memories as registers
_PDR_MODEL = """\
prep -flatten -top top
hierarchy -smtcheck
scc -select
simplemap
select -clear
memory_nordff
async2sync
chformal -assume -early
opt_clean
formalff -setundef -clk2ff -ff2anyinit -hierarchy
chformal -live -fair -cover -remove
opt_clean
check
setundef -undriven -anyseq
opt -fast
opt_clean
delete */t:$print
formalff -assume
memory_map
opt_clean
dffunmap
write_smt2 -stbv model.smt2
"""


def _horn(model: str) -> str:
    """The constrained Horn clauses of `check`'s ``pdr`` mode for SMT-LIB ``model`` (Yosys'
    ``write_smt2 -stbv`` of module ``top``): the reachable states ``Inv`` of every run from an
    initial state on which the assumptions held, and no such state failing an assertion."""
    body = "\n".join(line for line in model.splitlines() if not line.startswith("(set-"))
    if "(define-sort |top_s| () (_ BitVec" not in body:
        raise FormalError("pdr: Yosys wrote no state bit vector for module top")
    return f"""(set-logic HORN)
{body}
(declare-fun Inv (|top_s|) Bool)
(assert (forall ((s |top_s|)) (=> (and (|top_is| s) (|top_i| s) (|top_h| s)) (Inv s))))
(assert (forall ((s |top_s|) (t |top_s|)) (=> (and (Inv s) (|top_u| s) (|top_h| s)
    (|top_t| s t) (not (|top_is| t)) (|top_h| t)) (Inv t))))
(assert (forall ((s |top_s|)) (=> (and (Inv s) (|top_u| s) (not (|top_a| s))) false)))
(check-sat)
"""


def _cpu_limit(seconds: int):
    """A ``preexec_fn`` that limits the process (and each process it starts) to ``seconds`` of
    CPU time: a verdict that does not depend on the machine's load."""
    def limit():
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
    return limit


def _pdr(work, extra, tools, timeout) -> None:
    """`check`'s ``pdr`` mode in ``work`` (holding ``spec.il`` and the ``extra`` modules)."""
    script = "".join(f"read_rtlil {f}\n" for f in [*extra, "spec.il"])
    (work / "model.ys").write_text(script + _PDR_MODEL)
    out = subprocess.run([tools["yosys"], "-q", "-l", "model.log", "model.ys"], cwd=work,
                         capture_output=True, text=True, env=toolchain.environ())
    if out.returncode != 0:
        raise FormalError(f"pdr: Yosys failed ({(out.stdout + out.stderr).strip()[-300:]})"
                          f"\nwork directory: {work}")
    (work / "horn.smt2").write_text(_horn((work / "model.smt2").read_text()))
    try:
        # Spacer by name: left to choose, z3 takes its datalog engine for clauses over small
        # bit vectors, which tabulates every state (2**22 entries for a 22-bit state) and gave
        # no verdict on a 6-bit product register in 60 CPU s where Spacer needs 0.04
        out = subprocess.run([tools["z3"], "fp.engine=spacer", "horn.smt2"], cwd=work,
                             capture_output=True, text=True, env=toolchain.environ(),
                             preexec_fn=_cpu_limit(timeout) if timeout else None,
                             timeout=20 * timeout if timeout else None)
        verdict = out.stdout.strip().splitlines()[-1:] or [f"no result within {timeout} CPU s"]
    except subprocess.TimeoutExpired:
        verdict = [f"no result within {20 * timeout} s wall"]
    if verdict != ["sat"]:
        what = {"unsat": "an assertion fails in a reachable state"}.get(verdict[0], verdict[0])
        raise FormalError(f"pdr (z3 spacer) failed: {what}\nwork directory: {work}")
