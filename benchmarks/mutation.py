"""Mutation coverage of every block: `imcflow mutate` on each, and the table of the results.

    nice -n 15 .venv/bin/python benchmarks/mutation.py [--mutants 50] [--seed 1] [BLOCK ...]

For each block (default: all of `imcflow.verif.mutate.BLOCKS`) it draws ``--mutants`` Yosys
mutations with ``--seed``, runs the block's mutation regression and proofs on each mutant and
prints one row: mutants, killed, survived, proven equivalent, kill rate (killed / (mutants -
equivalent)) and the time taken (wall, and CPU of the process and the tools it ran), then every
survivor and every equivalent mutant with its mutated source line. The full
reports go to ``$IMCFLOW_CACHE/mutate/<block>.json``. A block whose campaign cannot run (e.g. no
mutation regression) is reported as such and the others go on. docs/verification.md lists the
measured table.
"""

from __future__ import annotations

import argparse
import json
import sys

from imcflow.errors import UserError
from imcflow.verif import mutate
from imcflow.verif.runner import cache_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("blocks", nargs="*", default=list(mutate.BLOCKS))
    parser.add_argument("--mutants", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rows, survivors = [], []
    total = {"mutants": 0, "killed": 0, "survived": 0, "equivalent": 0}
    for block in args.blocks:
        log = cache_dir("mutate") / f"{block}.log"
        log.unlink(missing_ok=True)
        try:
            with mutate.quiet(log):
                report = mutate.campaign(block, count=args.mutants, seed=args.seed)
        except UserError as e:
            rows.append(f"| {block} | {e} |")
            continue
        (cache_dir("mutate") / f"{block}.json").write_text(json.dumps(report, indent=1))
        rows.append(f"| {block} | {report['mutants']} | {report['killed']} | {report['survived']} "
                    f"| {report['equivalent']} | {100 * report['kill_rate']:.1f} % "
                    f"| {report['seconds']:.0f} s | {report['cpu_seconds']:.0f} s |")
        for key in total:
            total[key] += report[key]
        survivors += [f"{block} #{r['mutsel']} {r['status']}: {r['source']}"
                      for r in report["results"] if r["status"] != "killed"]
        print(rows[-1], file=sys.stderr, flush=True)
    print(f"mutation coverage, seed {args.seed}, {args.mutants} mutants per block\n")
    print("| block | mutants | killed | survived | equivalent | kill rate | wall | CPU |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    relevant = total["mutants"] - total["equivalent"]
    print(f"| all | {total['mutants']} | {total['killed']} | {total['survived']} "
          f"| {total['equivalent']} | {100 * total['killed'] / max(relevant, 1):.1f} % | | |")
    if survivors:
        print("\nnot killed:\n" + "\n".join(survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
