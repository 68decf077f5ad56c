"""ResNet-8 (32x32x3 inputs) accelerators under Verilator, as a user runs them: `imcflow gen
--network resnet8 --arch default` (line buffers, frame buffers, and line buffers with a core budget
of twice the minimum) and `imcflow sim DIR --images 2 --json`: bit-exact, and on the performance
model's timing.

Marked ``benchmark`` (not part of `make test`): each configuration is a cold Verilator build of
about ten minutes on two cores. `python benchmarks/sim_resnet8.py` runs the same and prints the
figures; tests/test_sim.py covers the same generator paths on small networks in the regular suite.
"""

from __future__ import annotations

import json

import pytest

from imcflow import cli

pytestmark = pytest.mark.benchmark


@pytest.mark.parametrize("options", [[], ["--buffer", "frame"], ["--core-budget", "2x"]],
                         ids=["line", "frame", "2x"])
def test_resnet8_bit_exact_on_the_model_timing(options, tmp_path, capsys):
    out = tmp_path / "resnet8"
    assert cli.main(["gen", "--network", "resnet8", "--arch", "default", *options, "-o", str(out),
                     "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["streams"]["input"]["image_shape"] == [32, 32, 3]
    assert cli.main(["sim", str(out), "--images", "2", "--json"]) == 0
    f = json.loads(capsys.readouterr().out)
    assert (f["images"], f["bit_exact"], f["extra_beats"]) == (2, 2, 0) and not f["deadlock"]
    assert f["cycles_per_image_ratio"] <= 1.02 and 0.95 <= f["latency_ratio"] <= 1.05, f
    print(f"resnet8 {options}: {f['cycles_per_image']} cycles per image (model "
          f"{f['model_cycles_per_image']}), latency {f['latency_cycles']} (model "
          f"{f['model_latency_cycles']}); build {f['build_seconds']} s, simulation "
          f"{f['sim_seconds']} s")
