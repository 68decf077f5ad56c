"""`imcflow gen fifo`: Verilog plus manifest, lint-clean; bad arguments give one line and exit 2,
and an output directory appears whole or not at all."""

import json
import re

import pytest

from imcflow import cli
from imcflow.verif import runner


def gen(*args):
    return cli.main(["gen", *map(str, args)])


def test_gen_fifo_writes_verilog_and_manifest(tmp_path, capsys):
    out = tmp_path / "fifo"
    assert gen("fifo", "--width", 12, "--depth", 6, "-o", out, "--json") == 0
    printed = json.loads(capsys.readouterr().out)          # exactly one JSON object
    manifest = json.loads((out / "manifest.json").read_text())
    assert printed == {**manifest, "directory": str(out)}
    assert sorted(p.name for p in out.iterdir()) == ["fifo_w12_d6.v", "manifest.json"]
    assert manifest["parameters"] == {"width": 12, "depth": 6}
    assert (manifest["latency"], manifest["interval"]) == (1, 1)
    assert set(manifest["tools"]) >= {"imcflow", "amaranth", "verilator"}

    # The manifest's ports are the Verilog module's ports, with the same directions and widths.
    verilog = (out / "fifo_w12_d6.v").read_text()
    declared = {name: (direction, int(msb) + 1 if msb else 1) for direction, msb, name in
                re.findall(r"^\s*(input|output) (?:\[(\d+):0\] )?(\w+);", verilog, re.M)}
    assert declared == {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert declared["i__payload"] == ("input", 12) and declared["level"] == ("output", 3)

    # Lint-clean with only the width waivers, and under -Wall with only the documented waivers.
    runner.lint(out / "fifo_w12_d6.v", wall=False)
    runner.lint(out / "fifo_w12_d6.v", wall=True)


@pytest.mark.parametrize("args, message", [
    (["--width", 8, "--depth", 0], "fifo.depth: must be an integer in 1..65536, not 0"),
    (["--width", -3, "--depth", 4], "fifo.width: must be an integer in 1..4096, not -3"),
    (["--depth", 4], "--width: required by `imcflow gen fifo`"),
])
def test_bad_arguments_exit_2_with_one_line(args, message, tmp_path, capsys):
    assert gen("fifo", *args, "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err == f"imcflow gen: error: {message}\n"
    assert list(tmp_path.iterdir()) == []                  # nothing written, no temporaries


def test_unwritable_output_exits_2(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    assert gen("fifo", "--width", 8, "--depth", 4, "-o", tmp_path / "file" / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("imcflow gen: error: -o: ") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_not_an_integer_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        gen("fifo", "--width", "wide", "--depth", 4, "-o", tmp_path / "out")
    assert exit_.value.code == 2 and "--width" in capsys.readouterr().err


def test_failure_leaves_no_half_written_directory(tmp_path, monkeypatch):
    # An existing output directory survives a failed generation untouched, and no temporary
    # directory is left beside it.
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous run")

    def failing_lint(path, top=None, *, wall=True):
        assert path.is_file()                               # the Verilog was already written
        raise runner.LintError("injected lint failure")

    monkeypatch.setattr(runner, "lint", failing_lint)
    with pytest.raises(runner.LintError):
        gen("fifo", "--width", 8, "--depth", 4, "-o", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
