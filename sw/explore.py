"""``imcflow explore SWEEP.toml -o DIR``: design-space exploration on a Dask cluster.

A sweep file (docs/explore.md) names networks and lists values of architecture fields; the sweep
is their grid or a seeded random sample of it. Every point is one network on one `Arch`, and
`evaluate` gives its figures: accuracy (the golden model; with programming noise, the mean over
``noise_seeds`` seeds), mapping (crossbars, utilization), performance (cycles per image, latency,
images/s at the clock, `imcflow.sw.perf.analyze`), activation memory, energy and area
(`imcflow.sw.cost`). Optionally ``verify = N`` points of the Pareto front are generated
(`imcflow.gen.project.generate`) and simulated under Verilator (`imcflow.verif.sim.simulate`),
bit-exact against the golden model and cycle-exact against the performance model.

Distribution: points are Dask tasks, on a `distributed.LocalCluster` of worker processes by
default or on the scheduler given with ``--scheduler``. Shared work is a task of its own, keyed
by what it depends on, so the cluster computes it once: the event model of a (network, mapping)
key, which every point differing only in ADC or weight bits or noise depends on, and the
accuracy of a (network, arithmetic, noise seed) key. Verilator builds are cached
by configuration hash under a file lock (`imcflow.verif.runner`), so two workers never build the
same design twice.

Nothing is lost: the client appends every finished point to ``DIR/results.jsonl`` (one JSON
object per line, flushed and fsynced) as it completes; the CSV and JSON tables, the Markdown
report and the plots are written from that file. A worker that dies has its tasks rerun
elsewhere by the scheduler; a client that dies is resumed with ``--resume``, which submits only
the points not in the file; a point that raises is recorded with its error and the sweep goes on.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import math
import os
import shlex
import shutil
import socket
import sys
import time
import traceback
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imcflow import __version__
from imcflow.errors import UserError
from imcflow.files import MARKER, check_output_directory
from imcflow.gen.project import generate
from imcflow.sw import zoo
from imcflow.sw.accuracy import accuracy
from imcflow.sw.arch import Arch, load_arch
from imcflow.sw.cost import estimate, load_cost
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_network
from imcflow.sw.perf import analyze
from imcflow.verif.sim import simulate

__all__ = ["Sweep", "OBJECTIVES", "load_sweep", "points", "evaluate", "pareto", "explore",
           "RESULTS", "TABLE"]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: points per Dask task (`batches`)
BATCH = 8
#: Dask priorities: the shared work first (the event model of a large network is the longest
#: task of a sweep; started last it would leave the other workers idle), then the points
PRIORITY = {"performance": 20, "accuracy": 10, "points": 0}
#: files of the output directory
RESULTS, TABLE, SWEEP_COPY = "results.jsonl", "results.csv", "sweep.toml"
#: objective -> +1 (larger is better) or -1 (smaller is better)
OBJECTIVES = {
    "accuracy": +1, "throughput_ips": +1, "images_per_j": +1, "tops_per_w": +1, "utilization": +1,
    "energy_per_image_j": -1, "area_mm2": -1, "latency_us": -1, "latency_cycles": -1,
    "cycles_per_image": -1, "activation_memory_bits": -1, "crossbars": -1, "power_w": -1,
}
#: columns of the table, in order (arch fields follow ``network``)
FIGURES = ("crossbars", "min_crossbars", "utilization", "cycles_per_image",
           "cycles_per_image_bound", "latency_cycles", "latency_us", "throughput_ips",
           "activation_memory_bits", "energy_per_image_j", "images_per_j", "tops_per_w",
           "power_w", "area_mm2", "accuracy", "accuracy_min", "float_accuracy")
_KEYS = {"name", "networks", "dataset", "arch", "cost", "mode", "samples", "seed",
         "noise_seeds", "accuracy", "verify", "verify_images", "objectives", "plots", "params"}


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file (docs/explore.md lists the keys).

    Attributes
    ----------
    name : str
    networks : tuple of str
        Zoo names or paths of .toml/.onnx files (resolved against the sweep file's directory).
    dataset : str or None
        Labelled images for .toml/.onnx networks (as ``imcflow accuracy --dataset``).
    arch : dict
        Base architecture fields every point starts from.
    params : dict of str to tuple
        Arch field -> the values swept.
    mode : str
        ``grid`` (every combination) or ``random`` (``samples`` distinct combinations drawn with
        ``seed``).
    noise_seeds : int
        Seeds the accuracy is averaged over when ``weight_noise > 0``.
    accuracy : bool
        Evaluate accuracy (for networks with labelled images).
    verify, verify_images : int
        Pareto-front points generated and simulated in RTL, and images each.
    objectives : tuple of str
        The objectives of the Pareto front (of `OBJECTIVES`).
    plots : tuple of (str, str)
        Objective pairs plotted.
    cost : str or None
        A cost-model TOML file (`imcflow.sw.cost.load_cost`).
    text : str
        The file's text (copied into the output directory; ``--resume`` compares it).
    """

    name: str
    networks: tuple
    dataset: str | None
    arch: dict
    params: dict
    mode: str
    samples: int
    seed: int
    noise_seeds: int
    accuracy: bool
    verify: int
    verify_images: int
    objectives: tuple
    plots: tuple
    cost: str | None
    text: str

    @property
    def size(self) -> int:
        """Points: the grid's size, or the random sample's."""
        grid = len(self.networks) * math.prod(len(v) for v in self.params.values())
        return grid if self.mode == "grid" else min(self.samples, grid)


