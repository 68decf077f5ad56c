"""``imcflow gen --network N``: a whole accelerator's output directory, and reading it back.

The generated directory is the one artifact every later step consumes (docs/design.md):

- `prepare` quantizes a network for an architecture and maps it, once
  (`imcflow.sw.mapper.map_network`): a `Generated` without a directory;
- `generate` is `prepare` plus writing: it elaborates the `~imcflow.gen.accelerator.AxiStreamTop`
  of the mapping, lints its Verilog (`imcflow.rtl`) and writes everything into one directory,
  atomically (docs/generator.md lists the files and the manifest);
- `load` reads a directory back into the same objects: the quantized network (the golden model),
  the mapping and the top, which `imcflow sim` builds and checks against the directory's Verilog
  and `imcflow fpga build` puts on a board.

Without an architecture the target's preset is used, `TARGET_ARCH`: ``default`` for the ``sim``
crossbars, ``fpga`` (column parallelism and clock for an FPGA) for the ``fpga`` ones.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imcflow import __version__, rtl
from imcflow.errors import UserError
from imcflow.files import atomic_directory, check_output_directory
from imcflow.gen.accelerator import STATUS_SIGNALS, Accelerator, AxiStreamTop
from imcflow.gen.blocks import ports, tool_versions
from imcflow.hw.crossbar import TARGETS
from imcflow.progress import Steps
from imcflow.sw.arch import arch_label, load_arch
from imcflow.sw.datasets import calibrated, load_dataset
from imcflow.sw.mapper import map_network
from imcflow.sw.calibration import CALIBRATION_IMAGES
from imcflow.sw.perf import Performance, analyze
from imcflow.sw.quant import QNetwork
from imcflow.sw.report import summarize, write_report
from imcflow.sw.timing import BlockTiming, fill_latency

__all__ = ["Generated", "prepare", "generate", "load", "config_hash", "scale_skip_fifos",
           "with_skip_depths", "top_name", "held_out", "design_hash", "verilog_body",
           "MANIFEST", "QNET", "FORMAT", "TARGET_ARCH"]

#: files of the output directory that `load` reads
MANIFEST, QNET = "manifest.json", "qnet.npz"
#: manifest keys `load` and `imcflow sim` read, with their JSON types
MANIFEST_KEYS = {"top": (str,), "verilog": (str,), "core_budget": (int, type(None)),
                 "timing": (dict,), "skip_fifos": (list,), "options": (dict,),
                 "config_hash": (str,), "status": (dict,), "mapping": (dict,), "files": (dict,)}
_JSON = {str: "a string", int: "an integer", type(None): "null", dict: "an object", list: "an array"}
#: version of the directory layout and manifest schema
FORMAT = 1
#: the architecture preset of each crossbar flavour when no ``arch`` is given
TARGET_ARCH = {"sim": "default", "fpga": "fpga"}


@dataclass(frozen=True, eq=False)
class Generated:
    """A generated accelerator: what `generate` wrote or `load` read.

    Attributes
    ----------
    qnet : QNetwork
        The quantized network: the golden model (`imcflow.sw.inference.run`).
    mapping : Mapping
        The mapping the top implements (skip FIFO depths as generated).
    name : str
        Verilog module name of the top.
    manifest : dict
    directory : Path or None
    target : str
        The crossbar flavour (`~imcflow.hw.crossbar.TARGETS`): ``sim`` or ``fpga``.
    taps : bool
        Whether the top carries the debug taps of every stage's output stream
        (`~imcflow.gen.accelerator.AxiStreamTop`), with which `imcflow sim` checks every layer.
    top : AxiStreamTop
        The Verilog top, elaborated from ``qnet``, ``mapping``, ``target`` and ``taps`` on first
        use; ``top.core`` is the `~imcflow.gen.accelerator.Accelerator`.
    """

    qnet: object
    mapping: object
    name: str
    manifest: dict
    directory: Path | None = None
    target: str = "sim"
    taps: bool = True

    @functools.cached_property
    def accelerator(self) -> Accelerator:
        """The `~imcflow.gen.accelerator.Accelerator` of ``qnet`` and ``mapping`` in the
        ``target`` flavour (``top.core``; what a board wraps)."""
        return Accelerator(self.qnet, self.mapping, target=self.target)

    @functools.cached_property
    def top(self):
        return AxiStreamTop(self.accelerator, taps=self.taps)

    @property
    def verilog_path(self) -> Path:
        return self.directory / self.manifest["verilog"]


def top_name(network: str, digest: str) -> str:
    """The Verilog module name of a network's accelerator: ``imcflow_<network>_<digest[:8]>``, as
    an identifier. Every module below it is named ``<top>.<path>``, so two configurations (two
    digests, `design_hash`) share no module name and fit in one design."""
    return "imcflow_" + re.sub(r"\W", "_", network) + "_" + digest[:8]


def scale_skip_fifos(mapping, scale: float):
    """``mapping`` with every skip FIFO ``floor(scale * buffer_words)`` deep (at least 1): a way to
    build a pipeline below the mapper's depth on purpose (``scale < 1`` can deadlock it)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 16:
        raise UserError(f"skip_depth_scale: must be a number in (0, 16], not {scale!r}")
    if scale == 1:
        return mapping
    return with_skip_depths(mapping, {l.name: max(1, int(scale * l.buffer_words))
                                       for l in mapping.layers if l.role == "join"})


