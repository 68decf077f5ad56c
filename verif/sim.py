"""``imcflow sim DIR``: a generated accelerator under Verilator against the golden and timing
models.

`simulate` loads a directory written by ``imcflow gen --network`` (`imcflow.gen.project.load`),
builds its top with Verilator (`imcflow.verif.runner`, cached) after checking that the Verilog is
the directory's, streams images back to back through it with the cocotb testbench
`imcflow.verif.accelerator_tb`, and compares:

- every output beat with the golden model (`imcflow.sw.inference.run`): bit-exact images, the
  first mismatch (image, beat, expected, actual), missing or extra beats, ``last`` flags;
- the measured timing with the performance model (`imcflow.sw.perf.simulate` of the same mapping
  and image count): cycles per image in steady state, latency of the first image (first input
  handshake to its last output handshake), every image's completion cycle, throughput at the
  arch's clock;
- with labels (the digits data set), the accuracy of the RTL's outputs.

A watchdog stops a run in which no output handshake happens for `WATCHDOG_FACTOR` times the
model's latency (or image period, if longer) and names the stalled stage from the top's
``status`` port (`diagnose`). docs/generator.md describes the command and its figures.

`diagnose` is imported by the testbench: this module imports only the standard library at load.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["WATCHDOG_FACTOR", "BUILD_FLAGS", "FULL_WAVES_FLAGS", "diagnose", "link_states",
           "test_images", "simulate", "passed", "add_arguments", "run"]

#: the watchdog trips after this many times the model's latency (or period) without an output
WATCHDOG_FACTOR = 4
#: Verilator flags of accelerator builds. cocotb's runner makes every signal public
#: (``--public-flat-rw``), which for a whole accelerator means C++ for tens of thousands of VPI
#: handles; the testbench needs only the top's ports, so only they stay public. An -O1 C++ build
#: compiles faster than the default -Os. Waveforms hold the top's ports and status only.
BUILD_FLAGS = ("--no-public-flat-rw", "--public-depth", "1", "-CFLAGS", "-O1", "--trace-depth", "1")
#: the same with waveforms of every signal (``imcflow sim --full-waves``)
FULL_WAVES_FLAGS = BUILD_FLAGS[:-2]

_TB = Path(__file__).with_name("accelerator_tb.py")


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


# --- images and figures --------------------------------------------------------------------------

def test_images(qnet, count: int, seed: int = 0):
    """``(images, labels)``: the first ``count`` held-out images of a zoo network's data set (labels
    an array), or ``count`` seeded uniformly random 8-bit images (labels None)."""
    import numpy as np

    from imcflow.errors import UserError
    from imcflow.sw import zoo

    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"images: must be a positive integer, not {count!r}")
    shape = qnet.network.shapes[qnet.input.name]
    data = zoo.dataset(qnet.name) if qnet.name in zoo.names() else None
    if data is not None and data.test_images.shape[1:] == (shape.h, shape.w, shape.c):
        if count > len(data.test_images):
            raise UserError(f"images: the {qnet.name} test set has {len(data.test_images)} "
                            f"images, not {count}")
        return data.test_images[:count], data.test_labels[:count]
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, shape.h, shape.w, shape.c), dtype=np.int64), None


def _compare(outputs, lasts, golden) -> dict:
    """Bit-exactness of the output beats against the golden ``(images, beats, lanes)`` array."""
    import numpy as np

    images, beats, _ = golden.shape
    got = len(outputs)
    exact, first = 0, None
    for n in range(images):
        block = outputs[n * beats:(n + 1) * beats]
        flags = lasts[n * beats:(n + 1) * beats]
        want_flags = [k == beats - 1 for k in range(beats)]
        ok = (len(block) == beats and np.array_equal(np.array(block), golden[n])
              and flags == want_flags)
        exact += ok
        if not ok and first is None:
            k = next((k for k in range(len(block)) if list(block[k]) != golden[n][k].tolist()
                      or flags[k] != want_flags[k]), len(block))
            first = {"image": n, "beat": k,
                     "expected": golden[n][k].tolist() if k < beats else None,
                     "actual": list(block[k]) if k < len(block) else None,
                     "last_expected": bool(k == beats - 1) if k < beats else None,
                     "last_actual": bool(flags[k]) if k < len(flags) else None}
    return {"bit_exact": exact, "mismatched_images": images - exact, "first_mismatch": first,
            "missing_beats": max(images * beats - got, 0),
            "extra_beats": max(got - images * beats, 0)}


def _period(done) -> float | None:
    """Steady-state cycles per image from each image's completion cycle: the mean spacing."""
    return None if len(done) < 2 else (done[-1] - done[0]) / (len(done) - 1)