def _fail(key: str, message: str):
    raise UserError(f"sweep.{key}: {message}")


def _int(doc, key, default, lo, hi):
    v = doc.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        _fail(key, f"must be an integer in {lo}..{hi}, not {v!r}")
    return v


def _objective(key, v):
    if v not in OBJECTIVES:
        _fail(key, f"must be one of {', '.join(OBJECTIVES)}, not {v!r}")
    return v


def load_sweep(path) -> Sweep:
    """Parse and validate the sweep file ``path``; a bad key or value is a one-line `UserError`."""

    path = Path(path)
    try:
        text = path.read_text()
        doc = tomllib.loads(text)
    except OSError as e:
        raise UserError(f"sweep: cannot read {str(path)!r}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"sweep: {path.name} is not valid TOML: {e}") from None
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        _fail(unknown[0], f"unknown key; allowed: {', '.join(sorted(_KEYS))}")
    networks = doc.get("networks")
    if isinstance(networks, str):
        networks = [networks]
    if not isinstance(networks, list) or not networks or not all(isinstance(n, str) for n in networks):
        _fail("networks", f"must be a non-empty list of zoo names or .toml/.onnx paths, not {networks!r}")
    base = path.parent
    networks = tuple(n if "/" not in n and not n.endswith((".toml", ".onnx"))
                     else str((base / n).resolve()) for n in networks)
    arch_spec = doc.get("arch", "default")
    if isinstance(arch_spec, str) and arch_spec.endswith(".toml"):
        arch_spec = str((base / arch_spec).resolve())
    arch = load_arch(arch_spec) if isinstance(arch_spec, str) else Arch.from_dict(arch_spec, source="sweep.arch")
    params = doc.get("params", {})
    if not isinstance(params, dict):
        _fail("params", "must be a table of arch field = [values]")
    names = [f.name for f in fields(Arch)]
    checked = {}
    for key, values in params.items():
        if key not in names:
            _fail(f"params.{key}", f"not an arch field; allowed: {', '.join(names)}")
        if not isinstance(values, list) or not values:
            _fail(f"params.{key}", f"must be a non-empty list of values, not {values!r}")
        values = [None if v == "none" else v for v in values]
        check = next(f for f in fields(Arch) if f.name == key).metadata["check"]
        for v in values:  # each value alone must be valid (combinations are checked per point)
            if key == "core_budget" and isinstance(v, str):
                try:
                    ok = v.endswith("x") and float(v[:-1]) > 0
                except ValueError:
                    ok = False
                if not ok:
                    _fail(f"params.{key}", f"must be 'none', a number of crossbars or a multiple "
                                           f"of the minimum like '2x', not {v!r}")
            else:
                check(f"arch.{key}", v)
        if len(set(map(repr, values))) != len(values):
            _fail(f"params.{key}", f"lists a value twice: {values!r}")
        checked[key] = tuple(values)
    mode = doc.get("mode", "grid")
    if mode not in ("grid", "random"):
        _fail("mode", f"must be 'grid' or 'random', not {mode!r}")
    objectives = tuple(_objective("objectives", o) for o in doc.get(
        "objectives", ["accuracy", "energy_per_image_j", "throughput_ips"]))
    plots = doc.get("plots", [["energy_per_image_j", "throughput_ips"]])
    if not isinstance(plots, list) or not all(isinstance(p, list) and len(p) == 2 for p in plots):
        _fail("plots", f"must be a list of [x, y] objective pairs, not {plots!r}")
    plots = tuple((_objective("plots", x), _objective("plots", y)) for x, y in plots)
    cost = doc.get("cost")
    if cost is not None:
        cost = str((base / cost).resolve())
        load_cost(cost)
    accuracy = doc.get("accuracy", True)
    if not isinstance(accuracy, bool):
        _fail("accuracy", f"must be true or false, not {accuracy!r}")
    return Sweep(
        name=str(doc.get("name", path.stem)), networks=networks, dataset=doc.get("dataset"),
        arch=arch.to_dict(), params=checked, mode=mode,
        samples=_int(doc, "samples", 100, 1, 10**9), seed=_int(doc, "seed", 0, 0, 2**32 - 1),
        noise_seeds=_int(doc, "noise_seeds", 3, 1, 1000), accuracy=accuracy,
        verify=_int(doc, "verify", 0, 0, 1000), verify_images=_int(doc, "verify_images", 4, 2, 10**5),
        objectives=objectives, plots=plots, cost=cost, text=text)


def point_id(network: str, arch: dict) -> str:
    """A point's id: a hash of its network and every arch field, stable across runs."""
    digest = hashlib.sha256(json.dumps([network, arch], sort_keys=True).encode()).hexdigest()
    return "p" + digest[:12]


def points(sweep: Sweep) -> list[dict]:
    """The sweep's points in a fixed order: ``{"id", "index", "network", "arch"}``; a random
    sweep draws ``samples`` distinct grid indices with ``numpy.random.default_rng(seed)``."""

    axes = [("network", sweep.networks)] + list(sweep.params.items())
    sizes = [len(v) for _, v in axes]
    total = math.prod(sizes)
    if sweep.mode == "grid":
        chosen = range(total)
    else:
        rng = np.random.default_rng(sweep.seed)
        chosen = sorted(rng.choice(total, size=min(sweep.samples, total), replace=False).tolist())
    out = []
    for index in chosen:
        values, rest = [], index
        for size in reversed(sizes):  # mixed radix, the last axis fastest
            rest, digit = divmod(rest, size)
            values.append(digit)
        values.reverse()
        setting = {name: axis[d] for (name, axis), d in zip(axes, values)}
        network = setting.pop("network")
        arch = {**sweep.arch, **setting}
        out.append({"id": point_id(network, arch), "index": len(out), "network": network,
                    "arch": arch})
    return out


# --- evaluation (runs on the workers) ------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _network(spec: str):
    return load_network(spec)


@functools.lru_cache(maxsize=4)
def _cost_model(path):
    return load_cost(path)


def arch_of(values: dict):
    """``(Arch, core_budget)`` of a point's arch fields; a ``"Kx"`` budget is resolved by the
    mapper (`imcflow.sw.mapper.resolve_budget`)."""

    budget = values.get("core_budget")
    if isinstance(budget, str):
        return Arch().replace(**{**values, "core_budget": None}), budget
    return Arch().replace(**values), None


def has_labels(network: str, dataset: str | None) -> bool:
    """Whether ``network`` can be scored: a zoo network with a data set, or ``dataset`` given."""
    return dataset is not None or (network in zoo.names() and zoo.dataset(network) is not None)


#: arch fields that change the integer arithmetic (the accuracy's key)
ARITH = ("rows", "act_bits", "weight_bits", "adc_bits", "input_encoding", "weight_noise")


def accuracy_key(network: str, arch: dict, noise_seed: int) -> tuple:
    return (network, *(arch[f] for f in ARITH), noise_seed)


@functools.lru_cache(maxsize=256)
def accuracy_of(key: tuple, dataset: str | None) -> dict:
    """``{"imc", "float"}`` accuracy of an `accuracy_key` (cached in the worker)."""

    network, *values, seed = key
    arch = Arch().replace(**dict(zip(ARITH, values)), noise_seed=seed)
    report = accuracy(network, arch, dataset=dataset)
    return {"imc": report.imc_accuracy, "float": report.float_accuracy}


def noise_seeds(arch: dict, seeds: int) -> list[int]:
    """The noise seeds a point's accuracy averages over: ``seeds`` of them with noise, else its own."""
    return list(range(seeds)) if arch["weight_noise"] > 0 else [arch["noise_seed"]]


#: arch fields that change neither the mapping nor its timing (only arithmetic and energy)
TIMING_FREE = ("weight_bits", "adc_bits", "weight_noise", "noise_seed")


def performance_key(network: str, arch: dict) -> tuple:
    return (network, *sorted((k, v) for k, v in arch.items() if k not in TIMING_FREE))


@functools.lru_cache(maxsize=256)
def performance_of(key: tuple) -> dict:
    """The event model's figures of a `performance_key` (cached in the worker)."""

    network, *items = key
    arch, budget = arch_of(dict(items))
    perf = analyze(map_network(_network(network), arch, core_budget=budget), 2)
    return {k: getattr(perf, k) for k in ("cycles_per_image", "cycles_per_image_bound",
                                          "latency_cycles", "latency_us", "throughput_ips")}


def evaluate(point: dict, cost_path: str | None = None, perf: dict | None = None,
             *accuracies) -> dict:
    """The figures of one point (a dict of `points`): mapping, performance (``perf``, its
    `performance_of`, computed when None), memory, energy, area and accuracy (the mean of the
    `accuracy_of` results of its noise seeds). Raises on an invalid point (the caller records
    the error)."""

    start = time.perf_counter()
    arch, budget = arch_of(point["arch"])
    mapping = map_network(_network(point["network"]), arch, core_budget=budget)
    perf = perf or performance_of(performance_key(point["network"], point["arch"]))
    cost = estimate(mapping, _cost_model(cost_path), cycles_per_image=perf["cycles_per_image"])
    row = {"crossbars": mapping.crossbars, "min_crossbars": mapping.min_crossbars,
           "utilization": mapping.utilization, **perf,
           "activation_memory_bits": mapping.activation_memory_bits,
           "energy_per_image_j": cost.energy_per_image_j, "images_per_j": cost.images_per_j,
           "tops_per_w": cost.tops_per_w, "power_w": cost.power_w, "area_mm2": cost.area_mm2,
           "accuracy": None, "accuracy_min": None, "float_accuracy": None}
    if accuracies:
        imc = [a["imc"] for a in accuracies]
        row.update(accuracy=sum(imc) / len(imc), accuracy_min=min(imc),
                   float_accuracy=accuracies[0]["float"])
    row["seconds"] = round(time.perf_counter() - start, 4)
    return row


def _accuracy_task(key, dataset):
    """`accuracy_of`, its error as data: only the points that need this key fail with it."""
    try:
        return accuracy_of(key, dataset)
    except Exception as e:  # noqa: BLE001 - recorded on each point that depends on it
        return {"error": f"{type(e).__name__}: {e}"}


def _performance_task(key):
    return performance_of(key)


def _point_task(point, cost_path, perf, accuracies):
    """`evaluate` with its errors as data: a failing point is a result, never a lost task."""
    try:
        failed = [a["error"] for a in accuracies if "error" in a]
        if failed:
            raise UserError(failed[0])
        figures = evaluate(point, cost_path, perf, *accuracies)
        status, error = "ok", ""
    except Exception as e:  # noqa: BLE001 - every failure becomes the point's recorded error
        figures, status = {}, "failed"
        error = str(e) if failed else f"{type(e).__name__}: {e}" if isinstance(e, UserError) \
            else f"{type(e).__name__}: {e} ({traceback.format_exc(limit=-1).strip().splitlines()[0]})"
    return {**_identity(point), "status": status, "error": error, **figures,
            "worker": f"{socket.gethostname()}:{os.getpid()}"}


def _batch_task(batch, cost_path, perf, accuracies):
    """`_point_task` of each point of ``batch``, which share the event model ``perf``;
    ``accuracies[i]`` are the accuracy results of ``batch[i]``'s noise seeds."""
    return [_point_task(p, cost_path, perf, a) for p, a in zip(batch, accuracies, strict=True)]


def batches(todo: list[dict], group_of, size: int = BATCH) -> list[list[dict]]:
    """``todo`` cut into batches of at most ``size`` points with the same ``group_of(point)``
    (the key of their event model), in the order of their first point. One Dask task per batch:
    the scheduler handles ~1/size as many point tasks (its ~1 ms per task stays off the sweep's
    critical path) while a batch is still short enough to balance the load."""
    groups: dict = {}
    for p in todo:
        groups.setdefault(group_of(p), []).append(p)
    return [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]


def _task_name(kind: str, key) -> str:
    """A Dask key for a task of ``kind`` computing ``key``: the same work, the same name."""
    return f"{kind}-" + hashlib.sha256(repr(key).encode()).hexdigest()[:16]


def _identity(point: dict) -> dict:
    return {"id": point["id"], "index": point["index"], "network": point["network"],
            **{k: point["arch"][k] for k in point["arch"]}}


def _verify_task(point: dict, directory: str, images: int) -> dict:
    """Generate the point's accelerator into ``directory`` and simulate ``images`` images."""
    try:
        arch, budget = arch_of(point["arch"])
        generate(directory, point["network"], arch, core_budget=budget, progress=False)
        f = simulate(directory, images, progress=False)
        result = {"verify_passed": f.passed, "verify_bit_exact": f.bit_exact,
                  "verify_images": f.images, "verify_cycles_per_image": f.cycles_per_image,
                  "verify_cycles_ratio": f.cycles_per_image_ratio,
                  "verify_latency_ratio": f.latency_ratio, "verify_error": ""}
    except Exception as e:  # noqa: BLE001 - recorded with the point
        result = {"verify_passed": False, "verify_error": f"{type(e).__name__}: {e}"}
    return {"id": point["id"], "kind": "verify", **result}


# --- Pareto fronts -------------------------------------------------------------------------------

def pareto(rows: list[dict], objectives) -> list[dict]:
    """The rows no other row dominates on ``objectives`` (rows missing one are left out)."""

    rows = [r for r in rows if all(r.get(o) is not None for o in objectives)]
    if not rows:
        return []
    v = np.array([[OBJECTIVES[o] * r[o] for o in objectives] for r in rows], dtype=float)
    keep = []
    for i in range(len(rows)):
        dominated = np.any(np.all(v >= v[i], axis=1) & np.any(v > v[i], axis=1))
        if not dominated:
            keep.append(rows[i])
    return keep


# --- persistence ---------------------------------------------------------------------------------

class _Journal:
    """The append-only results file: one JSON object per line, fsynced as it is written."""

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "a", encoding="utf-8")

    def append(self, record: dict) -> None:
        self.file.write(json.dumps(record, default=_plain) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self):
        self.file.close()