def with_skip_depths(mapping, depths: dict):
    def resized(l):
        if l.name not in depths:
            return l
        bits = l.buffer_bits // l.buffer_words * depths[l.name]
        return dataclasses.replace(l, buffer_words=depths[l.name], buffer_bits=bits)

    return dataclasses.replace(mapping, layers=tuple(resized(l) for l in mapping.layers))


def design_hash(qnet, mapping, target: str = "sim") -> str:
    """SHA-256 (hex, 16 digits) of what a generated accelerator is made from: the imcflow version,
    the crossbar flavour ``target``, the mapping and every parameter of the quantized network.
    Known before any Verilog exists, it names the top (`top_name`)."""
    h = hashlib.sha256(f"imcflow {__version__} target {target}".encode())
    _update(h, qnet, mapping)
    return h.hexdigest()[:16]


def config_hash(qnet, mapping, verilog: str) -> str:
    """SHA-256 (hex, 16 digits) of a generated directory's content: the Verilog text, the
    mapping and every parameter of the quantized network (the golden model); `imcflow sim`
    checks a directory against it."""
    h = hashlib.sha256()
    h.update(verilog.encode())
    _update(h, qnet, mapping)
    return h.hexdigest()[:16]


def _update(h, qnet, mapping) -> None:
    h.update(json.dumps(mapping.to_json(), sort_keys=True, default=str).encode())
    for q in qnet.layers:
        for f in dataclasses.fields(q):
            value = getattr(q, f.name)
            if isinstance(value, np.ndarray):
                h.update(f"{q.name}.{f.name}{value.shape}".encode() + value.astype(np.int64 if
                         value.dtype.kind in "iub" else np.float64).tobytes())
            else:
                h.update(f"{q.name}.{f.name}={value!r}".encode())


_MODEL_FIGURES = ("cycles_per_image", "cycles_per_image_bound", "latency_cycles", "throughput_ips",
                  "latency_us")


def _model(mapping, performance: Performance | None) -> dict:
    """The performance model's predictions for the generated pipeline (`imcflow.sw.perf.analyze`,
    or the mapper's ``performance`` when the pipeline is the mapper's), or its deadlock message
    when a skip FIFO is too shallow."""
    if performance is None:
        try:
            performance = analyze(mapping)
        except UserError as e:
            return {"deadlock": str(e)}
    return {"deadlock": None, **{k: getattr(performance, k) for k in _MODEL_FIGURES}}


def _stream(layout, shape, ports: str, value_bits: int) -> dict:
    return {"ports": {s: f"{ports}_{s}" for s in ("tdata", "tvalid", "tready", "tlast")},
            "image_shape": [shape.h, shape.w, shape.c], "beats_per_image": shape.pixels,
            "order": "pixels in raster order, all channels of a pixel in one beat; tlast on the "
                     "last beat of each image",
            "lanes": layout.lanes, "lane_bits": layout.bits, "value_bits": value_bits,
            "signed": layout.signed,
            "lane_order": f"lane k in tdata[{layout.bits}k+{layout.bits - 1}:{layout.bits}k]"
                          + (", values sign-extended" if layout.signed and value_bits < layout.bits
                             else "")}


