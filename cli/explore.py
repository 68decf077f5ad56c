"""``imcflow explore SWEEP.toml -o DIR``: design-space exploration on Dask
(`imcflow.sw.explore.explore`; docs/explore.md)."""

from __future__ import annotations

from imcflow.cli.options import add_output
from imcflow.cli.output import add_json, emit
from imcflow.errors import UserError
from imcflow.sw.explore import explore

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    parser.add_argument("sweep", metavar="SWEEP.toml", help="the sweep (docs/explore.md)")
    add_output(parser, what="results directory: results.jsonl (as points finish), "
                            "results.csv, results.json, report.md, Pareto plots")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="a running Dask scheduler (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes of the local cluster (default: one per core)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep in DIR: only the points not in its results")
    add_json(parser)


def run(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: must be a positive integer, not {args.workers}")
    summary = explore(args.sweep, args.output, scheduler=args.scheduler, workers=args.workers,
                      resume=args.resume, force=args.force)
    emit(args, summary, _text)
    return 0


def _text(summary: dict) -> str:
    lines = [f"{summary['points']} points: {summary['completed']} completed, {summary['failed']} "
              f"failed ({summary['resumed']} from an earlier run); Pareto front of "
              f"{len(summary['pareto'])} over {', '.join(summary['objectives'])}",
             f"results: {summary['results']}; report: {summary['report']}"]
    lines += [f"verified {i}: {'passed' if ok else 'FAILED'}" for i, ok in summary["verified"].items()]
    return "\n".join(lines)
