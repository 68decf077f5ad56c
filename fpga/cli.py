"""The ``imcflow fpga`` command: ``build`` a bitstream and its report, ``run`` images on a board.

``imcflow fpga build --board ulx3s-85f --network digits -o DIR [--arch A] [--json]`` generates
the accelerator for the quantized network (`imcflow.fpga.design`), puts it on the board behind
the UART host link (`imcflow.fpga.top.BoardTop`) and runs Yosys, nextpnr and the packer
(`imcflow.fpga.build`), showing each tool's progress on stderr. ``DIR`` receives the bitstream,
``report.md`` and ``report.json``.

``imcflow fpga run --port PORT --images K [--network digits] [--baud B] [--json]`` streams the
first ``K`` held-out images to the board (`imcflow.fpga.host`) and checks its logits against
the golden model: bit-exact count, accuracy and throughput.
"""

from __future__ import annotations

from imcflow.errors import UserError

__all__ = ["add_arguments", "run", "build", "run_board"]


def _log(message: str) -> None:
    from imcflow.progress import note
    note("fpga", message)


def add_arguments(parser) -> None:
    from imcflow.fpga.boards import BOARDS
    from imcflow.fpga.design import DEFAULT_ARCH
    from imcflow.fpga.top import BAUD
    from imcflow.fpga.uart import BAUDS

    actions = parser.add_subparsers(dest="action", required=True, metavar="{build,run}")
    b = actions.add_parser("build", help="bitstream and utilisation/timing report for a board",
                           description="Synthesize, place and route the accelerator of a network "
                                       "with its UART host link for a board (pip-only yowasp tools).")
    b.add_argument("--board", default="ulx3s-85f",
                   help=f"target board: {', '.join(BOARDS)} (default: ulx3s-85f)")
    b.add_argument("--network", default="digits", help="zoo network, .toml or .onnx (default: digits)")
    b.add_argument("--dataset", default=None,
                   help="zoo network whose training images calibrate a .toml or .onnx network")
    b.add_argument("--arch", default=None, help=f"architecture preset or TOML (default: {DEFAULT_ARCH})")
    b.add_argument("--clock-mhz", type=float, default=None,
                   help="system clock on a board with a PLL (default: the arch's clock_mhz)")
    b.add_argument("--baud", type=int, default=None,
                   help=f"UART baud rate (default: {BAUD} if the system clock makes it within "
                        f"2 %%, else the fastest of {', '.join(map(str, BAUDS[1:]))} that it does)")
    b.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory: a new one or one imcflow wrote (replaced as a "
                        "whole, only on success)")
    b.add_argument("--force", action="store_true",
                   help="replace DIR even if imcflow did not write it (never ., a parent of it or home)")
    b.add_argument("--skip-fit-check", action="store_true",
                   help="synthesize even if the resource estimate says the design cannot fit")
    b.add_argument("--json", action="store_true", help="print the report as one JSON object")

    r = actions.add_parser("run", help="stream held-out images to a board and check its logits",
                           description="Send images to a board over its serial port and compare "
                                       "the logits with the golden model.")
    r.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB0")
    r.add_argument("--images", type=int, required=True, metavar="K", help="held-out images to send")
    r.add_argument("--network", default="digits", help="the network the bitstream was built for")
    r.add_argument("--dataset", default=None, help="zoo network whose images to send (for a file)")
    r.add_argument("--arch", default=None, help=f"the architecture it was built for (default: {DEFAULT_ARCH})")
    r.add_argument("--baud", type=int, default=BAUD,
                   help=f"UART baud rate: the build report's baud (default: {BAUD})")
    r.add_argument("--timeout", type=float, default=2.0,
                   help="seconds to wait for an answer before sending an image again (default: 2)")
    r.add_argument("--json", action="store_true", help="print one JSON object")