def _manifest(gen: Generated, *, options: dict, lint: dict, tools: dict, model: dict,
              digest: str) -> dict:
    qnet, mapping, top = gen.qnet, gen.mapping, gen.top
    core, arch = top.core, qnet.arch
    stages = {l.name: l for l in mapping.stages}
    layers = []
    for l in mapping.stages:
        entry = {"name": l.name, "kind": l.kind, "role": l.role, "inputs": list(l.inputs),
                 "out_shape": [l.out_shape.h, l.out_shape.w, l.out_shape.c],
                 "fill_latency": fill_latency(l, arch, mapping.timing)}
        block = core.stages.get(l.name)
        if block is not None:
            entry["block_latency"], entry["interval"] = block.latency, block.interval
        if l.role in ("crossbar", "pool"):
            entry.update(buffer=l.buffer, buffer_words=l.buffer_words)
        if l.role == "crossbar":
            entry.update(rows=l.rows, cols=l.cols, row_tiles=l.row_tiles, col_tiles=l.col_tiles,
                         replication=l.replication, mvm_interval=l.interval,
                         columns_per_cycle=arch.columns_per_cycle(l.tile_cols),
                         weights=f"weights/{l.name}.npz")
        layers.append(entry)
    out = stages[core.output].out_shape
    in_shape = stages[mapping.stages[0].name].out_shape
    return {
        "format": FORMAT, "imcflow": __version__, "config_hash": digest,
        "top": gen.name, "verilog": f"{gen.name}.v", "fusesoc": f"{gen.name}.core",
        "instantiation": f"{gen.name}_inst.v", "constraints": f"{gen.name}.sdc",
        "clock": {"port": "clk", "edge": "rising", "mhz": arch.clock_mhz},
        "reset": {"port": "rst", "synchronous": True, "active": "high", "min_cycles": 1},
        "network": qnet.name, "target": gen.target, "arch": arch.to_dict(),
        "core_budget": mapping.core_budget,
        "options": options,
        "ports": ports(top),
        "streams": {"input": _stream(top.in_layout, in_shape, "s_axis", 8),
                    "output": _stream(top.out_layout, out, "m_axis", arch.act_bits)},
        "core": {"class": "imcflow.gen.accelerator.Accelerator",
                 "i": {"lanes": in_shape.c, "bits": 8, "signed": False},
                 "o": {"lanes": out.c, "bits": arch.act_bits,
                       "signed": core.o.payload.shape().signed}},
        "status": {"port": "status", "width": len(core.status),
                   "signals": list(STATUS_SIGNALS),
                   "links": [{"bit": len(STATUS_SIGNALS) * n, **dataclasses.asdict(link)}
                             for n, link in enumerate(core.links)]},
        "taps": [{"stage": stage, "handshake": f"{prefix}_handshake",
                  "payload": f"{prefix}_payload", "lanes": core.layouts[stage].lanes,
                  "bits": core.layouts[stage].bits, "signed": core.layouts[stage].signed}
                 for stage, prefix in top.taps.items()],
        "skip_fifos": [{"join": l.name, "input": l.skip_input, "words": l.buffer_words,
                        "mapper_words": options["mapper_skip_words"][l.name],
                        "min_words": l.skip_min_words}
                       for l in mapping.layers if l.role == "join"],
        "layers": layers,
        "timing": dataclasses.asdict(mapping.timing),
        "mapping": {k: v for k, v in mapping.to_json().items() if k != "layers"},
        "model": model,
        "lint": lint, "tools": tools,
        "files": {"qnet": QNET, "report": "report/report.md", "mapping": "report/mapping.json"},
    }


def _weight_images(directory: Path, qnet, mapping) -> None:
    """Per crossbar layer: ``<layer>.npz`` (weight, bias, mult, shift, adc_shift, and ``lanes``
    when the rows are not the window's lanes in order, as in a grouped conv's block-diagonal
    layout: the window lane each row reads, -1 for none), the integers the Verilog holds as
    constants (for reading, not for loading: nothing reads them back)."""
    (directory / "weights").mkdir()
    for l in mapping.crossbar_layers:
        q = qnet[l.name]
        lanes = {} if q.lanes is None else {"lanes": q.lanes}
        np.savez(directory / "weights" / f"{l.name}.npz", weight=q.weight, bias=q.bias,
                 mult=q.mult, shift=q.shift, adc_shift=q.adc_shift, **lanes)


#: the last line of the comment `generate` puts before the Verilog Amaranth writes
HEADER_END = "// (end of the imcflow header)\n"


