"""docs/arch-toml.md is the whole truth about `imcflow.sw.arch.Arch`: a user who writes an arch
file from it gets what `imcflow arch show` echoes, every field is documented with its real default
and range, the presets are as described, and the commands state the arch they used."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from imcflow import cli
from imcflow.errors import UserError
from imcflow.sw.arch import PRESETS, Arch, arch_label, load_arch

DOCS = Path(__file__).parents[1] / "docs"
PAGE = (DOCS / "arch-toml.md").read_text()


def _show(capsys, *argv) -> dict:
    assert cli.main(["arch", "show", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _table(heading: str) -> list[list[str]]:
    """The rows of the first Markdown table after ``heading``, as cells."""
    section = PAGE[PAGE.index(heading):]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    end = next((i for i, line in enumerate(section.splitlines()[section.splitlines().index(rows[0]):])
                if not line.startswith("|")), None)
    rows = rows[:end]
    return [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows[2:]]


def test_the_example_of_the_page_is_echoed(tmp_path, capsys):
    # Copy the page's TOML example into a file, as a new user would.
    example = re.search(r"```toml\n(.*?)```", PAGE, re.S).group(1)
    path = tmp_path / "my-arch.toml"
    path.write_text(example)
    shown = _show(capsys, path)
    written = tomllib.loads(example)["arch"]
    assert written and all(shown["arch"][k] == v for k, v in written.items())
    assert shown["arch"] == Arch(**written).to_dict() and shown["arch_name"] == str(path)
    # the text form lists every field with its value and marks what differs from the default
    assert cli.main(["arch", "show", str(path)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == f"arch: {path}"
    for f in fields(Arch):
        line = next(l for l in text if l.split()[:1] == [f.name])
        assert ("*" in line.split("=")[1].split()[:2]) == (f.name in written), line


@pytest.mark.parametrize("path", sorted(DOCS.glob("examples/arch-*.toml")), ids=lambda p: p.name)
def test_example_files_load(path, capsys):
    written = tomllib.loads(path.read_text())["arch"]
    assert _show(capsys, path)["arch"] == Arch(**written).to_dict()


def test_every_field_is_documented_with_its_default_and_range():
    rows = {r[0].strip("`"): r for r in _table("## Fields")}
    assert list(rows) == [f.name for f in fields(Arch)]      # all of them, in order
    default = Arch()
    for name, (_, unit, allowed, value, effect) in rows.items():
        assert effect, name
        expected = getattr(default, name)
        assert (None if value == "none" else tomllib.loads(f"x = {value.strip('`')}")["x"]) == expected, name
        _check_range(name, allowed)


def _accepts(name, value) -> bool:
    changes = {name: value}
    if name == "mvm_cycles" or name == "act_bits":
        changes["input_encoding"] = "pwm"
    try:
        Arch().replace(**changes)
    except UserError:
        return False
    return True


def _check_range(name: str, allowed: str):
    """The documented range is exactly what `Arch` accepts at its ends."""
    if allowed.startswith("none or "):
        assert _accepts(name, None), name
        allowed = allowed[len("none or "):]
    else:
        assert not _accepts(name, None), name
    if m := re.fullmatch(r"(\d+)\.\.(\d+)", allowed):
        lo, hi = int(m[1]), int(m[2])
        assert _accepts(name, lo) and _accepts(name, hi), name
        assert not _accepts(name, lo - 1) and not _accepts(name, hi + 1), name
    elif allowed == "`true`, `false`":
        assert _accepts(name, True) and _accepts(name, False) and not _accepts(name, 1), name
    elif m := re.fullmatch(r"([(\[])([\d.]+), ([\d.]+)\]", allowed):
        lo, hi = float(m[2]), float(m[3])
        assert _accepts(name, lo) == (m[1] == "["), name
        assert _accepts(name, hi) and not _accepts(name, hi * 1.01 + 0.01), name
        assert not _accepts(name, lo - 0.01), name
    else:
        choices = [c.strip("` ") for c in allowed.split(",")]
        assert all(_accepts(name, c) for c in choices) and not _accepts(name, "other"), name


def test_presets_are_as_documented():
    rows = {r[0].strip("`"): r[1] for r in _table("## Presets")}
    assert list(rows) == list(PRESETS)
    default = Arch().to_dict()
    for name, arch in PRESETS.items():
        differs = {k: v for k, v in arch.to_dict().items() if v != default[k]}
        documented = dict(re.findall(r"`(\w+) = ([^`]+)`", rows[name]))
        assert {k: tomllib.loads(f"x = {v}")["x"] for k, v in documented.items()} == differs, name


def test_arch_label():
    assert arch_label() == "default" and arch_label("fpga") == "fpga"
    assert arch_label("docs//examples/arch-small.toml", buffer="frame", core_budget=None) == \
        "docs/examples/arch-small.toml, buffer=frame"
    assert arch_label(load_arch("small")) == "custom"


def test_map_and_accuracy_state_the_arch(capsys):
    small = DOCS / "examples" / "arch-small.toml"
    assert cli.main(["map", "--network", "digits", "--arch", str(small), "--buffer", "frame",
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["arch_name"] == f"{small.as_posix()}, buffer=frame"
    assert summary["arch"] == load_arch(small, buffer="frame").to_dict()
    assert cli.main(["map", "--network", "digits", "--arch", "fpga"]) == 0
    assert "arch: fpga" in capsys.readouterr().out.splitlines()


def test_bad_files_are_one_line(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("[arch]\nadc_bits = 1\n")
    assert cli.main(["arch", "show", str(tmp_path / "bad.toml")]) == 2
    assert capsys.readouterr().err == ("imcflow arch: error: arch.adc_bits: must be an integer "
                                       "in 2..16, not 1\n")
