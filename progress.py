"""Messages and progress on stderr, shared by every command.

stdout holds a command's results only (or its one ``--json`` object); everything here writes to
stderr. On a terminal a progress display refreshes one line in place; anywhere else (a log file,
a pipe, CI) it writes plain lines, at most one every `EVERY` seconds plus one at each step and at
the end, and never a carriage return or an escape sequence.

- `note(command, text)`: one line ``imcflow <command>: <text>``.
- `Steps`: a known list of named steps (``imcflow gen``: modelling, elaborating, ...).
- `Counter`: work items done out of a total (images simulated, images answered).
- `Ticker`: one step of unknown length (a tool run, a build), its elapsed time and a detail.
- `shown(path)`: a path as printed (no doubled or trailing separators).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

__all__ = ["EVERY", "terminal", "note", "shown", "Steps", "Counter", "Ticker"]

#: seconds between plain progress lines when stderr is not a terminal
EVERY = 10.0


def terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def note(command: str, text: str, stream=None) -> None:
    """Print ``imcflow <command>: <text>`` as one line on stderr."""
    stream = stream or sys.stderr
    stream.write(f"imcflow {command}: {text}\n")
    stream.flush()


def shown(path) -> str:
    """``path`` as a command prints it: ``out//x/`` is ``out/x``."""
    return Path(path).as_posix()


class _Display:
    """One status line: refreshed in place on a terminal, else a plain line when ``force`` or at
    most every `EVERY` seconds."""

    def __init__(self, command: str, enabled: bool, stream=None, every: float | None = None):
        self.command, self.enabled = command, enabled
        self.stream = stream or sys.stderr
        self.tty = terminal(self.stream)
        self.every = EVERY if every is None else every
        self.last = -float("inf")
        self.dirty = False

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            self.stream.write(f"\r\x1b[Kimcflow {self.command}: {text}")
            self.dirty = True
        elif force or now - self.last >= self.every:
            self.stream.write(f"imcflow {self.command}: {text}\n")
            self.last = now
        else:
            return
        self.stream.flush()

    def end(self, text: str | None = None) -> None:
        """Finish the line (on a terminal, keep ``text`` or clear it)."""
        if not self.enabled:
            return
        if self.tty and self.dirty:
            self.stream.write(f"\r\x1b[Kimcflow {self.command}: {text}\n" if text else "\r\x1b[K")
            self.dirty = False
        elif text:
            self.stream.write(f"imcflow {self.command}: {text}\n")
        self.stream.flush()


class Steps:
    """Progress through ``total`` named steps: ``step(name)`` as each one starts, ``close()``
    after the last. Every step gets its line (``[2/4] elaborating``)."""

    def __init__(self, command: str, total: int, enabled: bool = True, stream=None):
        self.display = _Display(command, enabled, stream)
        self.total, self.done, self.start = total, 0, time.monotonic()

    def step(self, name: str) -> None:
        self.done += 1
        self.display.show(f"[{self.done}/{self.total}] {name}", force=True)

    def close(self) -> None:
        self.display.end(f"done in {time.monotonic() - self.start:.1f} s")


class Counter:
    """``done`` of ``total`` items (``unit``): ``update(n)`` after each batch, ``close()`` at the
    end. A line at the start, then on a terminal every update, elsewhere every `EVERY` seconds."""

    def __init__(self, command: str, total: int, unit: str, enabled: bool = True, stream=None,
                 every: float | None = None):
        self.display = _Display(command, enabled, stream, every)
        self.total, self.unit, self.done, self.start = total, unit, 0, time.monotonic()
        self.display.show(self._text(), force=True)

    def _text(self) -> str:
        elapsed = time.monotonic() - self.start
        return f"{self.done}/{self.total} {self.unit} [{elapsed:.0f} s]"

    def update(self, n: int = 1) -> None:
        self.done += n
        self.display.show(self._text())

    def close(self) -> None:
        self.display.end(self._text())


class Ticker:
    """A step of unknown length, as a context manager: its label, elapsed time and the latest
    ``detail()`` (e.g. a log's last line), refreshed by a thread twice a second on a terminal and
    every `EVERY` seconds elsewhere; ``<label> done in X s`` at the end."""

    def __init__(self, command: str, label: str, detail=None, enabled: bool = True, stream=None,
                 every: float | None = None):
        self.display = _Display(command, enabled, stream, every)
        self.label, self.detail = label, detail or (lambda: "")
        self.seconds = 0.0

    def __enter__(self) -> "Ticker":
        self.start = time.monotonic()
        self.stop = threading.Event()
        self.display.show(f"{self.label} ...", force=True)
        if self.display.enabled:
            self.thread = threading.Thread(target=self._watch, daemon=True)
            self.thread.start()
        return self

    def _text(self) -> str:
        detail = self.detail()
        return (f"{self.label} running {time.monotonic() - self.start:.0f} s"
                + (f": {detail[:100]}" if detail else ""))

    def _watch(self) -> None:
        while not self.stop.wait(0.5):
            self.display.show(self._text())

    def __exit__(self, kind, value, traceback) -> None:
        self.stop.set()
        if self.display.enabled:
            self.thread.join()
        self.seconds = time.monotonic() - self.start
        self.display.end(f"{self.label} done in {self.seconds:.1f} s" if kind is None
                         else f"{self.label} stopped after {self.seconds:.1f} s")