def verilog_header(gen: "Generated") -> str:
    """The comment at the top of ``<top>.v``: what it is, its clock and reset, where the rest is."""
    m, name = gen.manifest, gen.name
    return (f"// {name}: layer-pipelined IMC accelerator for {gen.qnet.name}, written by imcflow "
            f"{__version__}\n"
            f"// (configuration {m['design_hash']}; everything about it is in manifest.json).\n"
            f"// Clock: {m['clock']['port']}, rising edge, {m['clock']['mhz']:g} MHz "
            f"(arch.clock_mhz; {m['constraints']} constrains it). Every port is in this domain.\n"
            f"// Reset: {m['reset']['port']}, synchronous, active high, at least one cycle.\n"
            f"// Streams: s_axis_* (pixels in) and m_axis_* (logits out), AXI4-Stream handshakes.\n"
            f"// The weights are constants in this file. Instantiation: {m['instantiation']}.\n"
            + HEADER_END)


def verilog_body(text: str) -> str:
    """The Verilog of ``<top>.v`` without the imcflow header: what Amaranth wrote."""
    return text.split(HEADER_END, 1)[1] if HEADER_END in text else text


def _instantiation(gen: "Generated") -> str:
    """``<top>_inst.v``: an instance of the top with every port connected to a signal of its
    name, each commented with its direction and width."""
    ports = gen.manifest["ports"]
    width = max(len(p["name"]) for p in ports)
    lines = [f".{p['name']:<{width}} ({p['name']:<{width}})" for p in ports]
    comments = [f"// {p['direction']}" + (f" [{p['width'] - 1}:0]" if p["width"] > 1 else "")
                for p in ports]
    body = "\n".join(f"    {line}{',' if i < len(lines) - 1 else ' '}  {c}"
                     for i, (line, c) in enumerate(zip(lines, comments)))
    clock = gen.manifest["clock"]
    return (f"// Instantiation template for {gen.name} (imcflow {__version__}); copy it into your "
            f"design.\n// {clock['port']}: rising edge, {clock['mhz']:g} MHz; "
            f"{gen.manifest['reset']['port']}: synchronous, active high.\n"
            f"{gen.name} u_{gen.name} (\n{body}\n);\n")


def _constraints(gen: "Generated") -> str:
    """``<top>.sdc``: the clock at ``arch.clock_mhz``."""
    clock = gen.manifest["clock"]
    return (f"# Timing constraints for {gen.name} (imcflow {__version__}): one clock, "
            f"{clock['mhz']:g} MHz.\n"
            f"create_clock -name {clock['port']} -period {1000 / clock['mhz']:.4f} "
            f"[get_ports {clock['port']}]\n"
            f"# {gen.manifest['reset']['port']} is synchronous to {clock['port']}; every port is in "
            f"its domain.\n")


def _fusesoc(gen: Generated, lint_flags: list[str]) -> str:
    options = "\n".join(f"          - {flag}" for flag in lint_flags if flag != "--lint-only")
    return f"""CAPI=2:
# Written by imcflow {__version__} (config {gen.manifest['config_hash']}); see manifest.json.
name: imcflow:accelerator:{gen.name}:{__version__}
description: Layer-pipelined IMC accelerator for {gen.qnet.name}
filesets:
  rtl:
    files:
      - {gen.name}.v
    file_type: verilogSource
  constraints:
    files:
      - {gen.name}.sdc
    file_type: SDC
targets:
  default:
    filesets: [rtl]
    toplevel: {gen.name}
  lint:
    default_tool: verilator
    filesets: [rtl]
    toplevel: {gen.name}
    tools:
      verilator:
        mode: lint-only
        verilator_options:
{options}
"""


