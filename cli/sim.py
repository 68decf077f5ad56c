"""``imcflow sim DIR``: a generated accelerator under Verilator against the golden and timing
models (`imcflow.verif.sim.simulate`; docs/generator.md). Exit status 1 unless the run passed
(`imcflow.verif.sim.SimResult.passed`)."""

from __future__ import annotations

from imcflow.cli.output import add_json, emit
from imcflow.verif.sim import ENGINES, SimResult, simulate

__all__ = ["add_arguments", "run", "text", "failures"]


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
    add_json(parser)


def failures(f: SimResult) -> list[str]:
    """The lines that say what went wrong in a run: its first mismatch, its first timing
    mismatches, its deadlock, a protocol violation and where its waveform is."""
    lines = []
    m = f.first_mismatch
    if m:
        where = (f"layer {m['layer']!r}" if m["layer"] != "m_axis" else "the output (m_axis)")
        channel = "" if m["channel"] is None else f", channel {m['channel']}"
        lines.append(f"first mismatch: {where}, image {m['image']}, pixel (row {m['pixel'][0]}, "
                     f"col {m['pixel'][1]}){channel}: expected {m['expected']}, got "
                     f"{m['actual']}")
    if f.first_timing_mismatch:
        m = f.first_timing_mismatch
        lines.append(f"first timing mismatch: image {m['image']} completes in cycle "
                     f"{m['actual']}, the performance model says {m['expected']} "
                     f"({m['difference']:+d} cycles)")
    if f.first_handshake_mismatch:
        m = f.first_handshake_mismatch
        lines.append(f"first handshake off the model: layer {m['layer']!r}, image {m['image']}, "
                     f"pixel (row {m['pixel'][0]}, col {m['pixel'][1]}) in cycle {m['actual']}, "
                     f"the performance model says {m['expected']} ({m['difference']:+d} cycles)")
    if f.deadlock:
        lines.append(f.deadlock)
    if f.protocol_violation:
        lines.append(f"protocol violation: {f.protocol_violation}")
    if f.timeout:
        lines.append(f"timeout: {f.timeout}")
    if lines and f.waveform:
        lines.append(f"waveform: {f.waveform}")
    return lines


def _fmt(value, spec=""):
    return "n/a" if value is None else format(value, spec)


def run(args) -> int:
    result = simulate(args.directory, args.images, seed=args.seed, idle=args.idle,
                      backpressure=args.backpressure, engine=args.engine, waves=args.waves,
                      full_waves=args.full_waves, progress=not args.json)
    emit(args, result, text, SimResult.to_json)
    return 0 if result.passed else 1


def text(f: SimResult) -> str:
    """The run in a few lines: bit-exactness and accuracy, what failed, timing next to the
    model's, throughput and engine speed."""
    layers = (f"every layer ({f.layers_checked} stages) and the output" if f.layers_checked
              else "the output (no taps in this top)")
    accuracy = f", accuracy {f.accuracy:.3f}" if f.accuracy is not None else ""
    build = "cached" if f.cached else f"{f.build_seconds} s"
    lines = [f"arch: {f.arch_name}; crossbars: {f.target} flavour",
             f"{f.top}: {f.bit_exact} of {f.images} images bit-exact at {layers}{accuracy}",
             *failures(f),
             f"cycles per image {_fmt(f.cycles_per_image, '.1f')} (model "
             f"{_fmt(f.model_cycles_per_image, '.1f')}); latency "
             f"{_fmt(f.latency_cycles)} cycles (model {_fmt(f.model_latency_cycles)}); "
             f"largest difference from the model: {_fmt(f.model_completion_error_cycles)} "
             f"cycles per image completion, {_fmt(f.model_handshake_error_cycles)} per "
             f"stage handshake",
             f"throughput {_fmt(f.throughput_ips, ',.0f')} images/s at {f.clock_mhz:g} MHz "
             f"(model {_fmt(f.model_throughput_ips, ',.0f')}); {f.engine} engine: "
             f"{_fmt(f.cycles_per_second, ',')} simulated cycles/s "
             f"({_fmt(f.cycles_per_cpu_second, ',')} per CPU second), build {build}"]
    if f.waveform and not failures(f):
        lines.append(f"waveform: {f.waveform}")
    return "\n".join(lines)
