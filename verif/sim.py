"""``imcflow sim DIR``: a generated accelerator under Verilator against the golden and timing
models.

`simulate` loads a directory written by ``imcflow gen --network`` (`imcflow.gen.project.load`),
checks it against its ``config_hash`` (nothing edited), streams images back to back through its
top on one of two engines and compares what the run recorded (`imcflow.verif.compare`):

- ``cpp`` (default, `imcflow.verif.engine`): the directory's Verilog with a C++ harness compiled
  by Verilator, no per-cycle Python. It records every input and output handshake and, when the
  top carries the debug taps (``imcflow gen`` default), every handshake of every stage's output
  stream, and checks the AXI4-Stream rules on ``m_axis`` every cycle;
- ``cocotb`` (`imcflow.verif.cocotb_engine`): the top elaborated again (its Verilog must be the
  directory's) under the cocotb testbench `imcflow.verif.accelerator_tb`, for protocol-level
  work; it records the ports only.

What a run is compared with:

- the golden model (`imcflow.sw.inference.trace`): every tapped stage's stream and the output,
  beat by beat; the first mismatch names the layer, image, pixel, channel, expected and actual
  value; with labels, the accuracy of the RTL's outputs;
- the performance model (`imcflow.sw.perf.simulate` of the same mapping, images and stall
  masks): every image's completion cycle and every tapped handshake, which must be equal.

Idle input cycles and output backpressure are the seeded masks of
`imcflow.verif.patterns.port_stalls`. A watchdog stops a run in which no output handshake happens
for `WATCHDOG_FACTOR` times the model's latency (or image period, if longer) and names the
stalled stage from the top's ``status`` port (`imcflow.verif.diagnose`). A failed run's waveform
is recorded (by a rerun with tracing, around the first failure, unless ``waves`` traced the whole
run) and its path reported. docs/generator.md describes the command and its figures; the command
itself (options and text) is `imcflow.cli.sim`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from imcflow.errors import UserError
from imcflow.files import cache_dir
from imcflow.gen.project import config_hash, held_out, load, with_skip_depths
from imcflow.progress import note
from imcflow.sw.datasets import load_dataset
from imcflow.sw import perf
from imcflow.validate import check_choice, check_int
from imcflow.verif import cocotb_engine, compare
from imcflow.verif import engine as cpp_engine
from imcflow.verif.diagnose import diagnose
from imcflow.verif.patterns import port_stalls
from imcflow.verif.runner import current_test_id

__all__ = ["WATCHDOG_FACTOR", "ENGINES", "WAVE_WINDOW", "SimResult", "sim_images", "simulate"]

#: the watchdog trips after this many times the model's latency (or period) without an output
WATCHDOG_FACTOR = 4
#: the simulation engines: the compiled C++ harness (default) and the cocotb testbench
ENGINES = ("cpp", "cocotb")
#: cycles before the first failure that the waveform of a failed run holds
WAVE_WINDOW = 10_000

# --- the result ----------------------------------------------------------------------------------

def _only(group: str):
    """A figure present only in some runs (`SimResult.to_json` leaves it out of the others)."""
    return field(default=None, metadata={"only": group})


@dataclass(frozen=True, kw_only=True)
class SimResult:
    """The figures of one `simulate` run (docs/generator.md names each); `to_json` is the object
    ``imcflow sim --json`` prints, in this order. Three groups exist only in some runs and are
    None (and left out of the JSON) in the others: the accuracy figures with labelled images,
    the model's figures when the performance model does not deadlock (``model_deadlock`` None),
    and the ratios to the model at full rate (no idle cycles, no backpressure)."""

    directory: str
    network: str
    top: str
    config_hash: str
    arch_name: str | None
    arch: dict | None
    target: str | None
    engine: str
    images: int
    seed: int
    idle: float
    backpressure: float
    # the streams against the golden model (`imcflow.verif.compare.Streams.figures`)
    bit_exact: int
    output_bit_exact: int
    layers_checked: int
    mismatched_images: int
    first_mismatch: dict | None
    layer_mismatches: dict[str, int]
    missing_beats: int
    extra_beats: int
    extra_layer_beats: int
    held_out_images: int | None = _only("labelled")
    accuracy: float | None = _only("labelled")
    golden_accuracy: float | None = _only("labelled")
    # why a run stopped early
    deadlock: str | None
    timeout: str | None
    protocol_violation: str | None
    model_deadlock: str | None
    # timing, next to the performance model's (`imcflow.verif.compare.timing`)
    latency_cycles: int | None
    cycles_per_image: float | None
    throughput_ips: float | None
    latency_us: float | None
    model_latency_cycles: int | None = _only("modelled")
    model_cycles_per_image: float | None = _only("modelled")
    model_throughput_ips: float | None = _only("modelled")
    cycles_per_image_ratio: float | None = _only("full_rate")
    latency_ratio: float | None = _only("full_rate")
    model_completion_error_cycles: int | None = _only("modelled")
    first_timing_mismatch: dict | None = _only("modelled")
    model_handshake_error_cycles: int | None = _only("modelled")
    first_handshake_mismatch: dict | None = _only("modelled")
    waveform: str | None
    activation_memory_bits: int
    crossbars: int
    clock_mhz: float
    # the build's and the simulation's times and speeds
    simulated_cycles: int
    build_seconds: float
    cached: bool | None
    build_cpu_seconds: float | None
    random_init: bool | None
    build_profile: str | None
    sim_seconds: float
    sim_cpu_seconds: float | None
    cycles_per_second: int | None
    images_per_second: float | None
    cycles_per_cpu_second: int | None

    @property
    def passed(self) -> bool:
        """Bit-exact on every image at every checked layer, complete, free of deadlocks and
        protocol violations, and on the performance model's timing (every image's completion
        cycle and every tapped handshake the model's)."""
        return (self.bit_exact == self.images and not self.deadlock and not self.timeout
                and not self.protocol_violation and self.extra_beats == 0
                and not self.extra_layer_beats and self.model_completion_error_cycles == 0
                and self.model_handshake_error_cycles in (0, None)
                and not self.first_handshake_mismatch)

    def to_json(self) -> dict:
        """The figures as ``imcflow sim --json`` prints them."""
        modelled = self.model_deadlock is None
        present = {None: True, "labelled": self.held_out_images is not None,
                   "modelled": modelled,
                   "full_rate": modelled and self.idle == 0 and self.backpressure == 0}
        return {f.name: getattr(self, f.name) for f in fields(self)
                if present[f.metadata.get("only")]}


