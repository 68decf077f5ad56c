"""``imcflow regress``: a tiny distributed regression of the FIFO, and a test directory with a
planted bug that fails for some seeds: exactly those are reported, each with a replay command
that fails again alone while a passing seed's passes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from imcflow.cli import main
from imcflow.verif.regress import blocks

TESTS = Path(__file__).parent

TOY = '''
def test_seeded_parity(seeds):
    seed, = seeds(1)
    assert seed % 5 != 3, f"planted bug: seed {seed} is 3 mod 5"


def test_unseeded():  # takes no seed: a regression does not repeat it
    pass
'''


def test_blocks_pair_amaranth_and_cocotb_files():
    found = blocks(TESTS)
    assert found["fifo"] == ["tests/test_fifo.py", "tests/test_fifo_cocotb.py"]
    assert blocks(TESTS, "cocotb")["fifo"] == ["tests/test_fifo_cocotb.py"]
    assert {"fifo", "crossbar", "im2col", "pool", "residual"} <= set(found)
    assert "cost" not in found and "explore" not in found  # software tests are not blocks


def test_tiny_fifo_regression(capsys):
    assert main(["regress", "--block", "fifo", "--seeds", "2", "--kind", "amaranth",
                 "--workers", "1", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["jobs"], s["failed"], s["failures"]) == (2, 0, [])
    assert len(set(s["seeds"])) == 2 and s["blocks"] == ["fifo"]
    # every seeded FIFO test ran once per seed, and only those
    assert s["tests"] == s["passed"] > 0 and s["tests"] % 2 == 0


def test_failing_seeds_are_reported_with_their_replay_command(tmp_path, capsys):
    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copy(TESTS / "conftest.py", tests / "conftest.py")
    (tests / "test_toy.py").write_text(TOY)
    code = main(["regress", "--tests", str(tests), "--block", "toy", "--seeds", "10",
                 "--first-seed", "0", "--workers", "1", "--json"])
    assert code == 1
    captured = capsys.readouterr()
    s = json.loads(captured.out)
    assert (s["jobs"], s["tests"], s["passed"], s["failed"]) == (10, 10, 8, 2)
    assert sorted(f["seed"] for f in s["failures"]) == [3, 8]
    for f in s["failures"]:
        assert f["nodeid"] == "tests/test_toy.py::test_seeded_parity"
        assert f["message"].startswith(f"AssertionError: planted bug: seed {f['seed']} is 3 mod 5")
        assert f"IMCFLOW_SEED={f['seed']} " in f["replay"] and f["replay"] in captured.err
    replay = s["failures"][0]["replay"]
    assert subprocess.run(replay, shell=True, capture_output=True).returncode == 1
    passing = replay.replace(f"IMCFLOW_SEED={s['failures'][0]['seed']} ", "IMCFLOW_SEED=4 ")
    assert subprocess.run(passing, shell=True, capture_output=True).returncode == 0
