"""Verilator's run-time library compiled once, not once per design: a compiler launcher for
make's ``OBJCACHE`` (`imcflow.toolchain.environ` sets it for every Verilator build).

Every Verilator build compiles the run-time sources ``$VERILATOR_ROOT/include/verilated*.cpp``
(``verilated.cpp``, ``verilated_threads.cpp``, ``verilated_vpi.cpp`` for cocotb,
``verilated_vcd_c.cpp`` with tracing) besides the design's own C++; they do not depend on the
design, and for a small block they are most of its build. Verilator's makefile runs each compile
as ``$(OBJCACHE) $(CXX) ... -c -o <object> <source>``; this script, run as that prefix, serves
the object of a run-time source from ``$IMCFLOW_CACHE/verilator/runtime/<key>.o`` when it has
it, and otherwise compiles it and stores it there. The key is a hash of the whole compile command
(compiler, every flag and define, the object's name), the compiler executable's size and
modification time, and the contents of the source and of every header beside it (the Verilator
version): any difference compiles anew. Every other compile (the design's files, the harness,
cocotb's ``verilator.cpp``, which includes the design's header) runs unchanged.

Stored objects are written to a temporary name and renamed into place, so concurrent builds
(pytest-xdist workers) never see half an object. Delete the directory to reclaim its space.
Only the standard library: make starts this file as a script.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: environment variable of the cache's root (as `imcflow.files.cache_dir`)
CACHE_ENV = "IMCFLOW_CACHE"


def runtime_source(argv: list[str], root: str | None) -> Path | None:
    """The run-time source a compile command ``argv`` compiles (its last argument, a ``.cpp``
    file in ``<root>/include``), or None for any other command."""
    if root is None or "-c" not in argv or not argv[-1].endswith(".cpp"):
        return None
    source = Path(argv[-1]).resolve()
    return source if source.parent == (Path(root) / "include").resolve() else None


def key(argv: list[str], source: Path) -> str:
    """The cache key of a run-time compile (module docstring)."""
    h = hashlib.sha256("\0".join(argv).encode())
    compiler = shutil.which(argv[0])
    stat = os.stat(compiler) if compiler else None
    h.update(f"\0{compiler}\0{stat and (stat.st_size, stat.st_mtime_ns)}".encode())
    for path in [source, *sorted(source.parent.glob("*.h"))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:24]


def _output(argv: list[str]) -> Path:
    return Path(argv[argv.index("-o") + 1])


def main(argv: list[str]) -> int:
    source = runtime_source(argv, os.environ.get("VERILATOR_ROOT"))
    if source is None or "-o" not in argv:
        os.execvp(argv[0], argv)
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "imcflow")
    store = root / "verilator" / "runtime"
    cached = store / f"{key(argv, source)}.o"
    output = _output(argv)
    if cached.is_file():
        shutil.copyfile(cached, output)
        return 0
    done = subprocess.run(argv)
    if done.returncode == 0:
        store.mkdir(parents=True, exist_ok=True)
        partial = store / f".{cached.name}.{os.getpid()}"
        shutil.copyfile(output, partial)
        os.replace(partial, cached)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