# --- the run's inputs: images, options, the model ------------------------------------------------

def sim_images(gen, count: int, seed: int = 0):
    """``(images, labels, held_out)``: ``count`` images for a generated accelerator.

    The held-out images of the data set that calibrated it (`imcflow.gen.project.held_out`),
    followed, when ``count`` exceeds them, by its training images (digits: 360 held out, 1,797
    in all), so a whole data set can stream through the RTL; ``held_out`` says how many of the
    images are held out (accuracy is measured on those). Without a data set: ``count`` seeded
    uniformly random 8-bit images (labels None).
    """
    count = check_int("images", count, 1)
    shape = gen.qnet.network.shapes[gen.qnet.input.name]
    test, labels = held_out(gen.manifest)
    if test is None:
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (count, shape.h, shape.w, shape.c), dtype=np.int64), None, 0
    if count <= len(test):
        return test[:count], None if labels is None else labels[:count], count
    record = gen.manifest["calibration"]
    data = load_dataset(record.get("path", record["dataset"]))
    total = len(test) + len(data.train_images)
    if count > total:
        raise UserError(f"images: {record['dataset']} holds {total} images ({len(test)} held "
                        f"out), not {count}")
    images = np.concatenate([test, data.train_images[:count - len(test)]])
    if labels is not None:
        labels = np.concatenate([labels, data.train_labels[:count - len(test)]])
    return images, labels, len(test)


def _check_probability(name: str, value) -> float:
    """``value`` as a float in [0, 1) (a probability that leaves some cycles free; the family's
    `imcflow.validate.check_number` has closed upper bounds only)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise UserError(f"{name}: must be a probability in [0, 1), not {value!r}")
    return float(value)


def _period(done) -> float | None:
    """Steady-state cycles per image from each image's completion cycle: the mean spacing."""
    return None if len(done) < 2 else float(done[-1] - done[0]) / (len(done) - 1)


def _ratio(a, b):
    return None if a is None or not b else a / b


