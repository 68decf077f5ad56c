"""Generated accelerators under Verilator (`imcflow.verif.sim`, ``imcflow sim``): bit-exact with
the golden model at every layer, every stage's handshakes on the performance model's cycles,
nothing lost under random idle cycles and backpressure, a bug in one layer reported at that
layer although the outputs are right, and a too-shallow skip FIFO reported as a deadlock that
names the stalled join. The C++ engine (default) runs everything; one test runs the cocotb
engine.

The networks are small so the builds are cheap: ``small_net`` has every layer kind (strided and
padded convs, a projection skip, max and average pooling, flatten + dense, global pooling and a
dense on a vector); ``tiny_residual`` an identity skip around two convs. The digits demo
(tests/test_demo.py) and the ResNet runs (tests/test_sim_resnets.py) cover the full-size zoo.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from imcflow import cli
from imcflow.errors import UserError
from imcflow.gen import project
from imcflow.gen.accelerator import Accelerator, AxiStreamTop
from imcflow.gen.project import generate
from imcflow.sw import perf
from imcflow.sw.arch import load_arch
from imcflow.sw.inference import trace
from imcflow.sw.ir import Add, Conv2d, Dense, GlobalAvgPool, Input, Network, ReLU, Shape
from imcflow.sw.weights import he_init
from imcflow.verif.diagnose import diagnose
from imcflow.verif.sim import sim_images, simulate
from small_networks import small_net

ARCH = "default"


def tiny_residual():
    """An identity skip around two 3x3 convs on a 6x6 map: the skip FIFO needs 2W + 2 = 14 words."""
    layers = [Input("in", Shape(6, 6, 2)),
              Conv2d("c1", "in", 4, kernel=3, padding=1), ReLU("r1", "c1"),
              Conv2d("c2", "r1", 4, kernel=3, padding=1), ReLU("r2", "c2"),
              Conv2d("c3", "r2", 4, kernel=3, padding=1),
              Add("add", "c3", "r1"), ReLU("r3", "add"),
              GlobalAvgPool("gap", "r3"), Dense("fc", "gap", 3)]
    return he_init(Network("tiny_residual", layers), seed=3)


@pytest.fixture(scope="module")
def small_line(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "line"
    generate(out, small_net(), ARCH, buffer="line", progress=False)
    return out


def check_on_model(f):
    """Bit-exact at every layer, and the model's timing: every image completes, and every stage
    hands every beat on, in the model's cycle."""
    assert f.passed, f
    assert f.layers_checked > 0 and f.layer_mismatches == {}, f
    assert f.model_completion_error_cycles == 0 and f.first_timing_mismatch is None, f
    assert f.model_handshake_error_cycles == 0 and f.first_handshake_mismatch is None, f
    assert f.latency_cycles == f.model_latency_cycles, f
    print(f"{f.top}: {f.cycles_per_image} cycles per image (model "
          f"{f.model_cycles_per_image}), latency {f.latency_cycles} (model "
          f"{f.model_latency_cycles}), largest completion error "
          f"{f.model_completion_error_cycles} cycles")


def test_every_layer_kind_bit_exact_on_the_model_timing(small_line):
    f = simulate(small_line, 4, progress=False)
    check_on_model(f)
    assert (f.images, f.bit_exact, f.extra_beats, f.missing_beats) == (4, 4, 0, 0)
    manifest = json.loads((small_line / "manifest.json").read_text())
    stages = [l["name"] for l in manifest["layers"] if l["role"] not in ("source", "fused")]
    assert [t["stage"] for t in manifest["taps"]] == stages and f.layers_checked == len(stages)
    assert f.accuracy is None and "accuracy" not in f.to_json()   # random images: no labels
    assert f.to_json()["latency_ratio"] == 1.0   # at full rate, the ratios to the model


@pytest.mark.parametrize("buffer, budget", [("frame", None), ("line", "2x"), ("auto", "3x")])
def test_frame_buffers_and_replication_bit_exact_on_the_model_timing(buffer, budget, tmp_path):
    gen = generate(tmp_path / "out", small_net(), ARCH, buffer=buffer, core_budget=budget,
                   progress=False)
    if budget:
        assert max(l["replication"] for l in gen.manifest["layers"] if l["role"] == "crossbar") > 1
    check_on_model(simulate(tmp_path / "out", 3, progress=False))


