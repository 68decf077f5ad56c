"""The CIFAR ResNets (32x32x3 inputs) through their RTL, as a user runs them: `imcflow gen --network
N --arch default` (line buffers, frame buffers, and line buffers with a core budget of twice the
minimum) and `imcflow sim DIR --images 2 --json`: bit-exact at every layer, every image and every
stage handshake on the performance model's cycle.

ResNet-8 with line buffers runs in the regression (the 32x32 network of `make test`); the other
configurations and ResNet-20/32 are marked ``benchmark`` (minutes each on two cores);
`python benchmarks/sim_resnets.py` runs them all and prints the figures.
"""

from __future__ import annotations

import json

import pytest

from imcflow import cli, rtl
from imcflow.hw.fifo import PipelineFifo
from imcflow.hw.streams import VectorLayout

OPTIONS = {"line": [], "frame": ["--buffer", "frame"], "2x": ["--core-budget", "2x"]}
CASES = [pytest.param(network, config, marks=() if (network, config) == ("resnet8", "line")
                      else pytest.mark.benchmark, id=f"{network}-{config}")
         for network in ("resnet8", "resnet20", "resnet32") for config in OPTIONS]


@pytest.mark.parametrize("network, config", CASES)
def test_resnet_bit_exact_at_every_layer_on_the_model_timing(network, config, tmp_path, capsys):
    out = tmp_path / network
    assert cli.main(["gen", "--network", network, "--arch", "default", *OPTIONS[config],
                     "-o", str(out), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["streams"]["input"]["image_shape"] == [32, 32, 3]
    assert cli.main(["sim", str(out), "--images", "2", "--json"]) == 0
    f = json.loads(capsys.readouterr().out)
    stages = [l for l in manifest["layers"] if l["role"] != "source"]
    assert (f["images"], f["bit_exact"], f["layers_checked"]) == (2, 2, len(stages)), f
    assert f["model_completion_error_cycles"] == 0 and f["model_handshake_error_cycles"] == 0
    assert f["latency_cycles"] == f["model_latency_cycles"] and not f["deadlock"]
    print(f"{network} {config}: {len(stages)} stages, {f['cycles_per_image']} cycles per image, "
          f"latency {f['latency_cycles']}; build {f['build_seconds']} s, simulation "
          f"{f['sim_seconds']} s ({f['cycles_per_second']} cycles/s)")


def test_stream_payloads_are_one_packed_wire_not_one_per_lane():
    """A payload's Verilog names are ``data`` (packed) and ``last``: one named wire per lane in
    every module a stream passes made the ResNet-20 top 12.8 MB instead of 4.3 MB of Verilog."""
    text = rtl.verilog(PipelineFifo(VectorLayout(64, 8, True), 4), "fifo")
    assert "\\o__payload.data " in text and "\\o__payload.last " in text
    assert "payload.data[" not in text
