# amaranth: UnusedElaboratable=no
"""`imcflow mutate` (imcflow.verif.mutate): Yosys mutants of a block run through its regression
and proofs. A small campaign on the FIFO must report consistent counts and kill the mutants that
break it; a Yosys mutant that corrupts or misaddresses the FIFO's data while `level` stays right
must fail the port-level FIFO contract; bad arguments are one line and exit status 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Const

from imcflow.hw.fifo import PipelineFifo
from imcflow.verif import contracts, mutate
from imcflow.verif.formal import FormalError, check


def imcflow(*args):
    return subprocess.run([sys.executable, "-m", "imcflow", *args], capture_output=True,
                          text=True)


def test_fifo_campaign_report_is_consistent():
    out = imcflow("mutate", "fifo", "--mutants", "10", "--seed", "1", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)          # exactly one JSON object on stdout
    results = report["results"]
    assert report["mutants"] == len(results) == 10
    counts = {s: sum(r["status"] == s for r in results)
              for s in ("killed", "survived", "equivalent")}
    assert counts == {s: report[s] for s in counts}
    assert report["kill_rate"] == report["killed"] / (report["mutants"] - report["equivalent"])
    assert sorted(r["mutsel"] for r in results) == list(range(1, 11))
    for r in results:
        assert re.match(r"hw/fifo\.py:\d+: ", r["source"]), r   # the mutated line, with its text
        assert (r["by"] is not None) == (r["status"] == "killed")
    # the memory's write data inverted: level stays right, the beats are wrong; the scoreboard
    # (or the proof) must catch it
    corrupting = [r for r in results
                  if "-port WR_DATA" in r["mutation"] and "-mode inv" in r["mutation"]]
    assert corrupting and all(r["status"] == "killed" for r in corrupting)
    assert "progress" not in out.stdout and "mutant 10/10" in out.stderr


def fifo_mutants(select):
    fifo = PipelineFifo(3, 5)
    text = rtlil.convert(fifo, name="fifo_m")
    muts = mutate.mutations(text, "fifo_m", 3, 1, select)
    _, module = mutate.mutant_design(text, "fifo_m", muts)
    return fifo, muts, module


@pytest.mark.parametrize("select", ["-mode inv -port WR_DATA", "-mode const0 -port RD_ADDR"],
                         ids=["corrupt-data", "wrong-read-address"])
def test_yosys_mutants_that_keep_level_fail_the_fifo_contract(select, tmp_path, monkeypatch):
    # Mutants of the memory's data or read address leave `level` (and every handshake) exactly
    # as in the original; only the tracked beat, seen from the ports, can tell. The original
    # (mutsel 0) meets the contract; each mutant fails it at the data assertion.
    monkeypatch.setenv("IMCFLOW_CACHE", str(tmp_path))
    fifo, muts, module = fifo_mutants(select)
    assert muts
    width = mutate.mutsel_width(len(muts))
    source = Path(contracts.__file__).read_text().splitlines()
    for mutsel in [0, *(m.index for m in muts)]:
        mutant = contracts.as_instance(fifo, "fifo_m", {"mutsel": Const(mutsel, width)})
        spec = contracts.QueueSpec(mutant, internal=False)
        if mutsel == 0:
            check(spec, mode="bmc", depth=11, name="original", modules=[module])
            continue
        with pytest.raises(FormalError, match="failed assertion") as failure:
            check(spec, mode="bmc", depth=11, name=f"mutant{mutsel}", modules=[module])
        failed = {source[int(n) - 1].strip()
                  for n in re.findall(r"contracts\.py:(\d+)", str(failure.value))}
        assert not any("level" in line for line in failed), failed


@pytest.mark.parametrize("args, message", [
    (["nosuch"], "block must be one of fifo, skid, "),
    (["fifo", "--mutants", "0"], "--mutants must be an integer in 1..4096, not 0"),
    (["fifo", "--seed", "-1"], "--seed must be a non-negative integer, not -1"),
])
def test_bad_arguments_are_one_line(args, message):
    out = imcflow("mutate", *args)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