def prepare(network, arch=None, *, core_budget=None, buffer=None, skip_depth_scale: float = 1.0,
            dataset: str | None = None, target: str = "sim", taps: bool = True) -> Generated:
    """The accelerator of ``network`` on ``arch`` before anything is written: the quantized
    network, its one mapping and the top's name (a `Generated` without a directory whose
    manifest holds ``design_hash``, ``arch_name``, ``calibration`` and ``options``). `generate`
    writes it; ``imcflow fpga build --network`` puts it on a board.

    Parameters
    ----------
    network : str, Path or Network
        A zoo name, a ``.toml`` or ``.onnx`` file, or a `~imcflow.sw.ir.Network` with weights.
    arch : Arch, str or None
        An `~imcflow.sw.arch.Arch`, preset name or ``.toml`` file (default: the target's preset,
        `TARGET_ARCH`).
    core_budget : int, str or None
        Crossbars for replication (``"2x"``: twice the minimum), as `map_network`.
    buffer : str or None
        ``line``, ``frame`` or ``auto`` (default: the arch's).
    skip_depth_scale : float
        Every skip FIFO gets ``floor(scale * buffer_words)`` words (1: the mapper's depth; below
        the mapper's minimum the pipeline deadlocks, and `imcflow sim` reports it).
    dataset : str or None
        The images that calibrate the network: a zoo data set or a .npz/.npy file
        (`imcflow.sw.datasets`; default: a zoo network's own, else seeded random images). The
        manifest records it under ``calibration`` and `held_out` gives its held-out images.
    target : str
        The crossbar flavour: ``sim`` (default), the behavioral model of the analog crossbar
        (integer arithmetic once per MVM, fast under Verilator), or ``fpga``, the multiplier-free
        MAC array for synthesis. Same ports and timing (docs/crossbar.md).
    taps : bool
        Debug ports on the top with every stage's output stream (default), with which
        `imcflow sim` checks every layer against the golden model; False: a clean top, and
        `imcflow sim` checks the output only.

    Raises
    ------
    UserError
        On a bad network, arch, budget or option.
    """
    if target not in TARGETS:
        raise UserError(f"target: must be one of {', '.join(TARGETS)}, not {target!r}")
    arch = TARGET_ARCH[target] if arch is None else arch
    label = arch_label(arch, buffer=buffer)
    arch = load_arch(arch, buffer=buffer)
    qnet, _, calibration = calibrated(network, arch, dataset)
    base = map_network(qnet.network, arch, core_budget=core_budget)
    mapping = scale_skip_fifos(base, skip_depth_scale)
    digest = design_hash(qnet, mapping, target)
    options = {"buffer": arch.buffer, "skip_depth_scale": skip_depth_scale,
               "mapper_skip_words": {l.name: l.buffer_words for l in base.layers
                                     if l.role == "join"}}
    return Generated(qnet, mapping, top_name(qnet.name, digest),
                     {"design_hash": digest, "arch_name": label, "calibration": calibration,
                      "options": options}, None, target, taps)


def generate(out_dir: str | os.PathLike, network, arch=None, *, core_budget=None, buffer=None,
             skip_depth_scale: float = 1.0, progress: bool = True, force: bool = False,
             dataset: str | None = None, target: str = "sim", taps: bool = True) -> Generated:
    """Write the accelerator of ``network`` on ``arch`` into ``out_dir``, atomically: `prepare`,
    then the Verilog (linted), the manifest, the golden model, the weight images and the mapping
    report.

    Parameters
    ----------
    network, arch, core_budget, buffer, skip_depth_scale, dataset, target, taps
        As `prepare`.
    progress : bool
        Progress bar on stderr.
    force : bool
        Replace ``out_dir`` even if imcflow did not write it (`imcflow.files.atomic_directory`).

    Returns
    -------
    Generated

    Raises
    ------
    UserError
        On a bad network, arch, budget, option or output directory.
    imcflow.rtl.LintError
        If the Verilog has lint warnings beyond the documented waivers (nothing is written).
    """
    check_output_directory(out_dir, force)
    prepared = prepare(network, arch, core_budget=core_budget, buffer=buffer,
                       skip_depth_scale=skip_depth_scale, dataset=dataset, target=target,
                       taps=taps)
    gen = dataclasses.replace(prepared, directory=Path(out_dir))
    qnet, mapping, name = gen.qnet, gen.mapping, gen.name
    manifest = gen.manifest
    options = manifest.pop("options")
    label, calibration = manifest.pop("arch_name"), manifest.pop("calibration")
    base = mapping if skip_depth_scale == 1 else with_skip_depths(mapping,
                                                                  options["mapper_skip_words"])
    steps = Steps("gen", 4, progress)   # from here on, only a lint failure or an unwritable -o can fail
    steps.step("modelling")
    summary = summarize(qnet.network, base)
    model = _model(mapping, summary.performance if mapping is base else None)
    steps.step("elaborating")
    verilog = rtl.verilog(gen.top, name)   # with the header below, once the manifest exists
    lint = {"command": f"verilator {' '.join(rtl.lint_flags())} --top-module {name} {name}.v",
            "waivers": {**rtl.WAIVERS, **rtl.WALL_WAIVERS}}
    manifest.update(_manifest(gen, options=options, lint=lint, tools=tool_versions(),
                              model=model, digest=config_hash(qnet, mapping, verilog)))
    manifest.update(arch_name=label, calibration=calibration)
    verilog = verilog_header(gen) + verilog
    manifest["config_hash"] = config_hash(qnet, mapping, verilog)
    with atomic_directory(out_dir, force=force) as tmp:
        tmp = Path(tmp)
        (tmp / f"{name}.v").write_text(verilog)
        steps.step("linting")
        rtl.lint(tmp / f"{name}.v", name)
        steps.step("writing")
        qnet.save(tmp / QNET)
        _weight_images(tmp, qnet, mapping)
        (tmp / "report").mkdir()
        write_report(summary.to_json(), tmp / "report")
        (tmp / f"{name}.core").write_text(_fusesoc(gen, rtl.lint_flags()))
        (tmp / manifest["instantiation"]).write_text(_instantiation(gen))
        (tmp / manifest["constraints"]).write_text(_constraints(gen))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    steps.close()
    return gen


