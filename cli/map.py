"""``imcflow map``: map a network, print the per-layer table, write ``mapping.json`` and a report.

The figures are `imcflow.sw.report.summarize` of the network's mapping
(`imcflow.sw.mapper.map_network`); ``-o DIR`` writes them with `imcflow.sw.report.write_report`.
`table` is the text form (``imcflow demo`` prints it too).
"""

from __future__ import annotations

import sys

from imcflow.cli.options import add_arch, add_buffer, add_core_budget, add_network, add_output
from imcflow.cli.output import add_json, emit
from imcflow.files import atomic_directory, check_output_directory
from imcflow.progress import note, shown
from imcflow.sw.arch import arch_label, load_arch
from imcflow.sw.cost import load_cost
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_network
from imcflow.sw.report import si_bits, summarize, write_report

__all__ = ["add_arguments", "run", "table"]


def add_arguments(parser) -> None:
    add_network(parser, required=True)
    add_arch(parser)
    add_buffer(parser)
    add_core_budget(parser)
    parser.add_argument("--cost", default=None, metavar="FILE",
                        help="TOML file overriding cost-model energies and areas "
                             "(docs/cost-model.md)")
    add_output(parser, required=False, what="write mapping.json, report.md and the plots into DIR")
    add_json(parser, "print one JSON object, no table")


def run(args) -> int:
    if args.output is not None:
        check_output_directory(args.output, args.force)
    net = load_network(args.network)
    arch, cost = load_arch(args.arch, buffer=args.buffer), load_cost(args.cost)
    if sys.stderr.isatty():   # progress for a person; an error stays the only line in a log
        print(f"mapping {args.network} ...", file=sys.stderr)
    summary = summarize(net, map_network(net, arch, core_budget=args.core_budget), cost=cost)
    summary = {"arch_name": arch_label(args.arch, buffer=args.buffer), **summary.to_json()}
    if args.output is not None:
        with atomic_directory(args.output, force=args.force) as tmp:
            write_report(summary, tmp)
        note("map", f"wrote {shown(args.output)}/mapping.json, report.md and plots")
    emit(args, summary, table)
    return 0


def table(summary: dict) -> str:
    """The per-layer table and the totals, as text."""
    head = ("layer", "kind", "output", "rows x cols", "tiles", "r", "xbars", "P", "t", "stage cyc",
            "buffer", "words", "last out")
    rows = []
    for l in summary["layers"]:
        if l["role"] == "fused":
            continue
        rows.append((l["name"], l["kind"], "x".join(map(str, l["out_shape"])),
                     f"{l['rows']} x {l['cols']}" if l["rows"] else "",
                     f"{l['row_tiles']}x{l['col_tiles']}" if l["rows"] else "",
                     str(l["replication"]) if l["rows"] else "", str(l["crossbars"] or ""),
                     str(l["output_pixels"]), str(l["interval"]) if l["rows"] else "",
                     str(l["stage_cycles"]), l["buffer"] if l["buffer"] != "none" else "",
                     str(l["buffer_words"] or ""), str(l["last_output"])))
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    s = summary
    trade = s["buffer_tradeoff"]
    lines += [
        "",
        *([f"arch: {s['arch_name']}"] if "arch_name" in s else []),
        f"network {s['network']}: {s['crossbars']} crossbars (minimum {s['min_crossbars']}, "
        f"budget {s['core_budget']}), cell utilization {s['utilization']:.1%}",
        f"cycles per image: {s['cycles_per_image']} predicted, {s['cycles_per_image_bound']} bound "
        f"(bottleneck {', '.join(s['bottleneck'])}); {s['throughput_ips']:,.0f} images/s",
        f"latency: {s['latency_cycles']} cycles ({s['latency_us']:.2f} us) with {s['buffer']} buffers",
        f"energy: {s['energy_per_image_j'] * 1e6:.4g} uJ/image ({s['images_per_j']:,.0f} images/J, "
        f"{s['tops_per_w']:.2f} TOPS/W, {s['power_w'] * 1e3:.4g} mW); area {s['area_mm2']:.3g} mm^2",
        f"activation memory: {si_bits(s['activation_memory_bits'])} "
        f"(line {si_bits(trade['line']['activation_memory_bits'])}, latency "
        f"{trade['line']['latency_cycles']}; frame {si_bits(trade['frame']['activation_memory_bits'])}, "
        f"latency {trade['frame']['latency_cycles']})",
    ]
    if "unreplicated" in s:
        u = s["unreplicated"]
        lines.append(f"replication: {u['speedup']:.2f}x faster than unreplicated "
                     f"({u['cycles_per_image']} -> {s['cycles_per_image']} cycles per image; "
                     f"bound {u['speedup_bound']:.2f}x)")
    return "\n".join(lines)
