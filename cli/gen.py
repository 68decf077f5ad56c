"""The ``imcflow gen`` command: write Verilog and a manifest.

Two forms:

- ``imcflow gen --network N [--arch A] [--core-budget B] [--buffer line|frame|auto]
  [--target sim|fpga] -o DIR``: the whole accelerator of a network
  (`imcflow.gen.project.generate`; docs/generator.md);
- ``imcflow gen <block> [options] -o DIR``: one standalone block (today: ``fifo``, with
  ``--width`` and ``--depth``), done by `imcflow.gen.blocks` (a new block is one entry in
  `~imcflow.gen.blocks.BLOCKS` plus its options here).

This module only parses and prints. Without ``--arch`` the architecture is the target's preset
(`imcflow.gen.project.TARGET_ARCH`: ``default`` for sim, ``fpga`` for fpga).
"""

from __future__ import annotations

from imcflow.cli.options import (add_arch, add_buffer, add_core_budget, add_dataset, add_network,
                                 add_output)
from imcflow.cli.output import add_json, print_json
from imcflow.errors import UserError
from imcflow.files import check_output_directory
from imcflow.gen.blocks import BLOCKS, FIFO_DEPTHS, FIFO_WIDTHS
from imcflow.gen.project import generate
from imcflow.progress import shown

_ACCELERATOR_OPTIONS = ("arch", "core_budget", "buffer", "skip_depth_scale", "dataset", "target",
                        "taps")


def add_arguments(parser) -> None:
    parser.add_argument("block", nargs="?", choices=sorted(BLOCKS),
                        help="standalone block to generate (omit it with --network)")
    add_accelerator_options(parser)
    parser.add_argument("--target", choices=("sim", "fpga"),
                        help="network: the crossbar flavour, sim (the behavioral model of the "
                             "analog crossbar, fast in simulation) or fpga (the multiplier-free "
                             "MAC array, for synthesis); same ports and timing (default: sim)")
    parser.add_argument("--no-taps", dest="taps", action="store_const", const=False,
                        help="network: leave out the debug taps (every stage's output stream as "
                             "ports, with which `imcflow sim` checks every layer); sim then checks "
                             "the output only")
    parser.add_argument("--width", type=int,
                        help=f"fifo: payload width in bits ({FIFO_WIDTHS.start}..{FIFO_WIDTHS.stop - 1})")
    parser.add_argument("--depth", type=int,
                        help=f"fifo: capacity in beats ({FIFO_DEPTHS.start}..{FIFO_DEPTHS.stop - 1})")
    parser.add_argument("--skip-depth-scale", type=float,
                        help="network: size every skip FIFO at this fraction of the mapper's "
                             "depth (below its minimum the pipeline deadlocks; for tests)")
    add_output(parser)
    add_json(parser, "print the manifest as one JSON object")


def add_accelerator_options(parser, *, what: str = "network: ",
                            arch_default: str = "the target's preset, default for sim and fpga "
                                                "for fpga") -> None:
    """The options of a whole accelerator (`imcflow.gen.project.prepare`), which
    ``imcflow fpga build`` takes too when it generates first (``--network``)."""
    add_network(parser, what="the accelerator of a network")
    add_arch(parser, what=what, default=arch_default)
    add_core_budget(parser, what=what)
    add_buffer(parser, what=what)
    add_dataset(parser, what=f"{what}the images that calibrate it (`imcflow sim` and "
                             f"`imcflow fpga run` then run its held-out images)")


def run(args) -> int:
    check_output_directory(args.output, args.force)
    if args.block is None and args.network is None:
        raise UserError(f"block: name the block to generate ({', '.join(BLOCKS)}) or give "
                        f"--network for a whole accelerator")
    if args.block is None:
        return _accelerator(args)
    if args.network is not None:
        raise UserError(f"--network: generates a whole accelerator; leave out the block name "
                        f"{args.block!r}")
    for option in _ACCELERATOR_OPTIONS:
        if getattr(args, option) is not None:
            flag = "no-taps" if option == "taps" else option.replace("_", "-")
            raise UserError(f"--{flag}: only for --network")
    generate, options = BLOCKS[args.block]
    for option in options:
        if getattr(args, option) is None:
            raise UserError(f"--{option}: required by `imcflow gen {args.block}`")
    manifest = generate(args.output, force=args.force, **{option: getattr(args, option) for option in options})
    if args.json:
        print_json({**manifest, "directory": args.output})
    else:
        print(f"wrote {shown(args.output)}/{manifest['verilog']} and {shown(args.output)}/manifest.json "
              f"(latency {manifest['latency']}, interval {manifest['interval']}; "
              f"lint: {manifest['lint']['command']})")
    return 0


def _accelerator(args) -> int:
    for option in ("width", "depth"):
        if getattr(args, option) is not None:
            raise UserError(f"--{option}: only for `imcflow gen fifo`")
    scale = 1.0 if args.skip_depth_scale is None else args.skip_depth_scale
    gen = generate(args.output, args.network, args.arch, core_budget=args.core_budget,
                   buffer=args.buffer, skip_depth_scale=scale, progress=not args.json,
                   force=args.force, dataset=args.dataset, target=args.target or "sim",
                   taps=args.taps is None)
    manifest = gen.manifest
    if args.json:
        print_json({**manifest, "directory": args.output})
        return 0
    model, mapping, calib = manifest["model"], manifest["mapping"], manifest["calibration"]
    print(f"wrote {shown(args.output)}/: {manifest['verilog']} ({manifest['top']}, lint-clean), "
          f"manifest.json, {manifest['fusesoc']}, qnet.npz, weights/, report/")
    print(f"arch: {manifest['arch_name']}; crossbars: {manifest['target']} flavour")
    if calib["dataset"] is None:
        print(f"calibration: {calib['images']} seeded random images (no labelled data set: "
              f"`imcflow sim` checks bit-exactness but cannot measure accuracy; give --dataset)")
    else:
        print(f"calibration: {calib['dataset']} ({calib['images']} images; {calib['held_out']} "
              f"held out{', labelled' if calib['labels'] else ', unlabelled'})")
    print(f"{manifest['network']}: {mapping['crossbars']} crossbars, "
          f"{mapping['activation_memory_bits']} bits of activation memory, "
          f"{manifest['options']['buffer']} buffers; config {manifest['config_hash']}")
    if model["deadlock"]:
        print(f"model: {model['deadlock']}")
    else:
        print(f"model: {model['cycles_per_image']} cycles per image, latency "
              f"{model['latency_cycles']} cycles")
    return 0
