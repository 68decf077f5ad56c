"""``imcflow fpga``: ``build`` a bitstream and its report, ``run`` images on a board.

Both take the accelerator ``imcflow gen`` wrote (`imcflow.fpga.design.load_design`):

``imcflow fpga build DIR --board ulx3s-85f -o OUT [--clock-mhz F] [--baud B] [--json]`` puts the
accelerator in ``DIR`` (generated with ``--target fpga``) on the board behind the UART host link
(`imcflow.fpga.design.board_top`) and runs Yosys, nextpnr and the packer
(`imcflow.fpga.build.build_board`), showing each tool's progress on stderr. ``OUT`` receives the
bitstream, ``report.md`` and ``report.json``.

``imcflow fpga plan DIR --board ulx3s-85f [--clock-mhz F] [--baud B] [--json]`` estimates,
without building, what the accelerator needs on the board (LUT4, flip-flops, block RAMs, DSPs,
LUT4 per crossbar MAC per cycle) as given and with its crossbar rows folded, and says with which
``row_folds`` it fits (`imcflow.fpga.plan`).

``imcflow fpga run DIR --port PORT --images K [--baud B] [--json]`` streams the first ``K``
held-out images of the data set that calibrated ``DIR`` to the board (`imcflow.fpga.host`) and
checks its logits against the golden model: bit-exact count, accuracy and throughput.

Instead of ``DIR``, ``--network N`` (with ``--arch``, ``--core-budget``, ``--buffer``,
``--dataset``) is a shortcut: the accelerator ``imcflow gen --network N --target fpga`` would
write (`imcflow.fpga.design.prepare_design`).
"""

from __future__ import annotations

import shlex

from imcflow.cli.gen import add_accelerator_options
from imcflow.cli.options import add_output
from imcflow.cli.output import add_json, print_json
from imcflow.errors import UserError
from imcflow.files import check_output_directory
from imcflow.fpga.boards import BOARDS
from imcflow.fpga.boards import board as find_board
from imcflow.fpga import build as flow
from imcflow.fpga import host
from imcflow.fpga import plan as planning
from imcflow.fpga.design import board_top, load_design, prepare_design
from imcflow.fpga.top import BAUD
from imcflow.fpga.uart import BAUDS, fastest_baud
from imcflow.gen.project import TARGET_ARCH
from imcflow.progress import note

__all__ = ["add_arguments", "run", "build", "plan", "run_board"]


def _log(message: str) -> None:
    note("fpga", message)


def _add_design(parser) -> None:
    parser.add_argument("directory", nargs="?", metavar="DIR",
                        help="written by `imcflow gen --network N --target fpga` (or give --network)")
    add_accelerator_options(parser, what="with --network instead of DIR: ",
                            arch_default=TARGET_ARCH["fpga"])


def _design(args):
    """The design of ``DIR``, or the one ``--network`` prepares (exactly one of them)."""
    if (args.directory is None) == (args.network is None):
        raise UserError("DIR: give the directory `imcflow gen --target fpga` wrote, or --network "
                        "(not both)")
    if args.directory is not None:
        for option in ("arch", "core_budget", "buffer", "dataset"):
            if getattr(args, option) is not None:
                raise UserError(f"--{option.replace('_', '-')}: only with --network; DIR was "
                                f"generated with its own")
        return load_design(args.directory)
    return prepare_design(args.network, args.arch, args.dataset, core_budget=args.core_budget,
                          buffer=args.buffer)


