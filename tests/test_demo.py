"""`imcflow demo` (what `make demo` runs): the digits accelerator generated and simulated on the
held-out images, bit-exact, accurate, and on the performance model's timing."""

from __future__ import annotations

import json

from imcflow import cli
from imcflow.cli import demo
from imcflow.sw.arch import load_arch
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_network
from imcflow.sw.report import summarize
from imcflow.verif.sim import SimResult


def test_demo_is_bit_exact_accurate_and_on_the_model_timing(tmp_path, capsys):
    assert cli.main(["demo", "--json", "-o", str(tmp_path / "demo")]) == 0
    f = json.loads(capsys.readouterr().out)                  # exactly one JSON object
    assert f["images"] == demo.IMAGES >= 100
    assert f["bit_exact"] == f["images"] and f["first_mismatch"] is None and not f["deadlock"]
    assert f["engine"] == "cpp" and f["layers_checked"] == 7          # every stage of digits
    assert f["accuracy"] >= 0.95 and f["accuracy"] == f["golden_accuracy"]
    # every image completes, and every stage hands on every beat, in the model's cycle
    assert f["model_completion_error_cycles"] == 0 and f["first_timing_mismatch"] is None
    assert f["model_handshake_error_cycles"] == 0
    assert f["latency_cycles"] == f["model_latency_cycles"]
    assert f["cycles_per_image"] == f["model_cycles_per_image"]
    assert f["activation_memory_bits"] > 0 and f["weight_memory_bits"] > 0 and f["crossbars"] == 5
    assert (tmp_path / "demo" / "manifest.json").is_file()
    print(f"demo: {f['images']} images, accuracy {f['accuracy']:.3f}, {f['cycles_per_image']} "
          f"cycles per image (model {f['model_cycles_per_image']}), latency {f['latency_cycles']} "
          f"(model {f['model_latency_cycles']}); gen {f['gen_seconds']} s, build "
          f"{f['build_seconds']} s, simulation {f['sim_seconds']} s "
          f"({f['cycles_per_second']} cycles/s, {f['engine']} engine)")


def test_digits_under_idle_and_backpressure_on_the_model_timing(tmp_path, capsys):
    # The demo's accelerator (the same Verilog, so the same cached build) with idle input cycles
    # and output backpressure: the model, given the same stall masks, still predicts every
    # image's completion cycle.
    assert cli.main(["gen", "--network", demo.NETWORK, "--arch", demo.ARCH,
                     "-o", str(tmp_path / "digits"), "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["sim", str(tmp_path / "digits"), "--images", "20", "--seed", "3",
                     "--idle", "0.3", "--backpressure", "0.5", "--json"]) == 0
    f = json.loads(capsys.readouterr().out)
    assert f["bit_exact"] == f["images"] == 20 and f["first_mismatch"] is None
    assert f["model_completion_error_cycles"] == 0 and f["first_timing_mismatch"] is None
    assert f["model_handshake_error_cycles"] == 0 and f["first_handshake_mismatch"] is None
    assert f["latency_cycles"] == f["model_latency_cycles"]


def test_demo_prints_the_mapping_and_the_figures(monkeypatch, capsys):
    # The text form, on the figures of a run (the simulation itself is the test above).
    net = load_network(demo.NETWORK)
    mapping = summarize(net, map_network(net, load_arch(demo.ARCH))).to_json()
    sim = SimResult(
        directory="out/demo", network="digits", top="digits_top", config_hash="0" * 16,
        arch_name="default", arch=None, target="sim", engine="cpp", images=360, seed=0, idle=0.0,
        backpressure=0.0, bit_exact=360, output_bit_exact=360, layers_checked=7,
        mismatched_images=0, first_mismatch=None, layer_mismatches={}, missing_beats=0,
        extra_beats=0, extra_layer_beats=0, held_out_images=360, accuracy=0.9833,
        golden_accuracy=0.9833, deadlock=None, timeout=None, protocol_violation=None,
        model_deadlock=None, latency_cycles=728, cycles_per_image=512.0,
        throughput_ips=1953125.0, latency_us=0.728, model_latency_cycles=728,
        model_cycles_per_image=512.0, model_throughput_ips=1953125.0, cycles_per_image_ratio=1.0,
        latency_ratio=1.0, model_completion_error_cycles=0, first_timing_mismatch=None,
        model_handshake_error_cycles=0, first_handshake_mismatch=None, waveform=None,
        activation_memory_bits=10392, crossbars=5, clock_mhz=1000.0, simulated_cycles=184_000,
        build_seconds=0.5, cached=True, build_cpu_seconds=0.5, random_init=True,
        build_profile="run", sim_seconds=20.0, sim_cpu_seconds=20.0, cycles_per_second=10000,
        images_per_second=18.0, cycles_per_cpu_second=10000)
    monkeypatch.setattr(demo, "demo",
                        lambda *args, **kwargs: demo.Demo(sim, 18400, mapping, 30.0, 51.0))
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("layer ") and "block_add" in out
    assert ("360 held-out images: accuracy 0.983 (golden model 0.983), 360 of 360 bit-exact"
            in out)
    assert "cycles per image 512.0 (model 512.0, ratio 1.0000); latency 728 cycles (model 728, " \
           "ratio 1.0000)" in out