def _plain(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_results(path: Path) -> tuple[dict, dict]:
    """``(points, verified)``: the last record of each point id and of each verified id in a
    results file. A torn last line (a client killed while writing it) is ignored."""
    found, verified = {}, {}
    if not path.exists():
        return found, verified
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        (verified if record.get("kind") == "verify" else found)[record["id"]] = record
    return found, verified


def _write_atomic(path: Path, text: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(text if isinstance(text, bytes) else text.encode())
    tmp.replace(path)


# --- the sweep -----------------------------------------------------------------------------------

class _Progress:
    """Points done and failed: a tqdm bar on a terminal, plain lines (at most one per
    ``every`` seconds, and the last) otherwise."""

    def __init__(self, total: int, done: int, enabled: bool, every: float = 10.0):
        self.total, self.done, self.failed, self.every = total, done, 0, every
        self.enabled, self.last = enabled, time.monotonic()
        self.bar = None
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=done, desc="imcflow explore", unit="pt",
                            file=sys.stderr, dynamic_ncols=True)

    def update(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.failed} failed", refresh=False)
            self.bar.update()
        elif self.enabled and (time.monotonic() - self.last >= self.every
                               or self.done == self.total):
            self.last = time.monotonic()
            print(f"imcflow explore: {self.done}/{self.total} points done, {self.failed} failed",
                  file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _client(scheduler: str | None, workers: int | None):
    """A Dask client of ``scheduler``, or of a new local cluster of ``workers`` processes."""
    # Dask is imported by the commands that distribute (about 1 s), not by sweep-file readers
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as e:
            raise UserError(f"--scheduler: cannot reach {scheduler!r}: {e}") from None
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                           processes=True, dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _prepare(sweep_path: Path, out: Path, resume: bool, force: bool) -> Sweep:
    """Check ``out`` and start (or continue) it: the sweep copy and the marker."""

    sweep = load_sweep(sweep_path)
    if resume:
        if not (out / RESULTS).is_file() or not (out / SWEEP_COPY).is_file():
            raise UserError(f"--resume: {str(out)!r} holds no sweep started by imcflow explore "
                            f"({RESULTS} and {SWEEP_COPY})")
        if (out / SWEEP_COPY).read_text() != sweep.text:
            raise UserError(f"--resume: {sweep_path} differs from the sweep {str(out)!r} was "
                            f"started with ({out / SWEEP_COPY}); resume with that file")
        return sweep
    if (out / RESULTS).exists():
        raise UserError(f"-o: {str(out)!r} holds the results of a sweep; add --resume to "
                        f"continue it, or name a new directory")
    target = check_output_directory(out, force)
    if target.exists():
        for child in target.iterdir():  # an imcflow directory (or --force): replaced whole
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    target.mkdir(parents=True, exist_ok=True)
    (target / SWEEP_COPY).write_text(sweep.text)
    (target / RESULTS).touch()
    _mark(target)
    return sweep


def _mark(out: Path) -> None:
    """The marker listing every file in ``out`` (`imcflow.files`)."""

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                   if p.is_file() and p.name != MARKER)
    marker = {"imcflow": __version__,
              "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]), "files": files}
    _write_atomic(out / MARKER, json.dumps(marker, indent=1) + "\n")


def explore(sweep_path, out, *, scheduler: str | None = None, workers: int | None = None,
            resume: bool = False, force: bool = False, progress: bool = True) -> dict:
    """Run the sweep of ``sweep_path`` into the directory ``out``; return the summary that
    ``--json`` prints (``points``, ``completed``, ``failed``, ``results``, ...)."""
    from distributed import as_completed

    out = Path(out)
    sweep = _prepare(Path(sweep_path), out, resume, force)
    todo_all = points(sweep)
    done, verified = read_results(out / RESULTS)
    todo = [p for p in todo_all if p["id"] not in done]
    start = time.monotonic()
    journal = _Journal(out / RESULTS)
    client, cluster = _client(scheduler, workers)
    bar = _Progress(len(todo_all), len(todo_all) - len(todo), progress)
    try:
        accuracy_tasks, performance_tasks = {}, {}

        def performance_future(p: dict):
            """The event-model task of point ``p`` (submitted on first use)."""
            key = performance_key(p["network"], p["arch"])
            if key not in performance_tasks:
                performance_tasks[key] = client.submit(_performance_task, key, key=_task_name(
                    "performance", key), priority=PRIORITY["performance"], pure=False)
            return performance_tasks[key]

        def accuracy_futures(p: dict) -> list:
            """The accuracy tasks of point ``p``, one per noise seed (submitted on first use)."""
            if not (sweep.accuracy and has_labels(p["network"], sweep.dataset)):
                return []
            keys = [accuracy_key(p["network"], p["arch"], seed)
                    for seed in noise_seeds(p["arch"], sweep.noise_seeds)]
            for key in keys:
                if key not in accuracy_tasks:
                    accuracy_tasks[key] = client.submit(
                        _accuracy_task, key, sweep.dataset, priority=PRIORITY["accuracy"],
                        key=_task_name("accuracy", (key, sweep.dataset)), pure=False)
            return [accuracy_tasks[key] for key in keys]

        futures, batch_of = [], {}
        for batch in batches(todo, lambda p: performance_future(p).key):
            futures.append(client.submit(
                _batch_task, batch, sweep.cost, performance_future(batch[0]),
                [accuracy_futures(p) for p in batch], pure=False, priority=PRIORITY["points"],
                key=_task_name("points", [p["id"] for p in batch])))
            batch_of[futures[-1].key] = batch
        for future in as_completed(futures):
            try:
                records = future.result()
            except Exception as e:  # noqa: BLE001 - its event model failed (an invalid point)
                records = [{**_identity(p), "status": "failed", "error": f"{type(e).__name__}: {e}"}
                           for p in batch_of[future.key]]
            for record in records:
                if record["id"] in done:
                    continue
                done[record["id"]] = record
                journal.append(record)
                bar.update(record["status"] != "ok")
            future.release()
        bar.close()  # before the verification's lines
        rows = [done[p["id"]] for p in todo_all]
        chosen = _verify(client, sweep, rows, verified, out, journal)
    finally:
        bar.close()
        journal.close()
        client.close()
        if cluster is not None:
            cluster.close()
    tasks = len(futures) + len(accuracy_tasks) + len(performance_tasks)
    return _finish(sweep, out, todo_all, len(todo_all) - len(todo), chosen, tasks,
                   time.monotonic() - start)


def _verify(client, sweep: Sweep, rows, verified: dict, out: Path, journal) -> list[str]:
    """Generate and simulate the first ``sweep.verify`` points of the Pareto front (by index)
    not verified yet; returns the ids chosen."""
    if not sweep.verify:
        return []
    ok = [r for r in rows if r["status"] == "ok"]
    front = sorted(pareto(ok, sweep.objectives), key=lambda r: r["index"])[:sweep.verify]
    by_id = {p["id"]: p for p in ({"id": r["id"], "index": r["index"], "network": r["network"],
                                   "arch": {k: r[k] for k in _arch_fields()}} for r in front)}
    todo = [i for i in by_id if i not in verified]
    futures = [client.submit(_verify_task, by_id[i], str(out / "verify" / i), sweep.verify_images,
                             key=f"verify-{i}", retries=1, pure=False) for i in todo]
    from distributed import as_completed
    for future in as_completed(futures):
        record = future.result()
        verified[record["id"]] = record
        journal.append(record)
        print(f"imcflow explore: verified {record['id']}: "
              f"{'passed' if record['verify_passed'] else 'FAILED ' + record.get('verify_error', '')}",
              file=sys.stderr, flush=True)
    return list(by_id)


@functools.lru_cache(maxsize=1)
def _arch_fields() -> tuple:
    return tuple(f.name for f in fields(Arch))


def _finish(sweep: Sweep, out: Path, todo_all, resumed: int, chosen, tasks: int,
            seconds: float) -> dict:
    """Tables, report and plots from the results file; the summary (``tasks``: the Dask tasks
    this run submitted, shared work and point batches)."""
    done, verified = read_results(out / RESULTS)
    rows = []
    for p in todo_all:
        row = dict(done[p["id"]])
        row.update({k: v for k, v in verified.get(p["id"], {}).items() if k.startswith("verify_")})
        rows.append(row)
    columns = ["id", "index", "network", "status", "error", *_arch_fields(), *FIGURES, "seconds",
               "worker", "verify_passed", "verify_bit_exact", "verify_images",
               "verify_cycles_per_image", "verify_cycles_ratio", "verify_latency_ratio",
               "verify_error"]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in columns})
    _write_atomic(out / TABLE, text.getvalue())
    ok = [r for r in rows if r["status"] == "ok"]
    front = pareto(ok, sweep.objectives)
    plots = [_plot(ok, x, y, out) for x, y in sweep.plots]
    summary = {"sweep": sweep.name, "directory": str(out), "points": len(rows),
               "completed": len(ok), "failed": len(rows) - len(ok), "resumed": resumed,
               "results": str(out / TABLE), "journal": str(out / RESULTS),
               "report": str(out / "report.md"), "plots": [str(out / p) for p in plots if p],
               "pareto": [r["id"] for r in front], "objectives": list(sweep.objectives),
               "verified": {i: bool(verified[i].get("verify_passed")) for i in chosen if i in verified},
               "tasks": tasks, "seconds": round(seconds, 2)}
    _write_atomic(out / "results.json", json.dumps({**summary, "rows": rows}, indent=1,
                                                   default=_plain) + "\n")
    _write_atomic(out / "report.md", _report(sweep, rows, front, plots, summary))
    _mark(out)
    return summary


