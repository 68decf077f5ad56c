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

Each run works in ``$IMCFLOW_CACHE/formal/<name>-<mode>/`` (``<name>`` defaults to the pytest node
id), emptied first. The directory is removed when the check passes and kept when it fails, and
`FormalError` names it together with the counterexample traces (``spec/engine_0/trace*.vcd``) and
SymbiYosys' summary of the failed properties.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from imcflow import toolchain
from imcflow.verif.runner import cache_dir, current_test_id

__all__ = ["MODES", "FormalError", "check"]

MODES = ("prove", "bmc", "cover")


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
        ``"prove"``, ``"bmc"`` or ``"cover"``.
    depth : int
        Steps of the base case and induction (``prove``) or of the bounded search.
    name : str, optional
        Prefix of the work directory (default: the pytest node id).
    modules : sequence of str
        RTLIL texts of modules that ``spec`` instantiates with ``Instance`` (e.g. mutants),
        read before the spec.
    timeout : int, optional
        Seconds after which SymbiYosys gives up (a `FormalError`).

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
    (work / "spec.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\n"
        + (f"timeout {timeout}\n" if timeout else "") + "\n"
        "[engines]\nsmtbmc z3\n\n"
        "[script]\n" + "".join(f"read_rtlil {f}\n" for f in extra)
        + "read_rtlil spec.il\n"
        # flattened when it instantiates modules, so their constant inputs fold away
        + f"prep {'-flatten ' if modules else ''}-top top\n\n"
        "[files]\n" + "".join(f"{f}\n" for f in extra) + "spec.il\n")
    out = subprocess.run(
        [tools["sby"], "-f", "spec.sby", "--yosys", tools["yosys"], "--smtbmc", tools["yosys-smtbmc"]],
        cwd=work, capture_output=True, text=True, env=toolchain.environ())
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
