"""``imcflow regress``: the block regressions with fresh seeds on Dask
(`imcflow.verif.regress.regress`; docs/verification.md)."""

from __future__ import annotations

from pathlib import Path

from imcflow.cli.output import add_json, emit
from imcflow.errors import UserError
from imcflow.verif.regress import KINDS, TESTS, regress

__all__ = ["add_arguments", "run"]


def add_arguments(parser) -> None:
    parser.add_argument("--block", nargs="+", default=None, metavar="NAME",
                        help="blocks whose regressions run (tests/test_<NAME>[_cocotb].py; "
                             "default: every block)")
    parser.add_argument("--seeds", type=int, default=10, metavar="N",
                        help="fresh seeds per block (default 10)")
    parser.add_argument("--first-seed", type=int, default=None, metavar="S",
                        help="use seeds S, S+1, ... instead of fresh random ones")
    parser.add_argument("--kind", choices=KINDS, default="all",
                        help="amaranth (simulator) tests, cocotb (Verilator) tests, or all")
    parser.add_argument("--tests", default=str(TESTS), metavar="DIR",
                        help="the test directory (default: the repository's tests/)")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="a running Dask scheduler (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes of the local cluster (default: one per core)")
    parser.add_argument("--timeout", type=float, default=1800, metavar="SECONDS",
                        help="per job (one block, one seed; default 1800)")
    add_json(parser)


def run(args) -> int:
    if args.seeds < 1:
        raise UserError(f"--seeds: must be a positive integer, not {args.seeds}")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: must be a positive integer, not {args.workers}")
    if not Path(args.tests).is_dir():
        raise UserError(f"--tests: {args.tests!r} is not a directory")
    summary = regress(args.block, args.seeds, first_seed=args.first_seed, kind=args.kind,
                      tests=Path(args.tests), scheduler=args.scheduler, workers=args.workers,
                      timeout=args.timeout, progress=not args.json)
    emit(args, summary, _text)
    return 0 if not summary["failures"] else 1


def _text(summary: dict) -> str:
    lines = [f"{summary['jobs']} jobs ({', '.join(summary['blocks'])} x {len(summary['seeds'])} "
             f"seeds): {summary['passed']} of {summary['tests']} seeded tests passed, "
             f"{summary['failed']} jobs failed"]
    for f in summary["failures"]:
        lines += [f"FAILED {f['nodeid']} (seed {f['seed']}): {f['message']}",
                  f"  replay: {f['replay']}"]
    return "\n".join(lines)
