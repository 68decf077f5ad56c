"""``imcflow accuracy``: float and IMC accuracy on held-out images, with sweeps over the arch
(`imcflow.sw.accuracy.accuracy`)."""

from __future__ import annotations

from imcflow.cli.options import add_arch, add_dataset, add_network
from imcflow.cli.output import add_json, emit
from imcflow.errors import UserError
from imcflow.progress import note
from imcflow.sw.accuracy import ARITH_FIELDS, SWEEPS, accuracy
from imcflow.sw.arch import arch_label, load_arch

__all__ = ["add_arguments", "run"]


def _values(option: str, text: str) -> list:
    parse = SWEEPS[option][1]
    try:
        values = [parse(v.strip()) for v in text.split(",")]
    except ValueError:
        raise UserError(f"--{option.replace('_', '-')}: expected comma-separated "
                        f"{parse.__name__} values, not {text!r}") from None
    return values


def add_arguments(parser) -> None:
    add_network(parser, default="digits",
                what="zoo network with a data set, or a .toml or .onnx file with --dataset")
    add_dataset(parser, what="labelled images, 'images' and 'labels' in a .npz (README: "
                             "calibration data)", default="the zoo network's own")
    add_arch(parser)
    parser.add_argument("--adc-bits", help="sweep: comma-separated ADC resolutions, e.g. 4,6,8")
    parser.add_argument("--weight-bits", help="sweep: comma-separated weight precisions, e.g. 2,4,8")
    parser.add_argument("--weight-noise", help="sweep: comma-separated relative noise levels, e.g. 0,0.05")
    parser.add_argument("--encoding", help="sweep: comma-separated input encodings (pwm, bit_serial)")
    add_json(parser)


def _table(report: dict) -> str:
    rows = report.get("results") or [report]
    swept = list(rows[0]) if "results" in report else list(ARITH_FIELDS)
    cols = [f for f in swept if f != "imc_accuracy"] + ["imc_accuracy"]
    head = (f"network {report['network']}, arch {report['arch_name']}: {report['images']} "
            f"held-out images of {report['dataset']}, float accuracy {report['float_accuracy']:.4f}")
    common = [f"{f} {report[f]}" for f in ARITH_FIELDS if f in report and f not in cols]
    lines = [head] + ([", ".join(common)] if common else [])
    widths = [max(len(c), 8) for c in cols]
    lines.append("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        cells = [f"{r[c]:.4f}" if c == "imc_accuracy" else str(r[c]) for c in cols]
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    return "\n".join(lines)


def run(args) -> int:
    sweep = {option: _values(option, getattr(args, option))
             for option in SWEEPS if getattr(args, option) is not None}
    report = accuracy(args.network, load_arch(args.arch), sweep,
                      log=lambda message: note("accuracy", message), dataset=args.dataset)
    emit(args, {"arch_name": arch_label(args.arch), **report}, _table)
    return 0