def _add_board(parser, clock_help: str, baud_help: str) -> None:
    """--board, --clock-mhz and --baud, shared by the commands that target a board."""
    parser.add_argument("--board", default="ulx3s-85f",
                        help=f"target board: {', '.join(BOARDS)} (default: ulx3s-85f)")
    parser.add_argument("--clock-mhz", type=float, default=None, help=clock_help)
    parser.add_argument("--baud", type=int, default=None, help=baud_help)


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="{build,plan,run}")
    b = actions.add_parser("build", help="bitstream and utilisation/timing report for a board",
                           description="Synthesize, place and route a generated accelerator "
                                       "with its UART host link for a board (pip-only yowasp tools).")
    _add_design(b)
    _add_board(b, "system clock on a board with a PLL (default: the arch's clock_mhz)",
               f"UART baud rate (default: {BAUD} if the system clock makes it within 2 %%, else "
               f"the fastest of {', '.join(map(str, BAUDS[1:]))} that it does)")
    add_output(b)
    b.add_argument("--skip-fit-check", action="store_true",
                   help="synthesize even if the resource estimate says the design cannot fit")
    b.add_argument("--nextpnr-options", default=None, metavar="OPTS",
                   help="nextpnr options instead of the flow's, as one string (e.g. "
                        "--nextpnr-options=\"--router router2\"; default: "
                        "imcflow.fpga.build.NEXTPNR_OPTIONS)")
    b.add_argument("--seeds", type=int, default=flow.SEEDS, metavar="N",
                   help="place and route with nextpnr seeds 1..N, one per core at a time, and "
                        f"keep the run with the highest Fmax (default: {flow.SEEDS})")
    add_json(b, "print the report as one JSON object")

    p = actions.add_parser("plan", help="what a design needs on a board and with which row folds "
                                        "it fits, without building",
                           description="Estimate the resources of a generated accelerator on a "
                                       "board as given and with its crossbar rows folded; choose "
                                       "the fewest row folds that fit and outrun the host link.")
    _add_design(p)
    _add_board(p, "system clock (default: the arch's clock_mhz)",
               "UART baud rate of the host link (default: as fpga build chooses)")
    add_json(p, "print the plan as one JSON object")

    r = actions.add_parser("run", help="stream held-out images to a board and check its logits",
                           description="Send images to a board over its serial port and compare "
                                       "the logits with the golden model.")
    _add_design(r)
    r.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB0")
    r.add_argument("--images", type=int, required=True, metavar="K", help="held-out images to send")
    r.add_argument("--baud", type=int, default=BAUD,
                   help=f"UART baud rate: the build report's baud (default: {BAUD})")
    r.add_argument("--timeout", type=float, default=2.0,
                   help="seconds to wait for an answer before sending an image again (default: 2)")
    add_json(r)


def build(args) -> flow.BuildReport:
    """``imcflow fpga build``: the report of `imcflow.fpga.build.build_board`."""
    check_output_directory(args.output, args.force)
    target = find_board(args.board)
    if args.baud is not None and args.baud < 1:
        raise UserError(f"--baud: must be a positive integer, not {args.baud}")
    if args.seeds < 1:
        raise UserError(f"--seeds: must be a positive integer, not {args.seeds}")
    try:
        nextpnr_options = (None if args.nextpnr_options is None
                           else tuple(shlex.split(args.nextpnr_options)))
    except ValueError as e:
        raise UserError(f"--nextpnr-options: {e}") from None
    if nextpnr_options is not None:
        flow.check_nextpnr_options(nextpnr_options)
    design = _design(args)
    plan = board_top(design, target, clock_mhz=args.clock_mhz, baud=args.baud,
                     skip_fit_check=args.skip_fit_check, log=_log)
    try:
        return flow.build_board(plan.top, args.output, details=plan.details,
                                yosys_script=plan.yosys_script, force=args.force, seeds=args.seeds,
                                nextpnr_options=nextpnr_options)
    except flow.FlowError as e:
        _log(f"error: {e}")
        raise SystemExit(1) from None


def plan(args) -> dict:
    """``imcflow fpga plan``: `imcflow.fpga.plan.plan` of the design on the board."""
    target = find_board(args.board)
    if args.clock_mhz is not None and not args.clock_mhz > 0:
        raise UserError(f"--clock-mhz: must be a positive number, not {args.clock_mhz}")
    if args.baud is not None and args.baud < 1:
        raise UserError(f"--baud: must be a positive integer, not {args.baud}")
    design = _design(args)
    clock_mhz = args.clock_mhz or design.qnet.arch.clock_mhz
    baud = args.baud or fastest_baud(target.clock_hz(clock_mhz))
    return planning.plan(design.qnet, design.generated.mapping, target, clock_mhz=clock_mhz,
                         baud=baud)