def _model_timing(gen, images: int, seed: int = 0, idle: float = 0.0, backpressure: float = 0.0):
    """``(schedule or None, deadlock message or None, reference)``: the event model of the
    generated pipeline for ``images`` images under the run's stall masks
    (`imcflow.verif.patterns.port_stalls`), and the full-rate figures the watchdog is derived
    from (those of the mapper's skip depths when the generated ones deadlock)."""
    try:
        schedule = perf.simulate(gen.mapping, images)
    except UserError as e:
        mapper = with_skip_depths(gen.mapping, gen.manifest["options"]["mapper_skip_words"])
        reference = perf.analyze(mapper)
        return None, str(e), (reference.latency_cycles, reference.cycles_per_image)
    reference = (schedule.latency, _period(schedule.done) or schedule.latency)
    cycles = math.ceil(2 * (schedule.done[-1] + 1) / ((1 - idle) * (1 - backpressure)))
    while idle or backpressure:  # masks longer than the run, so they cover every handshake
        input_stall, output_stall = port_stalls(seed, idle, backpressure, cycles)
        schedule = perf.simulate(gen.mapping, images, input_stall=input_stall,
                                  output_stall=output_stall)
        if schedule.done[-1] < cycles:
            break
        cycles *= 2
    return schedule, None, reference


def _verilog(gen) -> str:
    """The directory's Verilog, after checking the directory against its ``config_hash`` (its
    Verilog, network and mapping as generated)."""
    verilog = gen.verilog_path.read_text()
    if config_hash(gen.qnet, gen.mapping, verilog) != gen.manifest["config_hash"]:
        raise UserError(f"directory: {gen.verilog_path} is not the Verilog of the configuration "
                        f"in {gen.directory} (edited, or written by another imcflow); "
                        f"regenerate it")
    return verilog


# --- the engines ---------------------------------------------------------------------------------

def _wave_path(top: str) -> Path:
    return cache_dir("waves") / f"{current_test_id(f'sim-{top}')}.vcd"


def _first_failure_cycle(r, result: SimResult) -> int:
    """The earliest cycle at which the run went wrong (data, timing, protocol, deadlock)."""
    cycles = [r.cycles]
    m = result.first_mismatch
    if m is not None:
        recorded = r.out_cycles if m["layer"] == "m_axis" else r.taps[m["layer"]][0]
        cycles.append(int(recorded[m["beat"]]) if m["beat"] < len(recorded) else r.cycles)
    for mismatch in (result.first_timing_mismatch, result.first_handshake_mismatch):
        if mismatch:
            cycles.append(min(mismatch["expected"], mismatch["actual"]))
    for event in (r.violation, r.watchdog):
        if event:
            cycles.append(event["cycle"])
    return min(cycles)


def _run_cycles(model: dict, images: int, plan: dict) -> int:
    """The cycles a run of ``images`` takes by the manifest's ``model`` (latency, then one image
    period per further image, stretched by the idle cycles and backpressure); 0 for a model
    that deadlocks (the watchdog ends such a run early)."""
    if model.get("cycles_per_image") is None:
        return 0
    cycles = model["latency_cycles"] + (images - 1) * model["cycles_per_image"]
    return math.ceil(cycles / ((1 - plan["idle"]) * (1 - plan["backpressure"])))


def _cpp(gen, verilog, pixels, plan: dict, *, waves: bool, full_waves: bool, progress: bool):
    """``(results, harness, waveform path or None, rerun)``: a run of the C++ engine, and a
    function that reruns it with tracing around a given cycle (returns the waveform's path)."""
    ports = cpp_engine.Ports.from_manifest(gen.manifest)
    optimize = cpp_engine.profile(_run_cycles(gen.manifest["model"], len(pixels), plan))
    harness = cpp_engine.build(verilog, ports, waves=waves, full_waves=full_waves,
                               optimize=optimize, progress=progress)
    shaped = pixels.reshape(len(pixels), -1, pixels.shape[-1])
    wave = _wave_path(gen.name)
    wave.unlink(missing_ok=True)
    trace = (wave, -2, 1 << 62) if harness.waves else None
    results = cpp_engine.run(harness, shaped, progress=progress, trace=trace, **plan)

    def rerun(cycle: int) -> Path:
        first, last = max(-2, cycle - WAVE_WINDOW), cycle + 100
        note("sim", f"rerunning with tracing for the waveform of cycles {first}..{last}")
        traced = cpp_engine.build(verilog, ports, waves=True, full_waves=full_waves,
                                  optimize=optimize, progress=progress)
        cpp_engine.run(traced, shaped, progress=False, trace=(wave, first, last), **plan)
        return wave

    return results, harness, wave if trace else None, rerun


# --- the command's figures -----------------------------------------------------------------------