def build(args) -> dict:
    """``imcflow fpga build``: the report of `imcflow.fpga.build.build_board`."""
    from imcflow.files import check_output_directory
    from imcflow.fpga.boards import board as find_board
    from imcflow.fpga.build import FlowError, build_board
    from imcflow.fpga.design import DEFAULT_ARCH, accelerator_for, load_design
    from imcflow.fpga.resources import estimate, memories, memory_plan, yosys_script
    from imcflow.sw.arch import arch_label
    from imcflow.sw.mapper import map_network
    from imcflow.fpga.top import BoardTop
    from imcflow.fpga.uart import divisor_for, fastest_baud

    check_output_directory(args.output, args.force)
    target = find_board(args.board)
    if args.baud is not None and args.baud < 1:
        raise UserError(f"--baud: must be a positive integer, not {args.baud}")
    design = load_design(args.network, args.arch, args.dataset)
    arch = design.qnet.arch
    clock_mhz = args.clock_mhz or arch.clock_mhz
    clock_hz = target.clock_hz(clock_mhz)
    try:
        baud = fastest_baud(clock_hz) if args.baud is None else args.baud
        divisor_for(clock_hz, baud)
    except ValueError as e:   # the baud rate cannot be made from the clock
        raise UserError(f"--baud: {e}") from None
    fit = estimate(map_network(design.qnet.network, arch), target)
    if not fit.fits(target) and not args.skip_fit_check:
        raise UserError(f"--network: {design.network} cannot fit {target.name} "
                        f"({target.device}): {fit.summary(target)} (--skip-fit-check builds "
                        f"anyway)")
    _log(f"fits {target.name}: {fit.summary(target)}")
    accelerator = accelerator_for(design)
    top = BoardTop(target, accelerator, height=design.height, width=design.width,
                   clock_mhz=clock_mhz, baud=baud, design_id=design.design_id)
    placement = memory_plan(memories(top.system, "top.system"), target)
    script = yosys_script(placement)
    details = {"network": design.network, "arch_name": arch_label(args.arch or DEFAULT_ARCH),
               "arch": arch.to_dict(), "estimate": fit.summary(target),
               "estimated": {k: getattr(fit, k) for k in ("luts", "ffs", "brams", "dsps")},
               "accelerator": getattr(accelerator, "description", type(accelerator).__name__),
               "memories": placement, "yosys_script": script}
    try:
        return build_board(top, args.output, details=details, yosys_script=script,
                           force=args.force)
    except FlowError as e:
        _log(f"error: {e}")
        raise SystemExit(1) from None


def _summary(report: dict) -> str:
    t, b = report["timing"], report["binding"]
    lines = [f"{report['network']} on {report['board']} ({report['device']}): bitstream {report['bitstream']}",
             f"  arch: {report.get('arch_name', '?')}"]
    for name in ("luts", "ffs", "brams", "dsps"):
        r = report[name]
        lines.append(f"  {name:5} {r['used']:7} / {r['available']:<7} "
                     f"({100 * r['used'] / r['available'] if r['available'] else 0:.1f} %)")
    lines.append(f"  Fmax {report['fmax_mhz']:.2f} MHz, target {report['target_mhz']:g} MHz: "
                 f"{'met' if t['met'] else 'NOT met'}; binding limit: {b.get('binds', '?')} "
                 f"(most used: {b['resource']} {100 * b['utilization']:.1f} %)")
    lines.append(f"  report: {report['bitstream'].rsplit('/', 1)[0]}/report.md "
                 f"({report['build_seconds']:.0f} s)")
    return "\n".join(lines)


def run_board(args) -> dict:
    """``imcflow fpga run``: the result of `imcflow.fpga.host.run_images`."""
    from imcflow.fpga.design import load_design
    from imcflow.fpga.host import (BoardClient, HostError, check_count, link_bound, open_port,
                                   run_images)

    if args.baud < 1:
        raise UserError(f"--baud: must be a positive integer, not {args.baud}")
    if not args.timeout > 0:
        raise UserError(f"--timeout: must be a positive number of seconds, not {args.timeout}")
    design = load_design(args.network, args.arch, args.dataset)
    check_count(design, args.images)
    port = open_port(args.port, args.baud)
    shown = [0]

    def progress(done, total):
        if done == total or done - shown[0] >= max(1, total // 10):
            shown[0] = done
            _log(f"{done}/{total} images answered")

    try:
        client = BoardClient(port, timeout=args.timeout, log=_log)
        result = run_images(client, design, args.images, progress=progress)
    except HostError as e:
        _log(f"error: {e}")
        raise SystemExit(1) from None
    finally:
        port.close()
    bound = link_bound(args.baud, design.height * design.width * design.channels)
    return {**result, "port": args.port, "baud": args.baud, "link_bound_images_per_s": round(bound, 1)}


def run(args) -> int:
    from imcflow.cli import print_json

    if args.action == "build":
        report = build(args)
        if not report["timing"]["met"]:
            _log(f"warning: Fmax {report['fmax_mhz']:.2f} MHz is below the "
                 f"{report['target_mhz']:g} MHz target; lower --clock-mhz or the design's depth")
        if args.json:
            print_json(report)
        else:
            print(_summary(report))
        return 0
    result = run_board(args)
    if args.json:
        print_json(result)
    else:
        rate = result["images_per_s"]
        print(f"{result['images']} images on {result['port']}: {result['bit_exact']} bit-exact "
              f"with the golden model; accuracy {result['accuracy']:.4f} "
              f"(golden {result['golden_accuracy']:.4f}); "
              f"{rate:.1f} images/s end to end (the link's bound at {result['baud']} baud: "
              f"{result['link_bound_images_per_s']:.1f})"
              + (f"; {result['resent']} sent again" if result['resent'] else ""))
        for m in result["mismatches"]:
            print(f"  image {m['image']}: board {m['board']}, golden {m['golden']}")
    return 0 if result["bit_exact"] == result["images"] else 1
