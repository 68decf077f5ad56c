"""`imcflow.files`: ``-o DIR`` never touches files imcflow did not write, and an output directory
appears whole or not at all (no hidden temporary survives an error, Ctrl-C or SIGTERM)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from imcflow import cli, rtl
from imcflow.errors import UserError
from imcflow.files import MARKER, atomic_directory, check_output_directory


def write(path, files: dict[str, str], **options):
    with atomic_directory(path, **options) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_new_directory_gets_a_marker_listing_its_files(tmp_path):
    write(tmp_path / "out", {"a.txt": "a", "sub/b.txt": "b"})
    marker = json.loads((tmp_path / "out" / MARKER).read_text())
    assert marker["files"] == ["a.txt", "sub/b.txt"] and marker["imcflow"] and marker["command"]
    assert listing(tmp_path) == ["out"]                      # no temporary beside it


def test_a_directory_imcflow_wrote_is_replaced_whole(tmp_path):
    write(tmp_path / "out", {"old.txt": "old", "sub/x": "x"})
    write(tmp_path / "out", {"new.txt": "new"})
    assert listing(tmp_path / "out") == [MARKER, "new.txt"]
    assert listing(tmp_path) == ["out"]


@pytest.mark.parametrize("where", ["top", "sub"])
def test_a_user_file_added_to_an_imcflow_directory_makes_it_foreign(tmp_path, where):
    out = tmp_path / "out"
    write(out, {"report.md": "r", "sub/x": "x"})
    notes = out / ("notes.txt" if where == "top" else "sub/notes.txt")
    notes.write_text("mine")
    with pytest.raises(UserError, match="non-empty directory imcflow did not write"):
        write(out, {"report.md": "again"})
    assert notes.read_text() == "mine" and (out / "report.md").read_text() == "r"


def test_a_foreign_directory_is_refused_and_kept(tmp_path, monkeypatch, capsys):
    # The case: `imcflow map --network digits -o keep` deleted keep/notes.txt.
    monkeypatch.chdir(tmp_path)
    Path("keep").mkdir()
    Path("keep/notes.txt").write_text("data\n")
    assert cli.main(["map", "--network", "digits", "-o", "keep"]) == 2
    err = capsys.readouterr().err
    assert err == ("imcflow map: error: -o: 'keep' is a non-empty directory imcflow did not write "
                   "(no .imcflow marker listing its files); name a new directory, or add --force "
                   "to replace it\n")
    assert listing(tmp_path) == ["keep"] and listing(tmp_path / "keep") == ["notes.txt"]
    assert Path("keep/notes.txt").read_text() == "data\n"


def test_force_replaces_a_foreign_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("keep").mkdir()
    Path("keep/notes.txt").write_text("data\n")
    assert cli.main(["map", "--network", "digits", "-o", "keep", "--force", "--json"]) == 0
    assert MARKER in listing(tmp_path / "keep") and "notes.txt" not in listing(tmp_path / "keep")
    assert listing(tmp_path) == ["keep"]


def test_an_empty_existing_directory_is_used(tmp_path):
    (tmp_path / "out").mkdir()
    write(tmp_path / "out", {"a": "1"})
    assert listing(tmp_path / "out") == [MARKER, "a"]


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("name, message", [
    (".", "is the current directory"),
    ("..", "contains the current directory"),
    ("../..", "contains the current directory"),
    ("/", "contains the current directory"),
    ("sub/..", "is the current directory"),
])
def test_the_current_directory_and_its_parents_are_refused_even_with_force(
        tmp_path, monkeypatch, name, message, force):
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    (work / "mine.txt").write_text("mine")
    monkeypatch.chdir(work)
    with pytest.raises(UserError, match=message):
        write(name, {"x": "x"}, force=force)
    assert listing(work) == ["mine.txt"] and listing(tmp_path) == ["a"]


@pytest.mark.parametrize("force", [False, True])
def test_home_is_refused_even_with_force(tmp_path, monkeypatch, force):
    home = tmp_path / "home" / "user"
    home.mkdir(parents=True)
    (home / "thesis.tex").write_text("years of work")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for path in (home, tmp_path / "home"):
        with pytest.raises(UserError, match="is your home directory or contains it"):
            write(path, {"x": "x"}, force=force)
    assert listing(home) == ["thesis.tex"]


def test_an_existing_file_is_refused_before_elaboration(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("mine")
    monkeypatch.setattr(rtl, "verilog", lambda *a, **k: pytest.fail("elaborated"))
    for argv in (["gen", "--network", "digits"], ["gen", "fifo", "--width", "8", "--depth", "4"]):
        assert cli.main([*argv, "-o", "afile", "--force"]) == 2
        assert capsys.readouterr().err.endswith("error: -o: 'afile' exists and is not a directory\n")
    assert Path("afile").read_text() == "mine" and listing(tmp_path) == ["afile"]


@pytest.mark.parametrize("path, message", [
    ("", "-o: must name an output directory, not an empty string"),
    ("  ", "-o: must name an output directory, not an empty string"),
    ("a\0b", "-o: 'a\\x00b' is not a usable path"),
    ("afile/out", "-o: cannot write output directory 'afile/out': "),
])
def test_unusable_names_are_refused(tmp_path, monkeypatch, path, message):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("mine")
    with pytest.raises(UserError) as e:
        check_output_directory(path)
    assert str(e.value).startswith(message)
    assert listing(tmp_path) == ["afile"]


@pytest.mark.parametrize("error", [RuntimeError("injected"), KeyboardInterrupt()])
def test_an_error_or_ctrl_c_leaves_nothing_behind(tmp_path, error):
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(type(error)):
        with atomic_directory(out) as tmp:
            (tmp / "half.txt").write_text("half")
            raise error
    assert listing(tmp_path) == []                   # created parents are removed too


def test_an_error_keeps_the_previous_output(tmp_path):
    write(tmp_path / "out", {"a": "previous"})
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "out") as tmp:
            (tmp / "a").write_text("half")
            raise RuntimeError
    assert (tmp_path / "out" / "a").read_text() == "previous" and listing(tmp_path) == ["out"]


_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from imcflow.files import atomic_directory
    with atomic_directory(sys.argv[1]) as tmp:
        (tmp / "half.txt").write_text("half")
        print("writing", flush=True)
        time.sleep(60)
""")


def _start_writer(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(out)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "writing\n"
    assert [p.name.split(".imcflow-")[0] for p in out.parent.iterdir()] == [f".{out.name}"]
    return proc


def test_sigterm_leaves_no_hidden_temporary(tmp_path):
    proc = _start_writer(tmp_path / "out")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert listing(tmp_path) == []


def test_the_next_run_removes_the_temporary_of_a_killed_run(tmp_path):
    proc = _start_writer(tmp_path / "out")
    proc.kill()
    proc.wait(timeout=30)
    assert len(listing(tmp_path)) == 1                      # SIGKILL cannot be cleaned up...
    (tmp_path / ".other").mkdir()                            # (not ours: no marker, other name)
    write(tmp_path / "out", {"a": "1"})                      # ...but the next run does
    assert listing(tmp_path) == [".other", "out"]


def test_an_unwritable_name_leaves_no_parent_behind(tmp_path):
    # The parents are made, then the temporary cannot be (its name is too long): both go.
    with pytest.raises(UserError, match="-o: cannot write output directory .*: File name too long"):
        write(tmp_path / "new" / ("x" * 250), {"a": "1"})
    assert listing(tmp_path) == []
