"""Output directories that appear whole or not at all.

`atomic_directory` lets a command write into a temporary sibling directory and renames it into
place only when everything succeeded, so an error never leaves a half-written output directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from imcflow.errors import UserError


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, field: str = "-o"):
    """Yield a temporary directory that replaces ``path`` when the block exits without error.

    An existing ``path`` is replaced only on success. Raises `UserError` naming ``field`` when the
    parent cannot be created or written.
    """
    target = Path(path).resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the result should look like a mkdir
    except OSError as e:
        raise UserError(f"{field}: cannot write output directory {str(path)!r}: {e.strerror}") from None
    if target.exists() and not target.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{field}: {str(path)!r} exists and is not a directory")
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        target.rename(old)
    tmp.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