def _ratio(a, b):
    return None if a is None or not b else a / b


# --- running -------------------------------------------------------------------------------------

@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool):
    """Send file descriptor 1 (the simulator's and cocotb's output) to stderr, so ``--json``
    prints exactly one object on stdout."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _timer_bar(desc: str, enabled: bool):
    """A tqdm line on stderr showing the elapsed time of a step of unknown length."""
    from tqdm import tqdm

    bar = tqdm(total=None, desc=desc, file=sys.stderr, disable=not enabled,
               bar_format="{desc} [{elapsed}]")
    stop = threading.Event()

    def tick():
        while not stop.wait(1.0):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


@contextlib.contextmanager
def _environment(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_probability(name: str, value) -> float:
    from imcflow.errors import UserError

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise UserError(f"{name}: must be a probability in [0, 1), not {value!r}")
    return float(value)


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


def _build(gen, *, full_waves: bool, progress: bool, quiet_stdout: bool):
    """``(build, seconds)``: the directory's top under Verilator, after checking that the
    directory is consistent (nothing edited) and that its Verilog is what its configuration
    elaborates to, so the simulated design is the generated one."""
    from imcflow.errors import UserError
    from imcflow.gen.project import config_hash
    from imcflow.verif import runner

    verilog = gen.verilog_path.read_text()
    stale = UserError(f"directory: {gen.verilog_path} is not the Verilog of the configuration in "
                      f"{gen.directory} (edited, or written by another imcflow); regenerate it")
    if config_hash(gen.qnet, gen.mapping, verilog) != gen.manifest["config_hash"]:
        raise stale
    start = time.monotonic()
    with _timer_bar(f"Verilator build of {gen.name}", progress), _stdout_to_stderr(quiet_stdout):
        build = runner.build(gen.top, name=gen.name,
                             flags=FULL_WAVES_FLAGS if full_waves else BUILD_FLAGS)
    if build.verilog.read_text() != verilog:
        raise stale
    return build, time.monotonic() - start


def _run(build, gen, pixels, parameters: dict, quiet_stdout: bool):
    """``(results, failure, seconds)``: the testbench's results file (`accelerator_tb`) and the
    `SimulationError` of a failed run (a deadlock or timeout; a crash without results raises)."""
    import numpy as np

    from imcflow.verif import runner

    top = gen.top
    with tempfile.TemporaryDirectory(prefix="imcflow-sim-") as tmp:
        data, results = Path(tmp) / "images.npz", Path(tmp) / "results.json"
        np.savez(data, pixels=pixels.reshape(len(pixels), -1, pixels.shape[-1]).astype(np.uint8))
        parameters = {**parameters, "data": str(data), "results": str(results),
                      "in_lanes": top.in_layout.lanes, "out_lanes": top.out_layout.lanes,
                      "out_signed": top.out_layout.signed,
                      "out_beats": gen.qnet.output.shape.pixels,
                      "links": gen.manifest["status"]["links"]}
        failure = None
        start = time.monotonic()
        with _stdout_to_stderr(quiet_stdout), \
                _environment(COCOTB_LOG_LEVEL="WARNING", GPI_LOG_LEVEL="WARNING"):
            try:
                runner.run(build, _TB, parameters=parameters,
                           test_id=runner.current_test_id(f"sim-{gen.name}"))
            except runner.SimulationError as e:
                failure = e
        seconds = time.monotonic() - start
        if not results.exists():
            raise failure
        return json.loads(results.read_text()), failure, seconds


def _timing(r, images: int, beats: int, schedule, clock_mhz: float, full_rate: bool) -> dict:
    """Measured latency, period and throughput, next to the model's ``schedule`` (or None), and
    each image's completion cycle (from reset release) against the model's: the largest error
    and the first image that differs."""
    first_in = (r["in_cycles"] or [0])[0]
    done = r["out_cycles"][beats - 1::beats][:images]
    period = _period(done) if len(done) == images else None
    latency = done[0] - first_in if done else None
    f = {"latency_cycles": latency, "cycles_per_image": period,
         "throughput_ips": clock_mhz * 1e6 / period if period else None,
         "latency_us": latency / clock_mhz if done else None}
    if schedule is not None:
        model_done = schedule.done.tolist()
        model_period = _period(model_done)
        errors = [a - b for a, b in zip(done, model_done)]
        first = next((n for n, e in enumerate(errors) if e), None)
        f.update(model_latency_cycles=schedule.latency, model_cycles_per_image=model_period,
                 model_throughput_ips=clock_mhz * 1e6 / model_period if model_period else None,
                 model_completion_error_cycles=(max(map(abs, errors))
                                                if len(done) == images else None),
                 first_timing_mismatch=first if first is None else {
                     "image": first, "expected": model_done[first], "actual": done[first],
                     "difference": errors[first]})
        if full_rate:
            f.update(cycles_per_image_ratio=_ratio(period, model_period),
                     latency_ratio=_ratio(f["latency_cycles"], schedule.latency))
    return f


def simulate(directory, images: int, *, seed: int = 0, idle: float = 0.0,
             backpressure: float = 0.0, full_waves: bool = False, progress: bool = True,
             quiet_stdout: bool = False) -> dict:
    """Simulate the accelerator in ``directory`` on ``images`` images under Verilator.

    Parameters
    ----------
    directory : path
        Written by ``imcflow gen --network`` (`imcflow.gen.project.generate`).
    images : int
        Held-out images of the network's data set (digits), else seeded random 8-bit images.
    seed : int
        Seed of the random images and of the idle and backpressure patterns.
    idle, backpressure : float
        Probability of an idle cycle on the input and of ``tready`` low on the output (0: full
        rate, the setting the timing comparison is meaningful for).
    full_waves : bool
        Record every signal in the waveform (kept on failure), not only the top's ports.
    progress : bool
        Progress bars on stderr.
    quiet_stdout : bool
        Send the simulator's output to stderr (for ``--json``).

    Returns
    -------
    dict
        JSON-ready figures (docs/generator.md): ``images``, ``bit_exact``, ``first_mismatch``,
        ``accuracy``, ``cycles_per_image``, ``model_cycles_per_image``, ``latency_cycles``,
        ``model_latency_cycles``, their ratios, throughput, ``deadlock``, build and simulation
        times and speed.

    Raises
    ------
    UserError
        On a bad directory or option, or a directory whose Verilog is not what its configuration
        generates.
    imcflow.verif.runner.SimulationError
        If the simulator crashes.
    """
    import numpy as np

    from imcflow.gen.project import load
    from imcflow.sw.inference import run as golden_run

    idle = _check_probability("idle", idle)
    backpressure = _check_probability("backpressure", backpressure)
    gen = load(directory)
    qnet, manifest = gen.qnet, gen.manifest
    pixels, labels = test_images(qnet, images, seed)
    out_shape = qnet.output.shape
    golden = golden_run(qnet, pixels).reshape(images, out_shape.pixels, out_shape.c)
    schedule, model_deadlock, (ref_latency, ref_period) = _model_timing(gen, images, seed, idle,
                                                                        backpressure)
    slowdown = 1 / ((1 - idle) * (1 - backpressure))
    bound = math.ceil(WATCHDOG_FACTOR * max(ref_latency, ref_period) * slowdown)

    build, build_seconds = _build(gen, full_waves=full_waves, progress=progress,
                                  quiet_stdout=quiet_stdout)
    r, failure, sim_seconds = _run(build, gen, pixels, {
        "watchdog": bound,
        "timeout": bound + math.ceil(4 * (ref_latency + images * ref_period) * slowdown),
        "seed": seed, "idle": idle, "backpressure": backpressure, "progress": progress},
        quiet_stdout)

    figures = {"directory": str(directory), "network": qnet.name, "top": gen.name,
               "config_hash": manifest["config_hash"], "images": images, "seed": seed,
               "idle": idle, "backpressure": backpressure,
               **_compare(r["outputs"], r["last"], golden)}
    if labels is not None:
        rtl = np.array(r["outputs"][:images * out_shape.pixels]).reshape(-1, out_shape.c)
        figures["accuracy"] = (float(np.mean(rtl.reshape(images, -1).argmax(axis=1) == labels))
                               if len(rtl) == images * out_shape.pixels else None)
        figures["golden_accuracy"] = float(np.mean(golden.reshape(images, -1).argmax(axis=1)
                                                   == labels))
    figures.update(deadlock=r["deadlock"] and r["deadlock"]["message"],
                   model_deadlock=model_deadlock, timeout=r["timeout"])
    if failure is not None and "waveform: " in str(failure):
        figures["waveform"] = str(failure).split("waveform: ")[1].splitlines()[0]
    figures.update(_timing(r, images, out_shape.pixels, schedule, qnet.arch.clock_mhz,
                           full_rate=idle == 0 and backpressure == 0))
    figures.update(
        activation_memory_bits=manifest["mapping"]["activation_memory_bits"],
        crossbars=manifest["mapping"]["crossbars"], clock_mhz=qnet.arch.clock_mhz,
        simulated_cycles=r["cycles"], build_seconds=round(build_seconds, 1),
        sim_seconds=round(sim_seconds, 1),
        sim_cycles_per_second=round(r["cycles"] / r["wall_seconds"]),
        sim_images_per_second=round(images / r["wall_seconds"], 2))
    return figures


def passed(figures: dict) -> bool:
    """Whether a simulation was bit-exact on every image, complete, free of deadlocks and on the
    performance model's timing (every image's completion cycle the model's)."""
    return (figures["bit_exact"] == figures["images"] and not figures["deadlock"]
            and not figures["timeout"] and figures["extra_beats"] == 0
            and figures.get("model_completion_error_cycles") == 0)


