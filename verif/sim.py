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
stalled stage from the top's ``status`` port (`diagnose`). A failed run's waveform is recorded
(by a rerun with tracing, around the first failure, unless ``waves`` traced the whole run) and
its path reported. docs/generator.md describes the command and its figures.

`diagnose` is imported by the cocotb testbench: this module imports only the standard library
at load.
"""

from __future__ import annotations

import math
from pathlib import Path


__all__ = ["WATCHDOG_FACTOR", "ENGINES", "WAVE_WINDOW", "diagnose", "link_states", "test_images",
           "simulate", "passed", "failures", "add_arguments", "run"]

#: the watchdog trips after this many times the model's latency (or period) without an output
WATCHDOG_FACTOR = 4
#: the simulation engines: the compiled C++ harness (default) and the cocotb testbench
ENGINES = ("cpp", "cocotb")
#: cycles before the first failure that the waveform of a failed run holds
WAVE_WINDOW = 10_000

# --- the deadlock diagnosis ----------------------------------------------------------------------

def link_states(status: int, links: list[dict]) -> list[dict]:
    """Each link of the manifest's ``status.links`` with its four status bits decoded."""
    names = ("in_valid", "in_ready", "out_valid", "out_ready")
    return [{**link, **{name: bool(status >> (link["bit"] + k) & 1)
                        for k, name in enumerate(names)}} for link in links]


def diagnose(status: int, links: list[dict], *, idle_cycles: int, bound: int) -> str:
    """A one-paragraph deadlock report from the ``status`` port of a stuck accelerator.

    A FIFO is full when its input is not ready; a stage input is empty when its FIFO offers
    nothing. The stalled stage is one whose inputs disagree: one holds beats that it cannot use
    while another is empty (a join waiting for its main path while its skip FIFO is full is the
    classic case: the fork cannot pass the next pixel to the main path).
    """
    states = link_states(status, links)
    inputs: dict[str, list[dict]] = {}
    for s in states:
        inputs.setdefault(s["consumer"], []).append(s)

    def where(s):
        skip = f" (skip FIFO, {s['depth']} words)" if s["kind"] == "skip" else ""
        return f"{s['producer']!r}{skip}"

    parts = [f"deadlock: no output handshake for {idle_cycles} cycles (watchdog bound {bound})"]
    for consumer, ins in inputs.items():
        holding = [s for s in ins if s["out_valid"]]
        empty = [s for s in ins if not s["out_valid"]]
        if holding and empty:
            parts.append(
                f"stalled stage {consumer!r}: waits for its input from "
                f"{', '.join(where(s) for s in empty)} while its input from "
                f"{', '.join(where(s) for s in holding)} holds beats"
                + ("".join(f"; the skip FIFO from {s['producer']!r} is full, so "
                           f"{s['producer']!r} cannot pass the next beat on to the main path"
                           for s in holding if s["kind"] == "skip" and not s["in_ready"])))
    full = [f"{s['producer']}->{s['consumer']}" for s in states if not s["in_ready"]]
    starved = sorted({s["consumer"] for s in states if not s["out_valid"]})
    parts.append(f"full FIFOs: {', '.join(full) or 'none'}")
    parts.append(f"stages with an empty input: {', '.join(starved) or 'none'}")
    return "; ".join(parts)


# --- the run's inputs: images, options, the model ------------------------------------------------

def test_images(gen, count: int, seed: int = 0):
    """``(images, labels, held_out)``: ``count`` images for a generated accelerator.

    The held-out images of the data set that calibrated it (`imcflow.gen.project.held_out`),
    followed, when ``count`` exceeds them, by its training images (digits: 360 held out, 1,797
    in all), so a whole data set can stream through the RTL; ``held_out`` says how many of the
    images are held out (accuracy is measured on those). Without a data set: ``count`` seeded
    uniformly random 8-bit images (labels None).
    """
    import numpy as np

    from imcflow.errors import UserError
    from imcflow.gen.project import held_out
    from imcflow.sw.datasets import load_dataset

    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"images: must be a positive integer, not {count!r}")
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
    from imcflow.errors import UserError

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise UserError(f"{name}: must be a probability in [0, 1), not {value!r}")
    return float(value)