def _plan_summary(p: dict) -> str:
    def row(c):
        x = c["crossbar"]
        return (f"  {c['row_folds']:>5}  {'yes' if c['slack_folds'] else 'no':>5} {c['mac_stages']:>5} "
                f"{c['luts']['used']:>9,} {c['ffs']['used']:>8,} {c['brams']['used']:>5} "
                f"{c['dsps']['used']:>5} {x['luts']:>9,} {x['luts_per_mac_per_cycle']:>9.1f} "
                f"{c['cycles_per_image']:>10,} {c['images_per_s']:>11,.0f}  "
                f"{'fits' if c['fits'] else 'no: ' + c['binding']['resource']}")
    c = p["current"]
    lines = [f"{p['network']} on {p['board']} ({p['device']}) at {p['clock_mhz']:g} MHz, host link "
             f"{p['baud']:,} baud: at most {p['link_images_per_s']:,.0f} images/s",
             f"  available: {c['luts']['available']:,} LUT4, {c['ffs']['available']:,} FF, "
             f"{c['brams']['available']} BRAM, {c['dsps']['available']} DSP",
             "  folds slack stages      LUT4       FF  BRAM   DSP  xbarLUT4 LUT4/MAC/c  cycles/img"
             "    images/s",
             row(c) + "   (as given)"]
    lines += [row(k) for k in p["candidates"]]
    if p["fits"]:
        chosen = next(k for k in p["candidates"] if k["row_folds"] == p["choice"])
        lines.append(f"choice: row_folds = {p['choice']}, slack_folds = true, mac_stages = "
                     f"{chosen['mac_stages']} ("
                     + ("the fewest LUT4 that fit and outrun the link" if chosen["outruns_link"]
                        else "the fastest that fits; slower than the link") + ")")
    else:
        k = p["closest"]
        lines.append(f"does not fit at any row_folds; closest (row_folds = {k['row_folds']}): "
                     f"{k['estimate']}")
    return "\n".join(lines)


def _summary(report: dict) -> str:
    """The build in a few lines, from its report (`imcflow.fpga.build.BuildReport.to_json`:
    the details, such as the network, are its keys)."""
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
    if report.get("crossbar"):
        x = report["crossbar"]
        lines.append(f"  crossbars (estimated): {x['luts']:,} LUT4, {x['luts_per_mac_per_cycle']:.1f} "
                     f"LUT4 per MAC per cycle ({x['macs_per_cycle']:.1f} MACs per cycle)")
    lines.append(f"  report: {report['bitstream'].rsplit('/', 1)[0]}/report.md "
                 f"({report['build_seconds']:.0f} s)")
    return "\n".join(lines)


def run_board(args) -> dict:
    """``imcflow fpga run``: the result of `imcflow.fpga.host.run_images`."""
    if args.baud < 1:
        raise UserError(f"--baud: must be a positive integer, not {args.baud}")
    if not args.timeout > 0:
        raise UserError(f"--timeout: must be a positive number of seconds, not {args.timeout}")
    design = _design(args)
    host.check_count(design, args.images)
    port = host.open_port(args.port, args.baud)
    shown = [0]

    def progress(done, total):
        if done == total or done - shown[0] >= max(1, total // 10):
            shown[0] = done
            _log(f"{done}/{total} images answered")

    try:
        client = host.BoardClient(port, timeout=args.timeout, log=_log)
        result = host.run_images(client, design, args.images, progress=progress)
    except host.HostError as e:
        _log(f"error: {e}")
        raise SystemExit(1) from None
    finally:
        port.close()
    bound = host.link_bound(args.baud, design.height * design.width * design.channels)
    return {**result.to_json(), "port": args.port, "baud": args.baud,
            "link_bound_images_per_s": round(bound, 1)}


def run(args) -> int:
    if args.action == "plan":
        result = plan(args)
        if args.json:
            print_json(result)
        else:
            print(_plan_summary(result))
        return 0
    if args.action == "build":
        report = build(args)
        if not report.timing["met"]:
            _log(f"warning: Fmax {report.fmax_mhz:.2f} MHz is below the "
                 f"{report.target_mhz:g} MHz target; lower --clock-mhz or the design's depth")
        if args.json:
            print_json(report.to_json())
        else:
            print(_summary(report.to_json()))
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
