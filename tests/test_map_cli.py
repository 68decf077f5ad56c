"""``imcflow map``: the JSON object, the table, the report directory, and the acceptance figures on
resnet32 (line versus frame buffers, a doubled core budget)."""

from __future__ import annotations

import contextlib
import functools
import io
import json

import pytest

from imcflow.cli import main

LAYER_FIELDS = {"name", "rows", "cols", "row_tiles", "col_tiles", "crossbars", "replication",
                "output_pixels", "stage_cycles", "buffer", "buffer_words"}


def _map_json(capsys, *args):
    assert main(["map", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object
    return json.loads(out)


@functools.lru_cache(maxsize=None)
def _resnet32(*args):
    """``imcflow map --network resnet32 <args> --json``, run once per argument list (stdout is
    captured here, so results can be shared between tests)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["map", "--network", "resnet32", *args, "--json"]) == 0
    assert out.getvalue().count("\n") == 1
    return json.loads(out.getvalue())


def test_resnet32_json_has_the_layer_fields_and_totals():
    s = _resnet32("--buffer", "line")
    for key in ("crossbars", "cycles_per_image", "throughput_ips", "latency_cycles",
                "activation_memory_bits", "cycles_per_image_bound", "utilization", "skip_words"):
        assert key in s
    # input, 32 conv/dense + 2 projections, 15 adds, global pooling, 31 ReLUs
    assert len(s["layers"]) == 1 + 34 + 15 + 1 + 31
    for layer in s["layers"]:
        assert LAYER_FIELDS <= set(layer)
    assert s["crossbars"] == sum(l["crossbars"] for l in s["layers"]) == 62
    assert s["activation_memory_bits"] == sum(l["buffer_bits"] for l in s["layers"])
    assert s["cycles_per_image_bound"] == max(l["stage_cycles"] for l in s["layers"]) == 8192
    assert s["throughput_ips"] == pytest.approx(1e9 / s["cycles_per_image"])
    assert s["latency_cycles"] == max(l["last_output"] for l in s["layers"] if l["last_output"])


def test_resnet32_line_buffers_need_less_memory_and_latency_at_the_same_bound():
    line, frame = _resnet32("--buffer", "line"), _resnet32("--buffer", "frame")
    assert frame["activation_memory_bits"] > 5 * line["activation_memory_bits"]
    assert frame["latency_cycles"] > 5 * line["latency_cycles"]
    assert line["cycles_per_image_bound"] == frame["cycles_per_image_bound"]
    assert line["cycles_per_image"] == frame["cycles_per_image"] == 8192
    assert line["buffer_tradeoff"] == frame["buffer_tradeoff"]
    assert line["buffer_tradeoff"]["frame"]["latency_cycles"] == frame["latency_cycles"]
    assert frame["latency_closed_form"] == frame["latency_cycles"]


def test_resnet32_double_budget_at_least_1_8x_throughput():
    line, double = _resnet32("--buffer", "line"), _resnet32("--core-budget", "2x")
    assert double["core_budget"] == 2 * line["crossbars"]
    assert line["crossbars"] < double["crossbars"] <= double["core_budget"]
    assert double["throughput_ips"] >= 1.8 * line["throughput_ips"]
    assert double["unreplicated"]["cycles_per_image"] == line["cycles_per_image"]
    assert double["unreplicated"]["speedup"] == pytest.approx(
        line["cycles_per_image"] / double["cycles_per_image"])


def test_table_names_every_stage(capsys):
    assert main(["map", "--network", "digits"]) == 0
    out = capsys.readouterr().out
    for name in ("conv1", "block_conv1", "block_add", "gap", "fc"):
        assert f"\n{name} " in out
    assert "block_relu1" not in out  # fused into its producer
    assert "cycles per image: 512 predicted, 512 bound" in out


def test_report_directory(tmp_path, capsys):
    out = tmp_path / "digits"
    summary = _map_json(capsys, "--network", "digits", "--core-budget", "2x", "-o", str(out))
    assert sorted(p.name for p in out.iterdir()) == [
        ".imcflow", "mapping.json", "memory_latency.png", "report.md", "stage_times.png"]
    assert json.loads((out / "mapping.json").read_text()) == summary
    for png in ("memory_latency.png", "stage_times.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    trade = summary["buffer_tradeoff"]
    assert (f"latency of {trade['line']['latency_cycles']} cycles" in report
            and f"give {trade['frame']['latency_cycles']} cycles" in report)
    copies = [l for l in summary["layers"] if l["replication"] > 1]
    assert copies and all(f"| {l['name']} | {l['replication']} |" in report for l in copies)


@pytest.mark.parametrize("args,message", [
    (["--network", "digits", "--core-budget", "1"], "core budget 1 is below the minimum 5 crossbars"),
    (["--network", "digits", "--core-budget", "lots"], "core_budget: must be a number of crossbars"),
    (["--network", "nonet"], "--network: 'nonet' is neither a zoo network"),
    (["--network", "digits", "--arch", "huge"], "--arch: 'huge' is neither a preset"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    assert main(["map", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("imcflow map: error: ") and message in err