def _check_choice(name: str, value, allowed) -> None:
    from imcflow.errors import UserError

    if value not in allowed:
        raise UserError(f"{name}: must be one of {', '.join(allowed)}, not {value!r}")


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
    from imcflow.errors import UserError
    from imcflow.gen.project import with_skip_depths
    from imcflow.sw.perf import analyze, simulate as model
    from imcflow.verif.patterns import port_stalls

    try:
        schedule = model(gen.mapping, images)
    except UserError as e:
        mapper = with_skip_depths(gen.mapping, gen.manifest["options"]["mapper_skip_words"])
        reference = analyze(mapper)
        return None, str(e), (reference.latency_cycles, reference.cycles_per_image)
    reference = (schedule.latency, _period(schedule.done) or schedule.latency)
    cycles = math.ceil(2 * (schedule.done[-1] + 1) / ((1 - idle) * (1 - backpressure)))
    while idle or backpressure:  # masks longer than the run, so they cover every handshake
        input_stall, output_stall = port_stalls(seed, idle, backpressure, cycles)
        schedule = model(gen.mapping, images, input_stall=input_stall, output_stall=output_stall)
        if schedule.done[-1] < cycles:
            break
        cycles *= 2
    return schedule, None, reference


def _verilog(gen) -> str:
    """The directory's Verilog, after checking the directory against its ``config_hash`` (its
    Verilog, network and mapping as generated)."""
    from imcflow.errors import UserError
    from imcflow.gen.project import config_hash

    verilog = gen.verilog_path.read_text()
    if config_hash(gen.qnet, gen.mapping, verilog) != gen.manifest["config_hash"]:
        raise UserError(f"directory: {gen.verilog_path} is not the Verilog of the configuration "
                        f"in {gen.directory} (edited, or written by another imcflow); "
                        f"regenerate it")
    return verilog


# --- the engines ---------------------------------------------------------------------------------

def _wave_path(top: str) -> Path:
    from imcflow.verif import runner

    return runner.cache_dir("waves") / f"{runner.current_test_id(f'sim-{top}')}.vcd"


def _first_failure_cycle(r, figures: dict) -> int:
    """The earliest cycle at which the run went wrong (data, timing, protocol, deadlock)."""
    cycles = [r.cycles]
    m = figures["first_mismatch"]
    if m is not None:
        recorded = r.out_cycles if m["layer"] == "m_axis" else r.taps[m["layer"]][0]
        cycles.append(int(recorded[m["beat"]]) if m["beat"] < len(recorded) else r.cycles)
    for key in ("first_timing_mismatch", "first_handshake_mismatch"):
        if figures.get(key):
            cycles.append(min(figures[key]["expected"], figures[key]["actual"]))
    for event in (r.violation, r.watchdog):
        if event:
            cycles.append(event["cycle"])
    return min(cycles)