def test_pipelined_mac_trees_keep_the_model_timing(tmp_path):
    # Registers in the crossbars' adder trees (for an FPGA clock) add a cycle of latency each,
    # which the model must predict; the rate stays.
    arch = load_arch(ARCH, mac_stages=2)
    generate(tmp_path / "out", tiny_residual(), arch, progress=False)
    f = simulate(tmp_path / "out", 3, progress=False)
    check_on_model(f)
    plain = generate(tmp_path / "plain", tiny_residual(), ARCH, progress=False)
    assert f.model_latency_cycles == plain.manifest["model"]["latency_cycles"] + 2 * 4


def test_random_idle_and_backpressure_lose_nothing_and_keep_the_model_timing(small_line, seeds):
    # The model is given the run's stall masks (verif.patterns.port_stalls), so even a stalled
    # run completes every image in the model's cycle.
    for seed in seeds(2):
        f = simulate(small_line, 5, seed=seed, idle=0.3, backpressure=0.5, progress=False)
        check_on_model(f)
        assert "cycles_per_image_ratio" not in f.to_json()   # ratios are full-rate figures


def test_backpressure_into_a_crossbar_keeps_the_model_timing(tmp_path):
    # The output conv takes a window every 3 cycles and its output is often not taken: its tile
    # (interval counter included) stops while its output register is blocked, and the stall
    # reaches the conv before it. A model with a plain copy capacity was 21 cycles late here.
    layers = [Input("in", Shape(6, 6, 2)),
              Conv2d("c1", "in", 4, kernel=3, padding=1), ReLU("r1", "c1"),
              Conv2d("c2", "r1", 3, kernel=1)]
    net = he_init(Network("conv_head", layers), seed=5)
    generate(tmp_path / "out", net, load_arch(ARCH, mvm_cycles=3), progress=False)
    check_on_model(simulate(tmp_path / "out", 4, seed=5, backpressure=0.6, progress=False))


def test_a_timing_mismatch_fails_the_run(small_line, monkeypatch, capsys):
    # A model one cycle late on the output: the data are still bit-exact, yet the run fails and
    # names the first image and the difference, as it would for a data mismatch.
    exact = perf.simulate

    def late(mapping, images, **stalls):
        s = exact(mapping, images, **stalls)
        return dataclasses.replace(s, emit={**s.emit, s.output: s.emit[s.output] + 1})

    monkeypatch.setattr(perf, "simulate", late)
    assert cli.main(["sim", str(small_line), "--images", "2", "--json"]) == 1
    f = json.loads(capsys.readouterr().out)
    assert f["bit_exact"] == 2 and f["model_completion_error_cycles"] == 1
    m = f["first_timing_mismatch"]
    assert (m["image"], m["difference"], m["actual"] + 1) == (0, -1, m["expected"])
    assert cli.main(["sim", str(small_line), "--images", "2"]) == 1
    assert (f"first timing mismatch: image 0 completes in cycle {m['actual']}, the performance "
            f"model says {m['expected']} (-1 cycles)") in capsys.readouterr().out


def with_bias_bug(qnet, layer: str, channel: int):
    """``qnet`` with one more accumulator LSB in ``layer``'s bias of ``channel``."""
    q = qnet[layer]
    bad = dataclasses.replace(q, bias=q.bias + (np.arange(len(q.bias)) == channel))
    return dataclasses.replace(qnet, layers=[bad if l.name == layer else l for l in qnet.layers])


