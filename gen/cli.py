"""The ``imcflow gen`` command: write Verilog and a manifest.

``imcflow gen <block> [options] -o DIR`` generates one standalone block (today: ``fifo``, with
``--width`` and ``--depth``). The block name is an optional positional so that the
whole-accelerator form, ``imcflow gen --network N --arch A -o DIR`` without a block name, can sit
next to it. The work is done by `imcflow.gen.blocks` (a new block is one entry in
`~imcflow.gen.blocks.BLOCKS` plus its options here); this module only parses and prints.
"""

from __future__ import annotations

from imcflow.errors import UserError
from imcflow.gen.blocks import BLOCKS, FIFO_DEPTHS, FIFO_WIDTHS


def add_arguments(parser) -> None:
    parser.add_argument("block", nargs="?", choices=sorted(BLOCKS),
                        help="standalone block to generate")
    parser.add_argument("--width", type=int,
                        help=f"fifo: payload width in bits ({FIFO_WIDTHS.start}..{FIFO_WIDTHS.stop - 1})")
    parser.add_argument("--depth", type=int,
                        help=f"fifo: capacity in beats ({FIFO_DEPTHS.start}..{FIFO_DEPTHS.stop - 1})")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="output directory (replaced as a whole, only on success)")
    parser.add_argument("--json", action="store_true", help="print the manifest as one JSON object")


def run(args) -> int:
    if args.block is None:
        raise UserError(f"block: name the block to generate ({', '.join(BLOCKS)})")
    generate, options = BLOCKS[args.block]
    for option in options:
        if getattr(args, option) is None:
            raise UserError(f"--{option}: required by `imcflow gen {args.block}`")
    manifest = generate(args.output, **{option: getattr(args, option) for option in options})
    if args.json:
        from imcflow.cli import print_json

        print_json({**manifest, "directory": args.output})
    else:
        print(f"wrote {args.output}/{manifest['verilog']} and {args.output}/manifest.json "
              f"(latency {manifest['latency']}, interval {manifest['interval']}; "
              f"lint: {manifest['lint']['command']})")
    return 0