def _cpp(gen, verilog, pixels, plan: dict, *, waves: bool, full_waves: bool, progress: bool):
    """``(results, harness, waveform path or None, rerun)``: a run of the C++ engine, and a
    function that reruns it with tracing around a given cycle (returns the waveform's path)."""
    from imcflow.progress import note
    from imcflow.verif import engine

    ports = engine.Ports.from_manifest(gen.manifest)
    harness = engine.build(verilog, ports, waves=waves, full_waves=full_waves, progress=progress)
    shaped = pixels.reshape(len(pixels), -1, pixels.shape[-1])
    wave = _wave_path(gen.name)
    wave.unlink(missing_ok=True)
    trace = (wave, -2, 1 << 62) if harness.waves else None
    results = engine.run(harness, shaped, progress=progress, trace=trace, **plan)

    def rerun(cycle: int) -> Path:
        first, last = max(-2, cycle - WAVE_WINDOW), cycle + 100
        note("sim", f"rerunning with tracing for the waveform of cycles {first}..{last}")
        traced = engine.build(verilog, ports, waves=True, full_waves=full_waves,
                              progress=progress)
        engine.run(traced, shaped, progress=False, trace=(wave, first, last), **plan)
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
             full_waves: bool = False, progress: bool = True) -> dict:
    """Simulate the accelerator in ``directory`` on ``images`` images under Verilator.

    Parameters
    ----------
    directory : path
        Written by ``imcflow gen --network`` (`imcflow.gen.project.generate`).
    images : int
        Held-out images of the data set that calibrated it, then its training images
        (`test_images`), else seeded random 8-bit images.
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
    dict
        JSON-ready figures (docs/generator.md): ``images``, ``bit_exact`` (images exact at
        every tapped layer and the output), ``first_mismatch``, ``layer_mismatches``,
        ``accuracy``, latency and cycles per image next to the model's, their largest
        differences, ``deadlock``, ``protocol_violation``, ``waveform``, build and simulation
        times and speed.

    Raises
    ------
    UserError
        On a bad directory or option, or an edited directory.
    imcflow.verif.runner.BuildError, imcflow.verif.runner.SimulationError
        If the build fails or the simulator crashes.
    """
    import numpy as np

    from imcflow.errors import UserError
    from imcflow.gen.project import load
    from imcflow.verif import compare

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed: must be a non-negative integer, not {seed!r}")
    idle = _check_probability("idle", idle)
    backpressure = _check_probability("backpressure", backpressure)
    _check_choice("engine", engine, ENGINES)
    gen = load(directory)
    qnet, manifest = gen.qnet, gen.manifest
    pixels, labels, held = test_images(gen, images, seed)
    verilog = _verilog(gen)
    schedule, model_deadlock, (ref_latency, ref_period) = _model_timing(gen, images, seed, idle,
                                                                        backpressure)
    slowdown = 1 / ((1 - idle) * (1 - backpressure))
    bound = math.ceil(WATCHDOG_FACTOR * max(ref_latency, ref_period) * slowdown)
    per_image = qnet.output.shape.pixels
    plan = {"seed": seed, "idle": idle, "backpressure": backpressure, "watchdog": bound,
            "timeout": bound + math.ceil(4 * (ref_latency + images * ref_period) * slowdown),
            "out_beats": images * per_image}

    if engine == "cpp":
        r, harness, wave, rerun = _cpp(gen, verilog, pixels, plan, waves=waves,
                                       full_waves=full_waves, progress=progress)
        build_seconds, cached, build_cpu = harness.seconds, harness.cached, harness.cpu_seconds
        random_init = harness.random_init
    else:
        plan.pop("out_beats")
        from imcflow.verif import cocotb_engine

        r, build_seconds, wave, _ = cocotb_engine.run(gen, verilog, pixels, plan, waves=waves,
                                                      full_waves=full_waves, progress=progress)
        cached, rerun, build_cpu, random_init = None, None, None, None

    streams = compare.Streams(qnet, pixels, (r.out_values, r.out_last), r.taps)
    figures = {"directory": str(directory), "network": qnet.name, "top": gen.name,
               "config_hash": manifest["config_hash"], "arch_name": manifest.get("arch_name"),
               "arch": manifest.get("arch"), "target": manifest.get("target"), "engine": engine, "images": images,
               "seed": seed, "idle": idle, "backpressure": backpressure, **streams.figures()}
    if labels is not None:   # over the held-out images, from complete outputs only
        complete = len(r.out_values) >= held * per_image
        rtl = r.out_values[:held * per_image].reshape(held, -1)
        figures.update(held_out_images=held,
                       accuracy=float(np.mean(rtl.argmax(axis=1) == labels[:held]))
                       if complete else None,
                       golden_accuracy=float(np.mean(streams.golden_output[:held].argmax(axis=1)
                                                     == labels[:held])))
    deadlock = r.watchdog and (r.watchdog.get("message") or diagnose(
        r.watchdog["status"], manifest["status"]["links"], idle_cycles=r.watchdog["idle_cycles"],
        bound=bound))
    figures.update(
        deadlock=deadlock, model_deadlock=model_deadlock,
        timeout=(f"timeout after {plan['timeout']} cycles with {len(r.out_cycles)} of "
                 f"{images * per_image} output beats" if r.timeout else None),
        protocol_violation=r.violation and (f"{r.violation['message']} in cycle "
                                            f"{r.violation['cycle']}"))
    figures.update(_timing(r, images, per_image, schedule, qnet.arch.clock_mhz,
                           full_rate=idle == 0 and backpressure == 0))
    if schedule is not None:
        shapes = {name: (qnet[name].shape.h, qnet[name].shape.w, qnet[name].shape.c)
                  for name in r.taps}
        figures.update(compare.timing(schedule, images, r.out_cycles, per_image, r.taps, shapes))
    if not passed(figures) and rerun is not None and wave is None:
        wave = rerun(_first_failure_cycle(r, figures))
    figures.update(
        waveform=str(wave) if wave else None,
        activation_memory_bits=manifest["mapping"]["activation_memory_bits"],
        crossbars=manifest["mapping"]["crossbars"], clock_mhz=qnet.arch.clock_mhz,
        simulated_cycles=r.cycles, build_seconds=round(build_seconds, 1), cached=cached,
        build_cpu_seconds=None if build_cpu is None else round(build_cpu, 1),
        random_init=random_init,
        sim_seconds=round(r.wall_seconds, 2), sim_cpu_seconds=None if r.cpu_seconds is None else round(r.cpu_seconds, 2),
        cycles_per_second=round(r.cycles / r.wall_seconds) if r.wall_seconds else None,
        images_per_second=round(images / r.wall_seconds, 1) if r.wall_seconds else None,
        cycles_per_cpu_second=round(r.cycles / r.cpu_seconds) if r.cpu_seconds else None)
    return figures