def test_a_bug_in_one_layer_is_reported_at_that_layer(small_line, tmp_path, monkeypatch, capsys):
    # An RTL bug the outputs do not show: one layer computes one channel with its bias one LSB
    # off. The directory keeps the true network (the golden model), its Verilog computes the
    # bugged one.
    clean = project.load(small_line)
    images = sim_images(clean, 4)[0]
    golden = trace(clean.qnet, images)
    out = clean.qnet.output.name

    def wrong(layer, channel):   # what the bug changes in that layer and at the output
        bugged = trace(with_bias_bug(clean.qnet, layer, channel), images)
        return bugged, (bugged[layer] != golden[layer]).any(), (bugged[out] != golden[out]).any()

    layer, channel, bugged = next((q.name, c, t) for q in clean.qnet.crossbar_layers[:-1]
                                  for c in range(len(q.bias))
                                  for t, inside, outside in [wrong(q.name, c)]
                                  if inside and not outside)

    def bugged_top(gen):
        if "bugged_top" not in gen.__dict__:
            core = Accelerator(with_bias_bug(gen.qnet, layer, channel), gen.mapping,
                               target=gen.target)
            gen.__dict__["bugged_top"] = AxiStreamTop(core, taps=gen.taps)
        return gen.__dict__["bugged_top"]

    monkeypatch.setattr(project.Generated, "top", property(bugged_top))
    generate(tmp_path / "bug", small_net(), ARCH, buffer="line", progress=False)
    monkeypatch.undo()

    assert cli.main(["sim", str(tmp_path / "bug"), "--images", "4", "--json"]) == 1
    f = json.loads(capsys.readouterr().out)
    assert f["output_bit_exact"] == 4 and f["bit_exact"] < 4      # the outputs miss it
    # The first wrong beat of that layer, as the golden models of both networks say.
    h, w, c = golden[layer].shape[1:]
    k = int(np.argmax((bugged[layer] != golden[layer]).reshape(-1, c).any(axis=1)))
    n, pixel = divmod(k, h * w)
    row, col = divmod(pixel, w)
    ch = int(np.argmax(bugged[layer][n, row, col] != golden[layer][n, row, col]))
    assert f["first_mismatch"] == {
        "layer": layer, "image": n, "beat": k, "pixel": [row, col], "channel": ch,
        "expected": int(golden[layer][n, row, col, ch]),
        "actual": int(bugged[layer][n, row, col, ch])}
    assert layer in f["layer_mismatches"] and f["model_completion_error_cycles"] == 0
    assert f["waveform"].endswith(".vcd")
    assert cli.main(["sim", str(tmp_path / "bug"), "--images", "4"]) == 1
    text = capsys.readouterr().out
    assert (f"first mismatch: layer {layer!r}, image {n}, pixel (row {row}, col {col}), channel "
            f"{ch}: expected {golden[layer][n, row, col, ch]}, got "
            f"{bugged[layer][n, row, col, ch]}") in text
    assert f"waveform: {f['waveform']}" in text


