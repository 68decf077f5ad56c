"""Where imcflow writes: output directories (never someone else's files, and whole or not at
all) and its cache (`cache_dir`).

Every command with ``-o DIR`` calls `check_output_directory` before any long work and writes
through `atomic_directory`. The rules (README, "Safety of your files"):

- ``DIR`` may be new, an empty directory, or a directory imcflow wrote before: it holds the
  marker file `MARKER` (JSON: imcflow version, command, the files written) and nothing else
  besides those files. Such a directory is replaced whole.
- Any other existing directory is refused unless ``force`` is set. The current directory, a
  parent of it, the home directory and its parents are refused even with ``force``; so are an
  empty name and an existing file.
- The output is written into a hidden sibling ``.DIR.imcflow-<pid>-*`` and renamed into place only
  when everything succeeded. An error, Ctrl-C or SIGTERM removes it; a run killed outright
  (SIGKILL) leaves it, and the next run into the same ``DIR`` removes it.

Builds, waveforms and failed build trees that outlive a command go under `cache_dir`
(``$IMCFLOW_CACHE``, default ``~/.cache/imcflow``): Verilator models (`imcflow.verif`), formal
runs, and the tree of a failed FPGA build (`imcflow.fpga.build`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from imcflow import __version__
from imcflow.errors import UserError

__all__ = ["MARKER", "CACHE_ENV", "cache_dir", "check_output_directory", "atomic_directory",
           "write_marker"]

#: the file imcflow leaves in every directory it writes
MARKER = ".imcflow"
#: environment variable naming the cache directory
CACHE_ENV = "IMCFLOW_CACHE"


def cache_dir(*parts: str) -> Path:
    """``$IMCFLOW_CACHE/<parts...>`` (default ``~/.cache/imcflow``), created if missing."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "imcflow")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _files(directory: Path) -> set[str]:
    """Paths (relative, POSIX) of every file and symlink under ``directory``."""
    found = set()
    for root, dirs, names in os.walk(directory):
        rel = Path(root).relative_to(directory)
        found.update((rel / n).as_posix() for n in names)
        found.update((rel / d).as_posix() for d in dirs if (Path(root) / d).is_symlink())
    return found


def write_marker(directory) -> None:
    """Write `MARKER` into ``directory``: imcflow's version, the command line and every file in
    it (a directory imcflow fills file by file calls it after each step)."""
    directory = Path(directory)
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    marker = {"imcflow": __version__, "command": command,
              "files": sorted(_files(directory) - {MARKER})}
    (directory / MARKER).write_text(json.dumps(marker, indent=1) + "\n")


def _written_by_imcflow(directory: Path) -> bool:
    """Whether ``directory`` holds an imcflow marker listing every file in it."""
    try:
        marker = json.loads((directory / MARKER).read_text())
        written = set(marker["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return _files(directory) - {MARKER} <= written


def check_output_directory(path, force: bool = False, *, field: str = "-o") -> Path:
    """The resolved output directory ``path``, or a `UserError` naming ``field`` if imcflow may
    not write it (the rules are in the module docstring). Writes nothing."""
    if path is None or not str(path).strip():
        raise UserError(f"{field}: must name an output directory, not an empty string")
    try:
        target = Path(path).resolve()
    except (OSError, ValueError) as e:
        raise UserError(f"{field}: {str(path)!r} is not a usable path: {e}") from None
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    shown = repr(str(path))
    if target == cwd:
        raise UserError(f"{field}: {shown} is the current directory; imcflow only replaces a "
                        f"directory of its own (name a new one)")
    if target in cwd.parents:
        raise UserError(f"{field}: {shown} contains the current directory; imcflow only replaces "
                        f"a directory of its own (name a new one)")
    if target == home or target in home.parents:
        raise UserError(f"{field}: {shown} is your home directory or contains it; imcflow only "
                        f"replaces a directory of its own (name a new one)")
    if target.exists() and not target.is_dir():
        raise UserError(f"{field}: {shown} exists and is not a directory")
    ancestor = next(p for p in target.parents if p.exists())
    if not ancestor.is_dir():
        raise UserError(f"{field}: cannot write output directory {shown}: {str(ancestor)!r} is "
                        f"not a directory")
    try:
        foreign = target.is_dir() and any(target.iterdir()) and not _written_by_imcflow(target)
    except OSError as e:
        raise UserError(f"{field}: cannot read {shown}: {e.strerror}") from None
    if foreign and not force:
        raise UserError(f"{field}: {shown} is a non-empty directory imcflow did not write (no "
                        f"{MARKER} marker listing its files); name a new directory, or add --force "
                        f"to replace it")
    return target


def _remove_stale(target: Path) -> None:
    """Remove temporaries of earlier runs into ``target`` whose process is gone."""
    for tmp in target.parent.glob(f".{target.name}.imcflow-*"):
        try:
            pid = int(tmp.name[len(target.name) + 10:].split("-")[0])
        except ValueError:
            continue
        if pid == os.getpid() or not (tmp / MARKER).is_file():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_raises():
    """Turn SIGTERM into `SystemExit` (so ``finally`` blocks run) in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def atomic_directory(path, *, force: bool = False, field: str = "-o"):
    """Yield a temporary directory that replaces ``path`` when the block exits without error.

    ``path`` is checked with `check_output_directory` (``force`` as there) before and again just
    before it is replaced. On success the marker `MARKER` lists the files written. On any error,
    Ctrl-C or SIGTERM the temporary directory, and any parent directories created for it, are
    removed and ``path`` is left as it was.

    Raises
    ------
    UserError
        Naming ``field``, if ``path`` may not be written or its parent cannot be created.
    """
    target = check_output_directory(path, force, field=field)
    created = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
    with _sigterm_raises():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(target)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.imcflow-{os.getpid()}-",
                                        dir=target.parent))
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the result should look like a mkdir
            (tmp / MARKER).write_text("{}\n")   # marks the temporary as ours until it is filled
        except OSError as e:
            for p in created:
                with contextlib.suppress(OSError):
                    p.rmdir()
            raise UserError(f"{field}: cannot write output directory {str(path)!r}: "
                            f"{e.strerror}") from None
        old = None
        try:
            yield tmp
            write_marker(tmp)
            check_output_directory(path, force, field=field)
            if target.exists():
                old = target.with_name(f".{target.name}.imcflow-{os.getpid()}-old")
                target.rename(old)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None and not target.exists():
                old.rename(target)
            for p in created:
                with contextlib.suppress(OSError):
                    p.rmdir()
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