def passed(figures: dict) -> bool:
    """Whether a simulation was bit-exact on every image at every checked layer, complete, free
    of deadlocks and protocol violations, and on the performance model's timing (every image's
    completion cycle and every tapped handshake the model's)."""
    return (figures["bit_exact"] == figures["images"] and not figures["deadlock"]
            and not figures["timeout"] and not figures.get("protocol_violation")
            and figures["extra_beats"] == 0 and not figures.get("extra_layer_beats")
            and figures.get("model_completion_error_cycles") == 0
            and figures.get("model_handshake_error_cycles") in (0, None)
            and not figures.get("first_handshake_mismatch"))


# --- the command ---------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("directory", metavar="DIR", help="written by `imcflow gen --network`")
    parser.add_argument("--images", type=int, default=10,
                        help="images streamed back to back: the held-out images of the data set "
                             "that calibrated DIR, then its training images (digits: 1797 in "
                             "all), else seeded random 8-bit images (default 10)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed (>= 0) of the random images and of idle/backpressure "
                             "(default 0)")
    parser.add_argument("--idle", type=float, default=0.0,
                        help="probability of an idle input cycle (default 0: full rate)")
    parser.add_argument("--backpressure", type=float, default=0.0,
                        help="probability of tready low on the output (default 0)")
    parser.add_argument("--engine", choices=ENGINES, default="cpp",
                        help="cpp: the compiled C++ harness, every layer checked (default); "
                             "cocotb: the cocotb testbench, the output checked")
    parser.add_argument("--waves", action="store_true",
                        help="record the whole run's waveform of the top's ports, taps and "
                             "status (default: only a failed run's, around its first failure)")
    parser.add_argument("--full-waves", action="store_true",
                        help="record every signal in the waveform instead")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def failures(figures: dict) -> list[str]:
    """The lines that say what went wrong in a run: its first mismatch, its first timing
    mismatches, its deadlock, a protocol violation and where its waveform is."""
    lines = []
    m = figures["first_mismatch"]
    if m:
        where = (f"layer {m['layer']!r}" if m["layer"] != "m_axis" else "the output (m_axis)")
        channel = "" if m["channel"] is None else f", channel {m['channel']}"
        lines.append(f"first mismatch: {where}, image {m['image']}, pixel (row {m['pixel'][0]}, "
                     f"col {m['pixel'][1]}){channel}: expected {m['expected']}, got "
                     f"{m['actual']}")
    if figures.get("first_timing_mismatch"):
        m = figures["first_timing_mismatch"]
        lines.append(f"first timing mismatch: image {m['image']} completes in cycle "
                     f"{m['actual']}, the performance model says {m['expected']} "
                     f"({m['difference']:+d} cycles)")
    if figures.get("first_handshake_mismatch"):
        m = figures["first_handshake_mismatch"]
        lines.append(f"first handshake off the model: layer {m['layer']!r}, image {m['image']}, "
                     f"pixel (row {m['pixel'][0]}, col {m['pixel'][1]}) in cycle {m['actual']}, "
                     f"the performance model says {m['expected']} ({m['difference']:+d} cycles)")
    for key in ("deadlock", "protocol_violation", "timeout"):
        if figures.get(key):
            lines.append(figures[key] if key == "deadlock" else f"{key.replace('_', ' ')}: "
                         f"{figures[key]}")
    if lines and figures.get("waveform"):
        lines.append(f"waveform: {figures['waveform']}")
    return lines


