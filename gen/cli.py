"""The ``imcflow gen`` command: write Verilog and a manifest.

Two forms:

- ``imcflow gen --network N [--arch A] [--core-budget B] [--buffer line|frame|auto]
  [--target sim|fpga] -o DIR``: the whole accelerator of a network
  (`imcflow.gen.project.generate`; docs/generator.md);
- ``imcflow gen <block> [options] -o DIR``: one standalone block (today: ``fifo``, with
  ``--width`` and ``--depth``), done by `imcflow.gen.blocks` (a new block is one entry in
  `~imcflow.gen.blocks.BLOCKS` plus its options here).

This module only parses and prints.
"""

from __future__ import annotations

from imcflow.errors import UserError
from imcflow.gen.blocks import BLOCKS, FIFO_DEPTHS, FIFO_WIDTHS

_ACCELERATOR_OPTIONS = ("arch", "core_budget", "buffer", "skip_depth_scale", "dataset", "target",
                        "taps")


def add_arguments(parser) -> None:
    from imcflow.sw.arch import BUFFER_STRATEGIES, PRESETS

    parser.add_argument("block", nargs="?", choices=sorted(BLOCKS),
                        help="standalone block to generate (omit it with --network)")
    parser.add_argument("--network", help="the accelerator of a network: a zoo name, a .toml or "
                                          "an .onnx file")
    parser.add_argument("--arch", help=f"network: preset ({', '.join(PRESETS)}) or a .toml file "
                                       f"(default: default)")
    parser.add_argument("--core-budget", metavar="N|Kx",
                        help="network: crossbars for replication, a number or K times the "
                             "unreplicated minimum (e.g. 2x)")
    parser.add_argument("--buffer", choices=BUFFER_STRATEGIES,
                        help="network: activation buffers (default: the arch's)")
    parser.add_argument("--dataset",
                        help="network: the images that calibrate it, a zoo data set (digits) or "
                             "a .npz/.npy file (default: a zoo network's own, else seeded random "
                             "images); `imcflow sim` then runs its held-out images")
    parser.add_argument("--target", choices=("sim", "fpga"),
                        help="network: the crossbar flavour, sim (the behavioral model of the "
                             "analog crossbar, fast in simulation) or fpga (the multiplier-free "
                             "MAC array, for synthesis); same ports and timing (default: sim)")
    parser.add_argument("--no-taps", dest="taps", action="store_const", const=False,
                        help="network: leave out the debug taps (every stage's output stream as "
                             "ports, with which `imcflow sim` checks every layer); sim then checks "
                             "the output only")
    parser.add_argument("--skip-depth-scale", type=float,
                        help="network: size every skip FIFO at this fraction of the mapper's "
                             "depth (below its minimum the pipeline deadlocks; for tests)")
    parser.add_argument("--width", type=int,
                        help=f"fifo: payload width in bits ({FIFO_WIDTHS.start}..{FIFO_WIDTHS.stop - 1})")
    parser.add_argument("--depth", type=int,
                        help=f"fifo: capacity in beats ({FIFO_DEPTHS.start}..{FIFO_DEPTHS.stop - 1})")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="output directory: a new one or one imcflow wrote (replaced as a "
                             "whole, only on success)")
    parser.add_argument("--force", action="store_true",
                        help="replace DIR even if imcflow did not write it (never ., a parent of it or home)")
    parser.add_argument("--json", action="store_true", help="print the manifest as one JSON object")


def run(args) -> int:
    from imcflow.files import check_output_directory

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
        from imcflow.cli import print_json

        print_json({**manifest, "directory": args.output})
    else:
        from imcflow.progress import shown

        print(f"wrote {shown(args.output)}/{manifest['verilog']} and {shown(args.output)}/manifest.json "
              f"(latency {manifest['latency']}, interval {manifest['interval']}; "
              f"lint: {manifest['lint']['command']})")
    return 0


def _accelerator(args) -> int:
    from imcflow.gen.project import generate
    from imcflow.progress import shown

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
        from imcflow.cli import print_json

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
