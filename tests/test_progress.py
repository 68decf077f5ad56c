"""Clean output (`imcflow.progress`): stdout holds only results, progress on stderr refreshes one
line on a terminal and writes plain lines (never a carriage return) anywhere else."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

from imcflow import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_plain_periodic_lines():
    log = io.StringIO()
    counter = progress.Counter("sim", 100, "images", stream=log, every=0.05)
    for _ in range(100):                       # fast updates: only the first line shows
        counter.update()
    time.sleep(0.06)
    counter.update(0)                          # a line once `every` seconds have passed
    counter.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    assert lines[0].startswith("imcflow sim: 0/100 images") and len(lines) == 3
    assert all(l.startswith("imcflow sim: 100/100 images") for l in lines[1:])

    steps = progress.Steps("gen", 2, stream=(log := io.StringIO()))
    steps.step("modelling")
    steps.step("writing")
    steps.close()
    assert log.getvalue().splitlines()[:2] == ["imcflow gen: [1/2] modelling",
                                               "imcflow gen: [2/2] writing"]


def test_on_a_terminal_one_refreshed_line():
    tty = Terminal()
    counter = progress.Counter("sim", 3, "images", stream=tty)
    for _ in range(3):
        counter.update()
    counter.close()
    text = tty.getvalue()
    assert text.count("\r\x1b[K") == 5 and text.count("\n") == 1
    assert text.endswith("imcflow sim: 3/3 images [0 s]\n")


def test_ticker_names_the_step_and_its_detail():
    log = io.StringIO()
    with progress.Ticker("fpga", "yosys", lambda: "ABC: mapping", stream=log, every=0.2):
        time.sleep(1.1)
    lines = log.getvalue().splitlines()
    assert lines[0] == "imcflow fpga: yosys ..." and lines[-1].startswith("imcflow fpga: yosys done in")
    assert any(l.startswith("imcflow fpga: yosys running") and l.endswith(": ABC: mapping")
               for l in lines[1:-1])
    assert "\r" not in log.getvalue()


def test_paths_without_doubled_separators():
    assert progress.shown("out//digits/") == "out/digits"


def _run(*argv):
    return subprocess.run([sys.executable, "-m", "imcflow", *argv], capture_output=True, text=True)


def test_commands_keep_stdout_for_results(tmp_path):
    # --json: exactly one JSON object on stdout; stderr (a pipe here) without a carriage return
    for argv in (["map", "--network", "digits", "-o", f"{tmp_path}/m/", "--json"],
                 ["accuracy", "--network", "digits", "--json"],
                 ["gen", "fifo", "--width", "8", "--depth", "4", "-o", f"{tmp_path}//fifo/", "--json"]):
        out = _run(*argv)
        assert out.returncode == 0, out.stderr
        json.loads(out.stdout)
        assert out.stdout.count("\n") == 1 and "\r" not in out.stderr, argv
    # the table forms print paths as given, without `//`
    out = _run("gen", "fifo", "--width", "8", "--depth", "4", "-o", f"{tmp_path}//fifo2/")
    assert out.returncode == 0 and "//" not in out.stdout and f"{tmp_path}/fifo2/fifo_w8_d4.v" in out.stdout
    out = _run("map", "--network", "digits", "-o", f"{tmp_path}//m2/")
    assert f"wrote {tmp_path}/m2/mapping.json" in out.stderr and "//" not in out.stderr
