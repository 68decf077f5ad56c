"""``imcflow accuracy``: float and IMC accuracy on held-out images, with sweeps over the arch
(`imcflow.sw.accuracy.accuracy`)."""

from __future__ import annotations

from imcflow.cli.options import add_arch, add_dataset, add_network
from imcflow.cli.output import add_json, emit
from imcflow.errors import UserError
from imcflow.progress import note
from imcflow.sw.accuracy import SWEEPS, AccuracyReport, accuracy
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


def _table(report: AccuracyReport, arch_name: str) -> str:
    if report.results is None:   # one row: every arithmetic field
        rows, common = [(report.fixed, report.imc_accuracy)], {}
    else:                        # one row per setting; the fields no option sweeps above
        rows, common = [(r.fields, r.imc_accuracy) for r in report.results], report.fixed
    cols = [*rows[0][0], "imc_accuracy"]
    head = (f"network {report.network}, arch {arch_name}: {report.images} held-out images of "
            f"{report.dataset}, float accuracy {report.float_accuracy:.4f}")
    lines = [head] + ([", ".join(f"{f} {v}" for f, v in common.items())] if common else [])
    widths = [max(len(c), 8) for c in cols]
    lines.append("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for fields, imc_accuracy in rows:
        cells = [*map(str, fields.values()), f"{imc_accuracy:.4f}"]
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    return "\n".join(lines)


def run(args) -> int:
    sweep = {option: _values(option, getattr(args, option))
             for option in SWEEPS if getattr(args, option) is not None}
    report = accuracy(args.network, load_arch(args.arch), sweep,
                      log=lambda message: note("accuracy", message), dataset=args.dataset)
    arch_name = arch_label(args.arch)
    emit(args, report, lambda r: _table(r, arch_name),
         lambda r: {"arch_name": arch_name, **r.to_json()})
    return 0
