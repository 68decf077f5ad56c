"""The mapping report (what ``imcflow map`` shows and ``imcflow gen`` writes into ``report/``).

`summarize` gathers everything into one `Summary`: the `Mapping`, the `Performance` of the
chosen buffer strategy, the energy and area (`Cost`), the memory/latency trade-off of the line
and frame strategies (`BufferPoint`), and (with a core budget) the unreplicated pipeline it is
compared with (`Unreplicated`); `Summary.to_json` is ``mapping.json``. `write_report` writes
``mapping.json``, ``report.md`` and two plots (``stage_times.png``, ``memory_latency.png``) from
that JSON form. The command and its text table are `imcflow.cli.map`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from imcflow.sw.cost import COMPONENTS, Cost, estimate
from imcflow.sw.mapper import Mapping, map_network
from imcflow.sw.perf import Performance, analyze, simulate

__all__ = ["Summary", "BufferPoint", "Unreplicated", "summarize", "write_report", "si_bits"]

#: images of the event model run of the chosen mapping (the first gives the latency, the last
#: two the steady-state cycles per image)
IMAGES = 3


@dataclass(frozen=True)
class BufferPoint:
    """One buffer strategy's point of the memory/latency trade-off: its activation memory, its
    latency (event model), its throughput bound and the buffer bits of each layer that has one."""

    activation_memory_bits: int
    latency_cycles: int
    cycles_per_image_bound: int
    layer_bits: dict[str, int]


@dataclass(frozen=True)
class Unreplicated:
    """The pipeline without replication that a core budget's mapping is compared with: its
    crossbars, cycles per image (bound and event model), stage times, and the budget's speedups
    over it."""

    crossbars: int
    cycles_per_image_bound: int
    cycles_per_image: int
    stage_cycles: dict[str, int]
    speedup_bound: float
    speedup: float


@dataclass(frozen=True)
class Summary:
    """What `summarize` found: the mapping, its performance (event model over `IMAGES` images),
    energy and area, the buffer trade-off (``line`` and ``frame``) and, with a core budget, the
    unreplicated pipeline (else None). `to_json` is ``mapping.json``."""

    mapping: Mapping
    performance: Performance
    cost: Cost
    buffer_tradeoff: dict[str, BufferPoint]
    unreplicated: Unreplicated | None

    def to_json(self) -> dict:
        """`Mapping.to_json` with each layer's timing, energy and area, then the performance,
        the block latencies (``timing``), the energy and area totals, ``buffer_tradeoff`` and
        ``unreplicated`` (with a core budget)."""
        performance = self.performance
        summary = self.mapping.to_json()
        timings = {s.name: s for s in performance.stages}
        for layer in summary["layers"]:
            stage = timings.get(layer["name"])
            layer.update(fill_latency=stage.fill_latency if stage else 0,
                         first_output=stage.first_output if stage else None,
                         last_output=stage.last_output if stage else None)
        summary.update(
            cycles_per_image=performance.cycles_per_image,
            throughput_ips=performance.throughput_ips,
            latency_cycles=performance.latency_cycles,
            latency_us=performance.latency_us,
            latency_closed_form=performance.latency_closed_form,
            timing=asdict(self.mapping.timing),
        )
        for layer, layer_cost in zip(summary["layers"], self.cost.layers):
            layer.update(energy_j=layer_cost.energy_j, energy_breakdown_j=layer_cost.energy,
                         area_mm2=layer_cost.area_mm2)
        summary.update(self.cost.to_json())
        summary["buffer_tradeoff"] = {k: asdict(v) for k, v in self.buffer_tradeoff.items()}
        if self.unreplicated is not None:
            summary["unreplicated"] = asdict(self.unreplicated)
        return summary


def summarize(net, mapping: Mapping, *, cost=None) -> Summary:
    """Mapping, performance, energy and area (with the `~imcflow.sw.cost.CostModel` ``cost``,
    default its defaults), buffer trade-off and replication gain of ``mapping``, a mapping of
    ``net`` (`~imcflow.sw.mapper.map_network`; the caller's, so one generation maps once). The
    other buffer strategy of the trade-off and the unreplicated pipeline are mapped here."""
    arch, core_budget = mapping.arch, mapping.core_budget
    performance = analyze(mapping, IMAGES)
    energy = estimate(mapping, cost, cycles_per_image=performance.cycles_per_image)
    tradeoff = {}
    for strategy in ("line", "frame"):
        if strategy == arch.buffer:
            m, latency = mapping, performance.latency_cycles
        else:
            m = map_network(net, arch.replace(buffer=strategy), core_budget=core_budget,
                            timing=mapping.timing)
            latency = simulate(m).latency
        tradeoff[strategy] = BufferPoint(
            m.activation_memory_bits, latency, m.cycles_per_image,
            {l.name: l.buffer_bits for l in m.layers if l.buffer_bits})
    unreplicated = None
    if mapping.core_budget is not None:
        base = map_network(net, arch.replace(core_budget=None), timing=mapping.timing)
        base_perf = analyze(base, IMAGES)
        unreplicated = Unreplicated(
            crossbars=base.crossbars,
            cycles_per_image_bound=base.cycles_per_image,
            cycles_per_image=base_perf.cycles_per_image,
            stage_cycles={l.name: l.stage_cycles for l in base.stages},
            speedup_bound=base.cycles_per_image / mapping.cycles_per_image,
            speedup=base_perf.cycles_per_image / performance.cycles_per_image)
    return Summary(mapping, performance, energy, tradeoff, unreplicated)


def si_bits(bits: int) -> str:
    """``bits`` in Mbit, kbit or bit, as the reports print memory."""
    for unit, scale in (("Mbit", 1e6), ("kbit", 1e3)):
        if bits >= scale:
            return f"{bits / scale:.1f} {unit}"
    return f"{bits} bit"


def write_report(summary: dict, directory) -> None:
    """``mapping.json``, ``report.md``, ``stage_times.png`` and ``memory_latency.png`` of
    ``summary``, the JSON form of a `Summary` (`Summary.to_json`, with what the caller adds)."""
    directory = Path(directory)
    (directory / "mapping.json").write_text(json.dumps(summary, indent=1) + "\n")
    _plot_stage_times(summary, directory / "stage_times.png")
    _plot_memory_latency(summary, directory / "memory_latency.png")
    (directory / "report.md").write_text(_markdown(summary))


def _pyplot():
    """matplotlib's pyplot on the Agg backend. Imported here, not at the top, because only
    writing a report needs it and importing it costs about half a second (``imcflow map`` without
    ``-o`` and every caller of `summarize` skip it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _plot_stage_times(summary: dict, path: Path) -> None:
    plt = _pyplot()
    stages = [l for l in summary["layers"] if l["role"] not in ("fused", "source")]
    names = [l["name"] for l in stages]
    after = [l["stage_cycles"] for l in stages]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(names) + 2), 4.2))
    x = range(len(names))
    if "unreplicated" in summary:
        before = [summary["unreplicated"]["stage_cycles"][n] for n in names]
        ax.bar([i - 0.2 for i in x], before, 0.4, label="unreplicated", color="#bbbbbb")
        ax.bar([i + 0.2 for i in x], after, 0.4, label=f"budget {summary['core_budget']}",
               color="#1f77b4")
        ax.legend()
    else:
        ax.bar(list(x), after, 0.6, color="#1f77b4")
    ax.axhline(summary["cycles_per_image_bound"], color="#d62728", lw=0.8, ls="--")
    ax.set_xticks(list(x), names, rotation=90, fontsize=7)
    ax.set_ylabel("stage time (cycles per image)")
    ax.set_title(f"{summary['network']}: stage times")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_memory_latency(summary: dict, path: Path) -> None:
    plt = _pyplot()
    trade = summary["buffer_tradeoff"]
    names = list(trade["frame"]["layer_bits"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(9.0, 0.25 * len(names) + 5), 4.2),
                                      gridspec_kw={"width_ratios": [1, 2]})
    for strategy, point in trade.items():
        kbit = point["activation_memory_bits"] / 1e3
        left.scatter(kbit, point["latency_cycles"], s=40)
        left.annotate(f" {strategy}: {kbit:,.0f} kbit, {point['latency_cycles']:,} cycles",
                      (kbit, point["latency_cycles"]), fontsize=8)
    left.set_xscale("log")
    left.set_yscale("log")
    left.margins(0.4)
    left.set_xlabel("activation memory (kbit)")
    left.set_ylabel("latency (cycles)")
    left.set_title("memory vs latency")
    x = range(len(names))
    for offset, strategy in ((-0.2, "line"), (0.2, "frame")):
        bits = [trade[strategy]["layer_bits"].get(n, 0) / 1e3 for n in names]
        right.bar([i + offset for i in x], bits, 0.4, label=strategy)
    right.set_yscale("log")
    right.set_xticks(list(x), names, rotation=90, fontsize=7)
    right.set_ylabel("buffer (kbit)")
    right.set_title("window buffers and skip FIFOs per layer")
    right.legend()
    fig.suptitle(summary["network"])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(summary: dict) -> str:
    s, trade = summary, summary["buffer_tradeoff"]
    line, frame = trade["line"], trade["frame"]
    arch = s["arch"]
    out = [
        f"# Mapping of `{s['network']}`",
        "",
        f"Architecture: {arch['rows']}x{arch['cols']} crossbars, {arch['input_encoding']} input, "
        f"MVM every {arch['mvm_cycles']} cycles, {arch['clock_mhz']:g} MHz; "
        f"buffer strategy `{s['buffer']}`; core budget {s['core_budget']}.",
        "",
        "| | |", "|---|---|",
        f"| crossbars (cores) | {s['crossbars']} (minimum {s['min_crossbars']}) |",
        f"| cell utilization | {s['utilization']:.1%} |",
        f"| cycles per image | {s['cycles_per_image']} predicted (event model), "
        f"{s['cycles_per_image_bound']} bound (longest stage: {', '.join(s['bottleneck'])}) |",
        f"| throughput | {s['throughput_ips']:,.0f} images/s "
        f"(bound {s['throughput_bound_ips']:,.0f}) |",
        f"| latency | {s['latency_cycles']} cycles ({s['latency_us']:.2f} us) |",
        f"| activation memory | {si_bits(s['activation_memory_bits'])} |",
        f"| energy per image | {s['energy_per_image_j'] * 1e6:.4g} uJ ({s['images_per_j']:,.0f} "
        f"images/J, {s['tops_per_w']:.2f} TOPS/W, {s['power_w'] * 1e3:.4g} mW at this rate) |",
        f"| area | {s['area_mm2']:.3g} mm^2 |",
        "",
        "Energy per image by component (docs/cost-model.md): "
        + ", ".join(f"{c} {s['energy_breakdown_j'][c] * 1e9:.4g} nJ" for c in COMPONENTS) + ".",
        "",
        "## Memory versus latency",
        "",
        f"Line buffers need {si_bits(line['activation_memory_bits'])} of activation memory and give a "
        f"latency of {line['latency_cycles']} cycles; frame buffers need "
        f"{si_bits(frame['activation_memory_bits'])} ({frame['activation_memory_bits'] / line['activation_memory_bits']:.1f}x) "
        f"and give {frame['latency_cycles']} cycles "
        f"({frame['latency_cycles'] / line['latency_cycles']:.1f}x). The throughput bound is "
        f"{line['cycles_per_image_bound']} cycles per image with line buffers and "
        f"{frame['cycles_per_image_bound']} with frame buffers.",
        "",
        "![memory versus latency](memory_latency.png)",
        "",
        "## Stage times",
        "",
    ]
    if "unreplicated" in s:
        u = s["unreplicated"]
        copies = [l for l in s["layers"] if l["replication"] > 1]
        out += [
            f"The budget of {s['core_budget']} crossbars ({s['core_budget'] / s['min_crossbars']:.2f}x "
            f"the minimum of {s['min_crossbars']}) replicates the layers whose stage time exceeded the "
            f"smallest achievable longest stage time; each copy takes every r-th output pixel:",
            "",
            "| layer | copies | crossbars | stage cycles before | after |", "|---|---|---|---|---|",
        ]
        out += [f"| {l['name']} | {l['replication']} | {l['crossbars']} | "
                f"{u['stage_cycles'][l['name']]} | {l['stage_cycles']} |" for l in copies]
        out += [
            "",
            f"Cycles per image: {u['cycles_per_image']} unreplicated, {s['cycles_per_image']} "
            f"replicated: {u['speedup']:.2f}x the throughput (bound: {u['cycles_per_image_bound']} "
            f"to {s['cycles_per_image_bound']}, {u['speedup_bound']:.2f}x).",
            "",
        ]
    else:
        out += ["No core budget: every layer has one copy.", ""]
    out += ["![stage times](stage_times.png)", "", "## Layers", "",
            "| layer | kind | output | rows x cols | tiles | r | crossbars | util. | P | t | stage cycles "
            "| buffer | words | bits | first out | last out |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for l in s["layers"]:
        if l["role"] == "fused":
            continue
        xbar = l["role"] == "crossbar"
        out.append(
            f"| {l['name']} | {l['kind']} | {'x'.join(map(str, l['out_shape']))} | "
            + (f"{l['rows']} x {l['cols']} | {l['row_tiles']}x{l['col_tiles']} | {l['replication']} | "
               f"{l['crossbars']} | {l['utilization']:.0%} | " if xbar else "| | | | | ")
            + f"{l['output_pixels']} | {l['interval'] if xbar else ''} | {l['stage_cycles']} | "
            f"{l['buffer'] if l['buffer'] != 'none' else ''} | {l['buffer_words'] or ''} | "
            f"{l['buffer_bits'] or ''} | {l['first_output']} | {l['last_output']} |")
    joins = [l for l in s["layers"] if l["role"] == "join"]
    if joins:
        out += ["", "## Skip FIFOs", "",
                "| join | skip input | deadlock-free minimum | depth (with margin) |",
                "|---|---|---|---|"]
        out += [f"| {l['name']} | {l['skip_input']} | {l['skip_min_words']} | {l['buffer_words']} |"
                for l in joins]
    out += ["", "## Model", "",
            "Stage time: `max(ceil(P / r) * t, P_in, P_out)` for crossbar layers (t: MVM interval), "
            "input pixels for the others. The predicted cycles per image and latency come from the "
            "event model (docs/mapper.md) with these block latencies:", "",
            "| parameter | cycles |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in s["timing"].items()]
    return "\n".join(out) + "\n"