def _plot(rows, x: str, y: str, out: Path) -> str | None:
    """``pareto-<x>-<y>.png``: every point, the front of the two objectives joined."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for network in sorted({r["network"] for r in rows}):
        mine = [r for r in rows if r["network"] == network]
        ax.scatter([r[x] for r in mine], [r[y] for r in mine], s=14, alpha=0.6,
                   label=Path(network).stem)
    front = sorted(pareto(rows, (x, y)), key=lambda r: r[x])
    ax.plot([r[x] for r in front], [r[y] for r in front], "k.-", lw=1, label="Pareto front")
    for axis, name in ((ax.set_xscale, x), (ax.set_yscale, y)):
        values = [r[name] for r in rows]
        if min(values) > 0 and max(values) / min(values) > 100:
            axis("log")
    ax.set_xlabel(f"{x} ({'higher' if OBJECTIVES[x] > 0 else 'lower'} is better)")
    ax.set_ylabel(f"{y} ({'higher' if OBJECTIVES[y] > 0 else 'lower'} is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    name = f"pareto-{x}-{y}.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    plt.close(fig)
    _write_atomic(out / name, buffer.getvalue())
    return name


def _fmt(v) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _report(sweep: Sweep, rows, front, plots, summary) -> str:
    swept = list(sweep.params)
    shown = ["accuracy", "throughput_ips", "latency_us", "energy_per_image_j", "tops_per_w",
             "area_mm2", "crossbars", "activation_memory_bits"]
    head = ["id", "network", *swept, *shown]
    lines = [f"# Sweep `{sweep.name}`", "",
             f"{summary['points']} points ({sweep.mode}{'' if sweep.mode == 'grid' else f', seed {sweep.seed}'}) "
             f"over {', '.join(Path(n).stem for n in sweep.networks)}; {summary['completed']} "
             f"completed, {summary['failed']} failed. Swept: "
             + ", ".join(f"`{k}` {list(v)}" for k, v in sweep.params.items()) + ".", "",
             f"## Pareto front over {', '.join(sweep.objectives)}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(front, key=lambda r: r["index"]):
        lines.append("| " + " | ".join(_fmt(r.get(k)) if k != "network" else Path(r[k]).stem
                                         for k in head) + " |")
    lines.append("")
    lines += [f"![{p}]({p})" for p in plots if p]
    if summary["verified"]:
        lines += ["", "## Verified in RTL", "", "| id | passed | bit-exact | cycles ratio |",
                  "|---|---|---|---|"]
        by_id = {r["id"]: r for r in rows}
        for i in summary["verified"]:
            r = by_id[i]
            lines.append(f"| {i} | {r.get('verify_passed')} | {r.get('verify_bit_exact')}/"
                         f"{r.get('verify_images')} | {_fmt(r.get('verify_cycles_ratio'))} |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "## Failed points", "", "| id | network | error |", "|---|---|---|"]
        lines += [f"| {r['id']} | {Path(r['network']).stem} | {r['error']} |" for r in failed]
    lines += ["", f"All points: [{TABLE}]({TABLE}) (one row per point), [results.json](results.json).",
              ""]
    return "\n".join(lines)