# --- the command ---------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("directory", metavar="DIR", help="written by `imcflow gen --network`")
    parser.add_argument("--images", type=int, default=10,
                        help="images streamed back to back (held-out digits for digits, seeded "
                             "random 8-bit images otherwise; default 10)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random images and of idle/backpressure (default 0)")
    parser.add_argument("--idle", type=float, default=0.0,
                        help="probability of an idle input cycle (default 0: full rate)")
    parser.add_argument("--backpressure", type=float, default=0.0,
                        help="probability of tready low on the output (default 0)")
    parser.add_argument("--full-waves", action="store_true",
                        help="record every signal in the waveform kept on failure (default: "
                             "the top's ports and status)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def failures(figures: dict) -> list[str]:
    """The lines that say what went wrong in a run: its first mismatch, its first timing mismatch
    and its deadlock."""
    lines = []
    if figures["first_mismatch"]:
        m = figures["first_mismatch"]
        lines.append(f"first mismatch: image {m['image']}, beat {m['beat']}: expected "
                     f"{m['expected']}, got {m['actual']}")
    if figures.get("first_timing_mismatch"):
        m = figures["first_timing_mismatch"]
        lines.append(f"first timing mismatch: image {m['image']} completes in cycle "
                     f"{m['actual']}, the performance model says {m['expected']} "
                     f"({m['difference']:+d} cycles)")
    if figures["deadlock"]:
        lines.append(figures["deadlock"])
    return lines


def _fmt(value, spec=""):
    return "n/a" if value is None else format(value, spec)


def run(args) -> int:
    figures = simulate(args.directory, args.images, seed=args.seed, idle=args.idle,
                       backpressure=args.backpressure, full_waves=args.full_waves,
                       progress=not args.json, quiet_stdout=args.json)
    if args.json:
        from imcflow.cli import print_json

        print_json(figures)
        return 0 if passed(figures) else 1
    f = figures
    print(f"{f['top']}: {f['bit_exact']} of {f['images']} images bit-exact"
          + (f", accuracy {f['accuracy']:.3f}" if f.get("accuracy") is not None else ""))
    for line in failures(f):
        print(line)
    print(f"cycles per image {_fmt(f['cycles_per_image'], '.1f')} (model "
          f"{_fmt(f.get('model_cycles_per_image'), '.1f')}, ratio "
          f"{_fmt(f.get('cycles_per_image_ratio'), '.4f')}); latency {_fmt(f['latency_cycles'])} "
          f"cycles (model {_fmt(f.get('model_latency_cycles'))}, ratio "
          f"{_fmt(f.get('latency_ratio'), '.4f')})")
    print(f"throughput {_fmt(f['throughput_ips'], ',.0f')} images/s at {f['clock_mhz']:g} MHz "
          f"(model {_fmt(f.get('model_throughput_ips'), ',.0f')}); simulation "
          f"{f['sim_cycles_per_second']} cycles/s, build {f['build_seconds']} s")
    return 0 if passed(figures) else 1
