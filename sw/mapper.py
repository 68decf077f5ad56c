"""The mapper: weights onto crossbars, activations into buffers, replication for pipeline balance.

`map_network` turns a network topology (a `Network`; weights are not needed) and an `Arch` into a
`Mapping` with one `LayerMapping` per layer, after Dazzi et al. (2021):

- conv and dense layers are *crossbar* stages: ``k*k*C_in`` rows and ``C_out`` columns split into
  row and column tiles, replicated ``r`` times when a core budget allows (`replication`);
- max and average pooling are *pool* stages, global average pooling a *gap* stage, a residual
  add a *join* stage with a skip FIFO, the network input the *source*;
- ReLU and flatten are *fused*: the producing block applies the ReLU, and a flatten only changes
  how the next dense layer reads the same pixel stream (as an ``H x H`` kernel).

docs/mapper.md explains the mapping, the replication algorithm and why it is optimal, the buffer
sizes and the skip FIFO depths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.arch import Arch, load_arch
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.ir import Network, Shape
from imcflow.sw.ops import Op, op_for
from imcflow.sw.timing import BlockTiming, fill_latency, link_latency, window_needs, window_ports

__all__ = ["LayerMapping", "Mapping", "map_network", "replication", "resolve_budget",
           "buffer_for", "INPUT_BITS"]

#: bits per channel of the network input (unsigned 8-bit images, whatever ``act_bits`` is)
INPUT_BITS = 8


@dataclass(frozen=True)
class LayerMapping:
    """Where one layer runs and what it costs.

    Attributes
    ----------
    name, kind : str
        The IR layer's name and kind.
    role : str
        ``source``, ``crossbar``, ``pool``, ``gap``, ``join`` or ``fused`` (no stage of its own:
        ReLU and flatten, done by the stage named in ``inputs``).
    inputs : tuple of str
        The stages whose output streams this one consumes (fused layers resolved).
    in_shape, out_shape : Shape
        The pixel stream consumed (for a dense layer after a flatten: the unflattened map) and the
        one produced (``in_shape`` is None for the source).
    kernel, stride, padding : int
        Window geometry on ``in_shape`` (crossbar and pool stages; 0 otherwise).
    rows, cols : int
        Crossbar matrix as laid out on the crossbars (crossbar stages): ``kernel**2 * C_in`` rows
        and ``C_out`` columns for a conv or dense layer (the layer kind's `~imcflow.sw.ops.Op.
        matrix`).
    weights : int
        Cells of that matrix that hold a weight (``rows * cols`` but for a block-diagonal layout).
    row_tiles, col_tiles : int
        ``ceil(rows / arch.rows)`` and ``ceil(cols / arch.cols)``.
    empty : tuple of (int, int)
        The tiles of that grid, ``(row tile, column tile)``, that hold no weight (a
        block-diagonal layout's), which are not built (`empty_tiles` of them, `built_tiles`
        the others).
    replication : int
        Copies of the layer's tiles; copy ``j mod r`` computes output pixel ``j``.
    tile_cols : int
        Used columns of the widest column tile; the MVM interval depends on it.
    row_folds : int
        Steps over which the layer's tiles sum their rows (`imcflow.sw.arch.Arch.row_folds`, more
        with ``slack_folds`` where the stage has slack; 1 for other stages).
    interval : int
        Cycles between the windows one copy accepts: ``arch.mvm_interval(tile_cols)`` with the
        layer's ``row_folds`` (1 for other stages).
    stage_cycles : int
        Cycles per image of this stage alone: ``max(ceil(P_out / r) * interval, P_in, P_out)``
        for a crossbar stage (every link carries at most one beat per cycle), ``P_in`` for the
        others (one input pixel per cycle), ``P_out`` for the source, 0 when fused.
    buffer : str
        ``line`` or ``frame`` (window buffer of a crossbar or pool stage), ``skip`` (the skip
        FIFO of a join) or ``none``.
    buffer_words, buffer_bits : int
        Its size in pixels of ``C`` channels, and in bits.
    skip_input : str
        For a join: the input whose FIFO holds the skip path (``""`` otherwise).
    skip_min_words : int
        For a join: the skip FIFO depth below which the pipeline deadlocks; ``buffer_words``
        adds the margin for beats in flight (docs/mapper.md).
    requant_passes : int
        With ``arch.requant_lanes``, the cycles the stage's shared requantization multipliers
        take per output pixel: for a join or global pool ``ceil(channels / requant_lanes)`` or
        as many as the slowest stage's time allows; for a crossbar layer its accumulators'
        (`imcflow.sw.arch.CrossbarParams.requant_passes` of its widest column tile, which they
        derive themselves). 1 otherwise. The timing contract reads it (`sw.timing`).
    window_passes : int
        With ``arch.window_ports``, the cycles a crossbar layer's window source takes to read one
        window through ``ceil(kernel**2 / window_passes)`` read ports
        (`imcflow.sw.timing.window_ports`): ``ceil(kernel**2 / window_ports)`` or as many as keep
        the stage within the slowest stage's time. 1 otherwise (a port per tap).
    """

    name: str
    kind: str
    role: str
    inputs: tuple[str, ...]
    in_shape: Shape | None
    out_shape: Shape
    kernel: int = 0
    stride: int = 0
    padding: int = 0
    rows: int = 0
    cols: int = 0
    weights: int = 0
    row_tiles: int = 0
    col_tiles: int = 0
    empty: tuple[tuple[int, int], ...] = ()
    replication: int = 1
    tile_cols: int = 0
    row_folds: int = 1
    interval: int = 1
    stage_cycles: int = 0
    buffer: str = "none"
    buffer_words: int = 0
    buffer_bits: int = 0
    skip_input: str = ""
    skip_min_words: int = 0
    requant_passes: int = 1
    window_passes: int = 1

    @property
    def op(self) -> Op:
        """The layer kind's `~imcflow.sw.ops.Op`, whose ``latency`` is the stage's timing."""
        return op_for(self.kind)

    @property
    def empty_tiles(self) -> int:
        return len(self.empty)

    def built_tiles(self, arch: Arch) -> list[tuple[int, int]]:
        """``(rows, cols)`` of the matrix in each tile one copy builds (all but the `empty`
        ones), row tile by row tile: the last row and column tiles may be partial."""
        empty = set(self.empty)
        return [(min(arch.rows, self.rows - t * arch.rows),
                 min(arch.cols, self.cols - u * arch.cols))
                for t in range(self.row_tiles) for u in range(self.col_tiles)
                if (t, u) not in empty]

    @property
    def tiles(self) -> int:
        """Crossbars of one copy."""
        return self.row_tiles * self.col_tiles - self.empty_tiles

    @property
    def crossbars(self) -> int:
        return self.tiles * self.replication

    @property
    def input_pixels(self) -> int:
        return self.in_shape.pixels if self.in_shape is not None else 0

    @property
    def output_pixels(self) -> int:
        return self.out_shape.pixels

    @property
    def geometry(self) -> WindowGeometry | None:
        """The `WindowGeometry` of a window stage (``crossbar`` or ``pool``): its input map and
        window; None for the other roles."""
        if self.role not in ("crossbar", "pool"):
            return None
        s = self.in_shape
        return WindowGeometry(s.h, s.w, s.c, self.kernel, self.stride, self.padding)

    def utilization(self, arch: Arch) -> float:
        """Fraction of the cells of this layer's crossbars that hold weights."""
        return self.weights / (self.tiles * arch.rows * arch.cols) if self.tiles else 0.0

    def last_needed(self) -> np.ndarray:
        """For each output pixel of an image, the raster index of the last input pixel (of every
        input, for a join) that must have arrived before it can be produced: outputs leave in
        order, so this is the running maximum of what the windows up to it need."""
        s = self.in_shape
        if self.role == "join":
            return np.arange(self.output_pixels)
        if self.role == "gap":
            return np.full(self.output_pixels, s.pixels - 1)
        return window_needs(self.geometry, strategy=self.buffer)[1]

    def to_json(self, arch: Arch) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["inputs"] = list(self.inputs)
        d["in_shape"] = None if self.in_shape is None else [self.in_shape.h, self.in_shape.w,
                                                             self.in_shape.c]
        d["out_shape"] = [self.out_shape.h, self.out_shape.w, self.out_shape.c]
        d["empty"] = [list(tile) for tile in self.empty]
        d.update(empty_tiles=self.empty_tiles)
        d.update(tiles=self.tiles, crossbars=self.crossbars, input_pixels=self.input_pixels,
                 output_pixels=self.output_pixels, utilization=round(self.utilization(arch), 6))
        return d


@dataclass(frozen=True)
class Mapping:
    """A network mapped onto an architecture: the `LayerMapping` of every layer, in network order.

    Attributes
    ----------
    network : str
    arch : Arch
    layers : tuple of LayerMapping
    core_budget : int or None
        The crossbars replication could use (None: no replication).
    timing : BlockTiming
        Block latencies used for the skip FIFO margins and by `imcflow.sw.perf`.
    """

    network: str
    arch: Arch
    layers: tuple[LayerMapping, ...]
    core_budget: int | None
    timing: BlockTiming

    def layer(self, name: str) -> LayerMapping:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def stages(self) -> list[LayerMapping]:
        """The layers that are pipeline stages (all but the fused ones), in network order."""
        return [l for l in self.layers if l.role != "fused"]

    @property
    def crossbar_layers(self) -> list[LayerMapping]:
        return [l for l in self.layers if l.role == "crossbar"]

    @property
    def output(self) -> str:
        """The stage producing the network's output."""
        last = self.layers[-1]
        return last.inputs[0] if last.role == "fused" else last.name

    @property
    def crossbars(self) -> int:
        """Crossbars (one per core) in total, replicas included."""
        return sum(l.crossbars for l in self.layers)

    @property
    def min_crossbars(self) -> int:
        """Crossbars without replication: the smallest possible core budget."""
        return sum(l.tiles for l in self.layers)

    @property
    def cycles_per_image(self) -> int:
        """Throughput bound: the longest stage time."""
        return max(l.stage_cycles for l in self.layers)

    @property
    def bottleneck(self) -> list[str]:
        """The stages whose time is the throughput bound."""
        return [l.name for l in self.layers if l.stage_cycles == self.cycles_per_image]

    @property
    def throughput_ips(self) -> float:
        """Images per second at the bound, at ``arch.clock_mhz``."""
        return self.arch.clock_mhz * 1e6 / self.cycles_per_image

    @property
    def activation_memory_bits(self) -> int:
        """Window buffers and skip FIFOs, in bits."""
        return sum(l.buffer_bits for l in self.layers)

    @property
    def utilization(self) -> float:
        """Fraction of all crossbar cells that hold weights."""
        used = sum(l.weights * l.replication for l in self.layers)
        return used / (self.crossbars * self.arch.rows * self.arch.cols)

    def to_json(self) -> dict:
        """The mapping as one JSON-ready dict: ``layers`` and the totals."""
        return {
            "network": self.network,
            "arch": self.arch.to_dict(),
            "buffer": self.arch.buffer,
            "core_budget": self.core_budget,
            "layers": [l.to_json(self.arch) for l in self.layers],
            "crossbars": self.crossbars,
            "min_crossbars": self.min_crossbars,
            "utilization": round(self.utilization, 6),
            "cycles_per_image_bound": self.cycles_per_image,
            "throughput_bound_ips": self.throughput_ips,
            "bottleneck": self.bottleneck,
            "activation_memory_bits": self.activation_memory_bits,
            "skip_words": {l.name: l.buffer_words for l in self.layers if l.role == "join"},
        }


def buffer_for(strategy: str, geometry: WindowGeometry) -> tuple[str, int]:
    """The window buffer of a layer with windows ``geometry`` under ``strategy``:
    ``(kind, words)``.

    ``line``: ``geometry.line_words`` pixels. ``frame``: a ping-pong pair of images, ``2*H*W``.
    ``auto``: the line buffer, unless its window spans a whole image of more than one pixel (e.g.
    a dense layer after a flatten), where a line buffer would hold the next image back until the
    window is read; a frame buffer lets the next image stream in meanwhile.
    """
    words, pixels = geometry.line_words, geometry.pixels
    if strategy == "frame" or (strategy == "auto" and words == pixels > 1):
        return "frame", 2 * pixels
    return "line", words


def resolve_budget(value, minimum: int) -> int | None:
    """A core budget in crossbars from ``None``, an integer, ``"N"`` or ``"Kx"`` (``K`` times
    ``minimum``, rounded down); a `UserError` below ``minimum``."""
    if value is None:
        return None
    text = str(value).strip().lower()
    try:
        factor = float(text[:-1]) if text.endswith("x") else 1.0
        budget = math.floor(factor * minimum) if text.endswith("x") else int(text)
    except (ValueError, OverflowError):
        factor = budget = None
    if budget is None or isinstance(value, bool) or factor <= 0:
        raise UserError(f"core_budget: must be a number of crossbars (e.g. 64) or a multiple of "
                        f"the minimum (e.g. 2x), not {value!r}")
    _check_budget(budget, minimum)
    return budget


def _check_budget(budget: int, minimum: int) -> None:
    if budget < minimum:
        raise UserError(f"core_budget: core budget {budget} is below the minimum {minimum} "
                        f"crossbars (one copy of every conv and dense layer)")


def replication(pixels, intervals, tiles, budget: int, floors=None, bound: int = 0) -> list[int]:
    """Copies per crossbar layer that minimize the pipeline's longest stage time within ``budget``.

    Layer ``l`` with ``r`` copies takes ``max(ceil(pixels[l] / r) * intervals[l], floors[l])``
    cycles and ``r * tiles[l]`` crossbars; ``bound`` is the longest time of the stages that cannot
    be replicated. Returns, among the assignments with the smallest longest stage time, the one
    with the fewest crossbars (every layer's fewest copies). Binary search over the stage time
    ``T``: the fewest copies reaching ``T`` are ``ceil(P / floor(T / t))``, and their total is
    non-increasing in ``T`` (docs/mapper.md has the optimality argument).
    """
    p = np.asarray(pixels, dtype=np.int64)
    t = np.asarray(intervals, dtype=np.int64)
    n = np.asarray(tiles, dtype=np.int64)
    floors = np.zeros_like(p) if floors is None else np.asarray(floors, dtype=np.int64)
    _check_budget(budget, int(n.sum()))

    def copies(time):
        return -(-p // (time // t))

    hi = int(np.maximum(p * t, floors).max(initial=bound))
    lo = int(max(bound, floors.max(initial=0), t.max(initial=0)))
    if lo >= hi:
        return [1] * len(p)
    while lo < hi:  # smallest T in [lo, hi] whose fewest copies fit the budget
        mid = (lo + hi) // 2
        if int((copies(mid) * n).sum()) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return [int(r) for r in copies(lo)]


def map_network(net: Network, arch: Arch | str | None = None, *, core_budget=None,
                timing: BlockTiming | None = None) -> Mapping:
    """Map ``net`` onto ``arch`` (an `Arch`, preset name, TOML path or None for the default).

    ``core_budget`` (crossbars, ``"Kx"`` for K times the unreplicated minimum, or None for
    ``arch.core_budget``) enables replication; the buffer strategy is ``arch.buffer``; ``timing``
    (default `BlockTiming()`) sizes the in-flight margin of the skip FIFOs.
    """
    arch = load_arch(arch)
    timing = timing or BlockTiming()
    stage_of: dict[str, str] = {}  # layer -> the stage producing its output stream
    layers: list[LayerMapping] = []
    for layer in net:
        role = layer.op.role
        inputs = tuple(stage_of[s] for s in layer.inputs)
        out = net.shapes[layer.name]
        if role == "fused":
            stage_of[layer.name] = inputs[0]
            layers.append(LayerMapping(layer.name, layer.kind, role, inputs,
                                       net.shapes[layer.inputs[0]], out))
            continue
        stage_of[layer.name] = layer.name
        if role == "source":
            layers.append(LayerMapping(layer.name, layer.kind, role, (), None, out,
                                       stage_cycles=out.pixels))
            continue
        layers.append(_map_stage(layer, inputs, net.shapes[inputs[0]], net.shapes[layer.inputs[0]],
                                 out, arch, net.input.name))

    if not any(l.role == "crossbar" for l in layers):
        raise UserError(f"network {net.name!r}: has no conv or dense layer to map onto crossbars")
    minimum = sum(l.tiles for l in layers)
    budget = resolve_budget(arch.core_budget if core_budget is None else core_budget, minimum)
    if budget is not None:
        xbar = [l for l in layers if l.role == "crossbar"]
        copies = replication([l.output_pixels for l in xbar], [l.interval for l in xbar],
                             [l.tiles for l in xbar], budget,
                             floors=[max(l.input_pixels, l.output_pixels) for l in xbar],
                             bound=max(l.stage_cycles for l in layers if l.role != "crossbar"))
        chosen = {l.name: r for l, r in zip(xbar, copies)}
        layers = [replace(l, replication=chosen[l.name],
                          stage_cycles=_crossbar_cycles(l, chosen[l.name]))
                  if l.role == "crossbar" else l for l in layers]
    if arch.slack_folds:
        slowest = max(l.stage_cycles for l in layers)
        layers = [_slack_folded(l, arch, slowest) if l.role == "crossbar" else l for l in layers]
    if arch.requant_lanes:
        slowest = max(l.stage_cycles for l in layers)
        layers = [_shared_requant(l, arch, slowest) if l.role in ("join", "gap", "crossbar")
                  else l for l in layers]
    if arch.window_ports:
        slowest = max(l.stage_cycles for l in layers)
        layers = [_window_read(l, arch, slowest) if l.role == "crossbar" else l for l in layers]
    mapping = Mapping(net.name, arch, tuple(layers), budget, timing)
    return replace(mapping, layers=tuple(_with_skip_fifo(mapping, l) if l.role == "join" else l
                                         for l in mapping.layers))


def _slack_folded(layer: LayerMapping, arch: Arch, slowest: int) -> LayerMapping:
    """``layer`` with the most row folds whose stage time stays within ``slowest`` cycles, then
    the fewest folds giving the same rows per step (the same adder trees, fewer steps)."""
    rows = min(arch.rows, layer.rows)

    def folded(folds):
        l = replace(layer, row_folds=folds,
                    interval=max(arch.mvm_cycles, arch.crossbar.steps(layer.tile_cols, folds)))
        return replace(l, stage_cycles=_crossbar_cycles(l, layer.replication))

    folds = layer.row_folds
    while folds < rows and folded(folds + 1).stage_cycles <= slowest:
        folds += 1
    return folded(-(-rows // -(-rows // folds)))


def _shared_requant(layer: LayerMapping, arch: Arch, slowest: int) -> LayerMapping:
    """A join or global pool whose ``arch.requant_lanes`` multipliers per lane pair (join) or
    lane (pool) are shared over passes: ``ceil(channels / requant_lanes)``, or as many as keep
    its stage time within ``slowest`` cycles (a join's pixels each take that many cycles; a
    pool's image takes its pixels or its passes); a crossbar layer with its accumulators'
    passes (`imcflow.sw.arch.CrossbarParams.requant_passes`, which they derive themselves)."""
    if layer.role == "crossbar":
        params = arch.replace(row_folds=layer.row_folds).crossbar
        return replace(layer, requant_passes=params.requant_passes(layer.tile_cols))
    passes = -(-layer.out_shape.c // arch.requant_lanes)
    if layer.role == "join":
        passes = max(1, min(passes, slowest // layer.input_pixels))
        return replace(layer, requant_passes=passes, stage_cycles=layer.input_pixels * passes)
    passes = max(1, min(passes, slowest))
    return replace(layer, requant_passes=passes, stage_cycles=max(layer.input_pixels, passes))


def _window_read(layer: LayerMapping, arch: Arch, slowest: int) -> LayerMapping:
    """A crossbar layer whose window source reads a window over ``ceil(kernel**2 /
    arch.window_ports)`` cycles, or as many as keep its windows within ``slowest`` cycles per
    image, rounded to the fewest its read ports need (`imcflow.sw.timing.window_ports`)."""
    taps = layer.kernel ** 2
    passes = max(1, min(-(-taps // arch.window_ports), slowest // layer.output_pixels))
    _, passes = window_ports(taps, passes)
    return replace(layer, window_passes=passes,
                   stage_cycles=max(layer.stage_cycles, layer.output_pixels * passes))


def _crossbar_cycles(layer: LayerMapping, r: int) -> int:
    copies_time = -(-layer.output_pixels // r) * layer.interval
    return max(copies_time, layer.input_pixels, layer.output_pixels)


def _map_stage(layer, inputs, stream: Shape, logical: Shape, out: Shape, arch: Arch,
               source: str) -> LayerMapping:
    """The mapping of a stage before replication and skip FIFOs."""
    role = layer.op.role
    kernel, stride, padding = layer.op.window(layer)  # a dense layer reads 1x1 windows
    if stream != logical:  # the input went through a flatten: read the map as one H x H window
        if role != "crossbar" or (kernel, stride, padding) != (1, 1, 0):
            raise layer.error(f"cannot follow a flatten of the {stream} map; only a dense layer "
                              f"(or a 1x1 conv without padding) can")
        kernel = stream.h
    bits = INPUT_BITS if inputs[0] == source else arch.act_bits
    base = LayerMapping(layer.name, layer.kind, role, inputs, stream, out, kernel, stride, padding,
                        stage_cycles=stream.pixels)
    if role in ("gap", "join"):
        return base
    kind, words = buffer_for(arch.buffer, base.geometry)
    base = replace(base, buffer=kind, buffer_words=words, buffer_bits=words * stream.c * bits)
    if role == "pool":
        return base
    rows, cols, weights = layer.op.matrix(layer, kernel, stream, out, arch)
    tile_cols = min(arch.cols, cols)
    mapped = replace(base, rows=rows, cols=cols, weights=weights, row_tiles=-(-rows // arch.rows),
                     col_tiles=-(-cols // arch.cols),
                     empty=layer.op.empty_tiles(layer, kernel, stream, out, arch),
                     tile_cols=tile_cols, row_folds=arch.row_folds,
                     interval=arch.mvm_interval(tile_cols))
    return replace(mapped, stage_cycles=_crossbar_cycles(mapped, 1))


def _with_skip_fifo(mapping: Mapping, join: LayerMapping) -> LayerMapping:
    """``join`` with the depth of its skip FIFO (docs/mapper.md, "Skip FIFO depth").

    With ``F`` the fork (the latest stage both inputs descend from), ``L_p(j)`` is the last fork
    pixel that output ``j`` of input ``p`` needs (`LayerMapping.last_needed` composed along the
    path) and ``L(j) = max_p L_p(j)``. While the join waits for output ``j``, input ``p`` may
    already have produced every output computable from the fork pixels before ``L(j)``,
    ``R_p(L(j) - 1)``, and must hold them and the next one: ``max_j R_p(L(j) - 1) - j + 1``
    beats. The path that is never waited for needs one; the other is the skip path, whose FIFO
    below that minimum deadlocks the pipeline. For full rate it also holds what the fork emits
    while the main path lags behind in steady state: one image per stage that releases an image
    only after its last input (frame buffers, global pooling) beyond those of the skip path, and
    the beats the fork can emit during the main path's fill latency: one per window its consumers
    can take, every ``interval / r`` cycles for a crossbar stage.
    """
    stages = {l.name: l for l in mapping.stages}
    order = [l.name for l in mapping.stages]
    consumers = {name: sum(l.inputs.count(name) for l in mapping.stages) for name in order}

    def ancestors(name):
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(stages[n].inputs)
        return seen

    a, b = join.inputs
    fork = max(ancestors(a) & ancestors(b), key=order.index)
    needs = {fork: np.arange(stages[fork].output_pixels)}
    latency, frames = {fork: 0}, {fork: 0}
    for name in order[order.index(fork) + 1:order.index(join.name)]:
        s = stages[name]
        region = [q for q in s.inputs if q in needs]
        if region:
            last = s.last_needed()
            needs[name] = np.max([needs[q][last] for q in region], axis=0)
            latency[name] = fill_latency(s, mapping.arch, mapping.timing) + max(
                latency[q] + link_latency(mapping.timing, consumers[q]) for q in region)
            frames[name] = max(frames[q] for q in region) + (s.buffer == "frame" or s.role == "gap")
    need = np.maximum(needs[a], needs[b])
    index = np.arange(len(need))
    required = {p: int((np.searchsorted(needs[p], need - 1, side="right") - index).max())
                for p in (a, b)}
    skip, main = (a, b) if required[a] > required[b] else (b, a)
    if required[main] > 0:
        raise UserError(f"layer {join.name!r} (add): both inputs need a skip FIFO (neither path "
                        f"from {fork!r} is always the one waited for); not supported")
    lag = max(frames[main] - frames[skip], 0) * join.output_pixels
    in_flight = latency[main] + link_latency(mapping.timing, consumers[main])
    fed = [stages[n] for n in needs if fork in stages[n].inputs]
    interval = min(l.interval / l.replication if l.role == "crossbar" else 1 for l in fed)
    margin = math.ceil(in_flight / max(interval, 1))
    minimum = max(required[skip], 1)
    words = max(minimum, lag, mapping.timing.fifo_depth) + margin
    bits = INPUT_BITS if stages[skip].role == "source" else mapping.arch.act_bits
    return replace(join, buffer="skip", buffer_words=words,
                   buffer_bits=words * join.out_shape.c * bits, skip_input=skip,
                   skip_min_words=minimum)