def load(directory: str | os.PathLike) -> Generated:
    """The accelerator written by `generate` into ``directory``: its quantized network, mapping
    (with the skip FIFO depths as generated) and top, re-elaborated from them.

    Raises
    ------
    UserError
        If ``directory`` holds no manifest of this format or its network cannot be read.
    """
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or e
        raise UserError(f"directory: {str(directory)!r} is not an accelerator written by "
                        f"`imcflow gen --network` ({MANIFEST}: {reason})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"directory: {str(directory)!r} has a {MANIFEST} of another format "
                        f"(expected format {FORMAT}); regenerate it with `imcflow gen`")
    for key, types in MANIFEST_KEYS.items():
        if key not in manifest:
            raise UserError(f"{MANIFEST}.{key}: missing in {str(directory)!r}; regenerate it with "
                            f"`imcflow gen`")
        if not isinstance(manifest[key], types) or isinstance(manifest[key], bool):
            raise UserError(f"{MANIFEST}.{key}: must be {' or '.join(_JSON[t] for t in types)}, "
                            f"not {manifest[key]!r}; regenerate it with `imcflow gen`")
    qnet = QNetwork.load(directory / QNET)
    try:
        timing = BlockTiming(**manifest["timing"])
        skip_words = {s["join"]: s["words"] for s in manifest["skip_fifos"]}
        mapping = map_network(qnet.network, qnet.arch, core_budget=manifest["core_budget"],
                              timing=timing)
        mapping = with_skip_depths(mapping, skip_words)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, UserError):
            raise
        raise UserError(f"{MANIFEST}: malformed in {str(directory)!r} ({type(e).__name__}: {e}); "
                        f"regenerate it with `imcflow gen`") from None
    if manifest.get("target") not in TARGETS:
        raise UserError(f"{MANIFEST}.target: must be one of {', '.join(TARGETS)}, not "
                        f"{manifest.get('target')!r}; regenerate it with `imcflow gen`")
    return Generated(qnet, mapping, manifest["top"], manifest, directory, manifest["target"],
                     bool(manifest.get("taps")))


def held_out(manifest: dict, count: int | None = None):
    """``(images, labels)``: the first ``count`` (default: all) held-out images of the data set
    that calibrated a generated accelerator (``manifest["calibration"]``, `generate`), labels
    None when it has none; ``(None, None)`` when it was calibrated on seeded random images.

    `imcflow sim` streams these by default, so it scores the RTL on the images
    ``imcflow accuracy --dataset`` scores the golden model on.

    Raises
    ------
    UserError
        If the data set is gone or changed since it calibrated the directory, or holds fewer than
        ``count`` held-out images.
    """
    record = manifest.get("calibration") or {}
    name = record.get("dataset")
    if name is None:
        return None, None
    data = load_dataset(record.get("path", name), field=f"{MANIFEST}.calibration.dataset")
    calib = np.ascontiguousarray(data.train_images[:record.get("images", CALIBRATION_IMAGES)],
                                 np.int64)
    if "sha256" in record and hashlib.sha256(calib.tobytes()).hexdigest() != record["sha256"]:
        raise UserError(f"{MANIFEST}.calibration.dataset: {name} is not the data that calibrated "
                        f"this directory (its calibration images changed); regenerate it")
    count = len(data.test_images) if count is None else count
    if count > len(data.test_images):
        raise UserError(f"images: {name} holds {len(data.test_images)} held-out images, "
                        f"not {count}")
    labels = None if data.test_labels is None else data.test_labels[:count]
    return data.test_images[:count], labels