def _timing(r, images: int, beats: int, schedule, clock_mhz: float, full_rate: bool) -> dict:
    """Measured latency (first input handshake to the first image's last output handshake),
    period and throughput, next to the model's ``schedule`` (or None)."""
    done = r.out_cycles[beats - 1::beats][:images]
    period = _period(done) if len(done) == images else None
    latency = int(done[0] - r.in_cycles[0]) if len(done) else None
    f = {"latency_cycles": latency, "cycles_per_image": period,
         "throughput_ips": clock_mhz * 1e6 / period if period else None,
         "latency_us": latency / clock_mhz if latency is not None else None}
    if schedule is not None:
        model_period = _period(schedule.done)
        f.update(model_latency_cycles=schedule.latency, model_cycles_per_image=model_period,
                 model_throughput_ips=clock_mhz * 1e6 / model_period if model_period else None)
        if full_rate:
            f.update(cycles_per_image_ratio=_ratio(period, model_period),
                     latency_ratio=_ratio(latency, schedule.latency))
    return f


def simulate(directory, images: int, *, seed: int = 0, idle: float = 0.0,
             backpressure: float = 0.0, engine: str = "cpp", waves: bool = False,
             full_waves: bool = False, progress: bool = True) -> SimResult:
    """Simulate the accelerator in ``directory`` on ``images`` images under Verilator.

    Parameters
    ----------
    directory : path
        Written by ``imcflow gen --network`` (`imcflow.gen.project.generate`).
    images : int
        Held-out images of the data set that calibrated it, then its training images
        (`sim_images`), else seeded random 8-bit images.
    seed : int
        Seed (``>= 0``) of the random images and of the idle and backpressure masks.
    idle, backpressure : float
        Probability of an idle cycle on the input and of ``tready`` low on the output.
    engine : str
        ``cpp`` (the compiled harness, every tapped layer checked) or ``cocotb``.
    waves : bool
        Trace the whole run (the top's ports, taps and status); without it, a failed run is
        rerun with tracing around its first failure.
    full_waves : bool
        Trace every signal instead of the top's ports.
    progress : bool
        Progress lines on stderr.

    Returns
    -------
    SimResult
        The figures (docs/generator.md): ``images``, ``bit_exact`` (images exact at every
        tapped layer and the output), ``first_mismatch``, ``layer_mismatches``, ``accuracy``,
        latency and cycles per image next to the model's, their largest differences,
        ``deadlock``, ``protocol_violation``, ``waveform``, build and simulation times and
        speed; ``passed`` says whether the run passed.

    Raises
    ------
    UserError
        On a bad directory or option, or an edited directory.
    imcflow.verif.runner.BuildError, imcflow.verif.runner.SimulationError
        If the build fails or the simulator crashes.
    """
    seed = check_int("seed", seed, 0)
    idle = _check_probability("idle", idle)
    backpressure = _check_probability("backpressure", backpressure)
    check_choice("engine", engine, ENGINES)
    gen = load(directory)
    qnet, manifest = gen.qnet, gen.manifest
    pixels, labels, held = sim_images(gen, images, seed)
    verilog = _verilog(gen)
    schedule, model_deadlock, plan = _plan(gen, images, seed, idle, backpressure)
    run = _run(engine, gen, verilog, pixels, plan, waves=waves, full_waves=full_waves,
               progress=progress)
    r, per_image = run.results, qnet.output.shape.pixels

    streams = compare.Streams(qnet, pixels, (r.out_values, r.out_last), r.taps)
    figures = {"directory": str(directory), "network": qnet.name, "top": gen.name,
               "config_hash": manifest["config_hash"], "arch_name": manifest.get("arch_name"),
               "arch": manifest.get("arch"), "target": manifest.get("target"), "engine": engine,
               "images": images, "seed": seed, "idle": idle, "backpressure": backpressure,
               **streams.figures()}
    if labels is not None:
        figures.update(_accuracy(r, streams, labels, held, per_image))
    figures.update(_stops(r, manifest, plan, images * per_image), model_deadlock=model_deadlock)
    figures.update(_timing(r, images, per_image, schedule, qnet.arch.clock_mhz,
                           full_rate=idle == 0 and backpressure == 0))
    if schedule is not None:
        shapes = {name: (qnet[name].shape.h, qnet[name].shape.w, qnet[name].shape.c)
                  for name in r.taps}
        figures.update(compare.timing(schedule, images, r.out_cycles, per_image, r.taps, shapes))
    result = SimResult(**figures, waveform=str(run.wave) if run.wave else None,
                       activation_memory_bits=manifest["mapping"]["activation_memory_bits"],
                       crossbars=manifest["mapping"]["crossbars"], clock_mhz=qnet.arch.clock_mhz,
                       **_speed(run, images))
    if not result.passed and run.rerun is not None and run.wave is None:
        result = replace(result, waveform=str(run.rerun(_first_failure_cycle(r, result))))
    return result