def test_sim_json_reports_the_engine_its_speed_and_a_cached_build(small_line, capsys):
    assert cli.main(["sim", str(small_line), "--images", "2", "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["sim", str(small_line), "--images", "2", "--json"]) == 0
    f = json.loads(capsys.readouterr().out)          # stdout: the one JSON object
    assert (f["engine"], f["cached"], f["build_seconds"]) == ("cpp", True, 0)
    assert isinstance(f["cycles_per_second"], int) and f["cycles_per_second"] > 0
    # the loop's CPU time is inside its wall time, up to the CPU clock's accounting: on a loaded
    # 2-core machine a run of milliseconds was once counted 1.7 % more CPU than wall time
    assert isinstance(f["cycles_per_cpu_second"], int)
    assert f["cycles_per_cpu_second"] >= 0.95 * f["cycles_per_second"]
    assert f["build_profile"] == "build"     # 2 images: a short run builds for build time
    assert f["simulated_cycles"] > f["images"] * f["cycles_per_image"]
    manifest = json.loads((small_line / "manifest.json").read_text())
    assert (f["arch_name"], f["arch"], f["target"]) == (
        manifest["arch_name"], manifest["arch"], manifest["target"])   # the arch it used


def test_a_top_without_taps_on_both_engines(tmp_path):
    # A clean top (`imcflow gen --no-taps`): both engines check its output and its timing, the
    # cocotb one under the same stall masks as the C++ one (accelerator_tb.CycleStalls).
    gen = generate(tmp_path / "clean", tiny_residual(), ARCH, taps=False, progress=False)
    assert gen.manifest["taps"] == [] and not any(p["name"].startswith("tap_")
                                                  for p in gen.manifest["ports"])
    for engine in ("cpp", "cocotb"):
        f = simulate(tmp_path / "clean", 2, engine=engine, idle=0.3, backpressure=0.5,
                     progress=False)
        assert f.passed, f
        assert (f.engine, f.layers_checked, f.bit_exact) == (engine, 0, 2)
        assert f.model_completion_error_cycles == 0
        assert f.model_handshake_error_cycles is None


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    out = tmp_path_factory.mktemp("residual")
    generate(out / "mapper", tiny_residual(), ARCH, progress=False)
    generate(out / "half", tiny_residual(), ARCH, skip_depth_scale=0.5, progress=False)
    return out


def test_the_mappers_skip_depth_never_deadlocks(residual, seeds):
    manifest = json.loads((residual / "mapper" / "manifest.json").read_text())
    (skip,) = manifest["skip_fifos"]
    assert (skip["join"], skip["input"], skip["min_words"]) == ("add", "c1", 14)
    assert skip["words"] == skip["mapper_words"] >= skip["min_words"]
    check_on_model(simulate(residual / "mapper", 4, progress=False))
    for seed in seeds(3):
        check_on_model(simulate(residual / "mapper", 4, seed=seed, idle=0.2, backpressure=0.6,
                                progress=False))


def test_a_too_shallow_skip_fifo_is_reported_as_a_deadlock(residual, capsys):
    manifest = json.loads((residual / "half" / "manifest.json").read_text())
    (skip,) = manifest["skip_fifos"]
    assert skip["words"] == skip["mapper_words"] // 2 < skip["min_words"]
    assert "deadlocks" in manifest["model"]["deadlock"]      # the model predicts it too
    assert cli.main(["sim", str(residual / "half"), "--images", "2", "--json"]) == 1
    f = json.loads(capsys.readouterr().out)                   # one JSON object, nothing else
    assert f["bit_exact"] == 0 and f["missing_beats"] == 2
    message = f["deadlock"]
    assert message.startswith("deadlock: no output handshake for ")
    assert (f"stalled stage 'add': waits for its input from 'c3' while its input from 'c1' "
            f"(skip FIFO, {skip['words']} words) holds beats; the skip FIFO from 'c1' is full"
            in message), message
    assert "deadlocks" in f["model_deadlock"] and f["waveform"].endswith(".vcd")


def test_diagnose_names_full_fifos_and_starved_stages():
    links = [{"producer": "a", "consumer": "b", "port": "i", "kind": "fifo", "depth": 2, "bit": 0},
             {"producer": "b", "consumer": "c", "port": "i", "kind": "fifo", "depth": 2, "bit": 4}]
    # a -> b: full, offered on both sides and taken on neither; b -> c: empty, with room
    status = 0b0010_0101
    message = diagnose(status, links, idle_cycles=99, bound=40)
    assert message == ("deadlock: no output handshake for 99 cycles (watchdog bound 40); "
                       "full FIFOs: a->b; stages with an empty input: c")


def test_sim_command_errors_are_one_line(small_line, tmp_path, capsys):
    assert cli.main(["sim", str(tmp_path), "--images", "1"]) == 2
    assert capsys.readouterr().err.startswith("imcflow sim: error: directory: ")
    assert cli.main(["sim", str(small_line), "--images", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "imcflow sim: error: images: must be a positive integer, not 0\n"
    assert cli.main(["sim", str(small_line), "--images", "1", "--idle", "1"]) == 2
    assert "idle: must be a probability in [0, 1), not 1.0" in capsys.readouterr().err
    assert cli.main(["sim", str(small_line), "--images", "1", "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == "imcflow sim: error: seed: must be a non-negative integer, not -1\n"
    # the library's callers get the same checks (the CLI's parser knows the engines already)
    with pytest.raises(UserError, match="engine: must be one of 'cpp', 'cocotb', not 'iverilog'"):
        simulate(small_line, 1, engine="iverilog")
    with pytest.raises(UserError, match="seed: must be a non-negative integer, not True"):
        simulate(small_line, 1, seed=True)


def test_sim_refuses_verilog_that_is_not_the_configurations(small_line, tmp_path, capsys):
    edited = tmp_path / "edited"
    shutil.copytree(small_line, edited)
    # the top's Verilog, not the instantiation template beside it (`<top>_inst.v`)
    verilog = edited / json.loads((edited / "manifest.json").read_text())["verilog"]
    verilog.write_text(verilog.read_text().replace("module ", "module  ", 1))
    assert cli.main(["sim", str(edited), "--images", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not the Verilog of the configuration" in err
