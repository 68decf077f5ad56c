"""``imcflow mutate BLOCK``: mutation coverage of a hardware block (`imcflow.verif.mutate`;
docs/verification.md, "Mutation coverage")."""

from __future__ import annotations

from imcflow.cli.output import add_json, emit
from imcflow.errors import UserError
from imcflow.verif.mutate import BLOCKS, campaign, progress, quiet
from imcflow.verif.runner import cache_dir

__all__ = ["add_arguments", "run", "text"]


def add_arguments(parser) -> None:
    parser.add_argument("block", help=f"the block to mutate: {', '.join(BLOCKS)}")
    parser.add_argument("--mutants", type=int, default=50, help="mutants to draw (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="Yosys' mutation seed (default 1)")
    add_json(parser)


def run(args) -> int:
    if args.block not in BLOCKS:
        raise UserError(f"block must be one of {', '.join(BLOCKS)}, not {args.block!r}")
    if not 1 <= args.mutants <= 4096:
        raise UserError(f"--mutants must be an integer in 1..4096, not {args.mutants}")
    if args.seed < 0:
        raise UserError(f"--seed must be a non-negative integer, not {args.seed}")
    log = cache_dir("mutate") / f"{args.block}.log"
    log.unlink(missing_ok=True)
    progress(f"the tools' output goes to {log}")
    with quiet(log):
        report = campaign(args.block, count=args.mutants, seed=args.seed)
    emit(args, report, text)
    return 0


def text(report: dict) -> str:
    """The report as text: the counts, then every survivor and every equivalent mutant with its
    mutated source line."""
    lines = [f"{report['block']}: {report['mutants']} mutants of {report['design']} "
             f"(seed {report['seed']}): {report['killed']} killed, {report['survived']} survived, "
             f"{report['equivalent']} equivalent; kill rate {100 * report['kill_rate']:.1f} % "
             f"({report['seconds']} s wall, {report['cpu_seconds']} s CPU)"]
    for status in ("survived", "equivalent"):
        lines += [f"  {status} #{r['mutsel']}: {r['source']}" for r in report["results"]
                  if r["status"] == status]
    return "\n".join(lines)