def _plan(gen, images: int, seed: int, idle: float, backpressure: float):
    """``(schedule or None, model deadlock or None, plan)``: the model's schedule of the run
    (`_model_timing`) and the engines' arguments: seed, stall probabilities, the watchdog
    (`WATCHDOG_FACTOR` times the model's latency or period, stretched by the stalls), a timeout
    for the whole run and the output beats expected."""
    schedule, model_deadlock, (ref_latency, ref_period) = _model_timing(gen, images, seed, idle,
                                                                        backpressure)
    slowdown = 1 / ((1 - idle) * (1 - backpressure))
    bound = math.ceil(WATCHDOG_FACTOR * max(ref_latency, ref_period) * slowdown)
    plan = {"seed": seed, "idle": idle, "backpressure": backpressure, "watchdog": bound,
            "timeout": bound + math.ceil(4 * (ref_latency + images * ref_period) * slowdown),
            "out_beats": images * gen.qnet.output.shape.pixels}
    return schedule, model_deadlock, plan


@dataclass(frozen=True)
class _EngineRun:
    """What an engine's run gives the figures: its recorded results, its build and how to rerun
    it with tracing (the C++ engine only)."""

    results: object
    build_seconds: float
    cached: bool | None
    build_cpu_seconds: float | None
    random_init: bool | None
    wave: Path | None
    rerun: Callable[[int], Path] | None
    profile: str | None = None


def _run(engine: str, gen, verilog: str, pixels, plan: dict, *, waves: bool, full_waves: bool,
         progress: bool) -> _EngineRun:
    if engine == "cpp":
        r, harness, wave, rerun = _cpp(gen, verilog, pixels, plan, waves=waves,
                                       full_waves=full_waves, progress=progress)
        return _EngineRun(r, harness.seconds, harness.cached, harness.cpu_seconds,
                          harness.random_init, wave, rerun, harness.optimize)
    plan = {k: v for k, v in plan.items() if k != "out_beats"}
    r, build_seconds, wave, _ = cocotb_engine.run(gen, verilog, pixels, plan, waves=waves,
                                                  full_waves=full_waves, progress=progress)
    return _EngineRun(r, build_seconds, None, None, None, wave, None)


def _accuracy(r, streams, labels, held: int, per_image: int) -> dict:
    """Accuracy of the RTL's and the golden model's outputs over the held-out images (the RTL's
    from complete outputs only)."""
    complete = len(r.out_values) >= held * per_image
    rtl = r.out_values[:held * per_image].reshape(held, -1)
    return {"held_out_images": held,
            "accuracy": float(np.mean(rtl.argmax(axis=1) == labels[:held])) if complete else None,
            "golden_accuracy": float(np.mean(streams.golden_output[:held].argmax(axis=1)
                                             == labels[:held]))}


def _stops(r, manifest: dict, plan: dict, beats: int) -> dict:
    """Why a run stopped early, if it did: a deadlock (the watchdog, diagnosed from the
    ``status`` port), the timeout, or an AXI4-Stream protocol violation."""
    deadlock = r.watchdog and (r.watchdog.get("message") or diagnose(
        r.watchdog["status"], manifest["status"]["links"], idle_cycles=r.watchdog["idle_cycles"],
        bound=plan["watchdog"]))
    return {"deadlock": deadlock,
            "timeout": (f"timeout after {plan['timeout']} cycles with {len(r.out_cycles)} of "
                        f"{beats} output beats" if r.timeout else None),
            "protocol_violation": r.violation and (f"{r.violation['message']} in cycle "
                                                   f"{r.violation['cycle']}")}


def _speed(run: _EngineRun, images: int) -> dict:
    """The build's and the simulation's times and speeds."""
    r = run.results
    return {"simulated_cycles": r.cycles, "build_seconds": round(run.build_seconds, 1),
            "cached": run.cached,
            "build_cpu_seconds": None if run.build_cpu_seconds is None
            else round(run.build_cpu_seconds, 1),
            "random_init": run.random_init, "build_profile": run.profile,
            "sim_seconds": round(r.wall_seconds, 2),
            "sim_cpu_seconds": None if r.cpu_seconds is None else round(r.cpu_seconds, 2),
            "cycles_per_second": round(r.cycles / r.wall_seconds) if r.wall_seconds else None,
            "images_per_second": round(images / r.wall_seconds, 1) if r.wall_seconds else None,
            "cycles_per_cpu_second": round(r.cycles / r.cpu_seconds) if r.cpu_seconds else None}