def _fmt(value, spec=""):
    return "n/a" if value is None else format(value, spec)


def run(args) -> int:
    figures = simulate(args.directory, args.images, seed=args.seed, idle=args.idle,
                       backpressure=args.backpressure, engine=args.engine, waves=args.waves,
                       full_waves=args.full_waves, progress=not args.json)
    if args.json:
        from imcflow.cli import print_json

        print_json(figures)
        return 0 if passed(figures) else 1
    f = figures
    layers = (f"every layer ({f['layers_checked']} stages) and the output" if f["layers_checked"]
              else "the output (no taps in this top)")
    print(f"arch: {f['arch_name']}; crossbars: {f['target']} flavour")
    print(f"{f['top']}: {f['bit_exact']} of {f['images']} images bit-exact at {layers}"
          + (f", accuracy {f['accuracy']:.3f}" if f.get("accuracy") is not None else ""))
    for line in failures(f):
        print(line)
    print(f"cycles per image {_fmt(f['cycles_per_image'], '.1f')} (model "
          f"{_fmt(f.get('model_cycles_per_image'), '.1f')}); latency {_fmt(f['latency_cycles'])} "
          f"cycles (model {_fmt(f.get('model_latency_cycles'))}); largest difference from the "
          f"model: {_fmt(f.get('model_completion_error_cycles'))} cycles per image completion, "
          f"{_fmt(f.get('model_handshake_error_cycles'))} per stage handshake")
    print(f"throughput {_fmt(f['throughput_ips'], ',.0f')} images/s at {f['clock_mhz']:g} MHz "
          f"(model {_fmt(f.get('model_throughput_ips'), ',.0f')}); {f['engine']} engine: "
          f"{_fmt(f['cycles_per_second'], ',')} simulated cycles/s "
          f"({_fmt(f['cycles_per_cpu_second'], ',')} per CPU second), build "
          f"{'cached' if f['cached'] else str(f['build_seconds']) + ' s'}")
    if f["waveform"] and not failures(f):
        print(f"waveform: {f['waveform']}")
    return 0 if passed(figures) else 1
