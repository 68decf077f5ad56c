"""The performance model of a mapped pipeline: stage times, throughput, latency (docs/mapper.md).

Two models of the same pipeline, both driven by a `~imcflow.sw.mapper.Mapping` and its block
latencies (``mapping.timing``, a `~imcflow.sw.timing.BlockTiming`: by default the timing contract
of `imcflow.sw.timing`, which the RTL blocks read):

- closed form: the throughput bound (one image per longest stage time, `Mapping.cycles_per_image`)
  and, when every window buffer is a frame buffer, the exact latency of one image
  (`frame_latency`);
- the event model (`simulate`): the cycle of every handshake of every stage, for one or more
  images back to back, under the rules of the RTL blocks: window buffers that stall the producer
  when full, copies that accept a window every MVM interval, bounded FIFOs between stages. It
  gives the latency for any buffer strategy and the steady-state cycles per image, at full rate
  or under given idle cycles of the input and backpressure of the output (the seeded
  `imcflow.verif.patterns.stall_mask` a simulation applies), cycle for cycle.

Times are clock cycles from reset release (cycle 0): the first input pixel's handshake is cycle 0
unless the input is idle then.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from imcflow.errors import UserError
from imcflow.sw.timing import (accept_pixels, capacity, engine_latency, fill_latency,
                               join_registers, link_latency, passes_latency, read_windows,
                               steps, window_rules)

__all__ = ["StageTiming", "Schedule", "Performance", "simulate", "frame_latency", "analyze"]


def _previous_on_copy(windows: int, per_image: int, r: int) -> np.ndarray:
    """For each window (over all images), the previous window of the same copy, or -1: copy
    ``j mod r`` takes output pixel ``j`` of each image, so each image starts again at copy 0."""
    n = np.arange(windows)
    local, image = n % per_image, n // per_image
    last_of_copy = local + r * ((per_image - 1 - local) // r)  # the copy's last pixel of an image
    previous_image = np.where(image > 0, n - local - per_image + last_of_copy, -1)
    return np.where(local >= r, n - r, previous_image)


# --- the event model -----------------------------------------------------------------------------

class _TileClock:
    """The cycles in which one crossbar copy's tile pipeline moves (`~imcflow.hw.crossbar.
    CrossbarTile`: issue stage, ``mac_stages`` and its stage 2 advance together on ``en``, and so
    does the counter of the MVM interval).

    ``en`` is low only while a window's first finished group waits in stage 2 for the output
    register, which still holds the previous window's result: the blocks ``[start, end)``,
    appended in time order. Cycles with ``en`` are numbered from 0 (their *index*).
    """

    def __init__(self):
        self.starts, self.ends, self.after, self.blocked = [], [], [], []

    def index(self, cycle: int) -> int:
        """The index of the first cycle with ``en`` at or after ``cycle``."""
        j = bisect_right(self.starts, cycle) - 1
        if j < 0:
            return cycle
        if cycle < self.ends[j]:
            return self.after[j]
        return cycle - self.blocked[j]

    def cycle(self, index: int) -> int:
        """The cycle with ``en`` of index ``index``."""
        j = bisect_right(self.after, index)
        return index + (self.blocked[j - 1] if j else 0)

    def block(self, start: int, end: int) -> None:
        total = (self.blocked[-1] if self.blocked else 0) + end - start
        self.after.append(start - total + end - start)
        self.starts.append(start)
        self.ends.append(end)
        self.blocked.append(total)


class _Stage:
    """Handshake times of one stage, appended as soon as their constraints are known.

    ``take[i]``: input beat ``i`` (all inputs at once for a join); ``emit[j]``: output beat
    ``j``. Window stages also have ``read[j]`` (window ``j`` read into the window source's output
    register) and ``hand[j]`` (window ``j`` handed to its copy); global pooling has ``read[n]``
    (image ``n``'s sum complete). ``slot[i]``: the reads (for global pooling, the output
    handshakes) that must precede input beat ``i`` because it overwrites what they needed.

    ``advance()`` (the ``_advance_<role>`` method) computes every handshake whose constraints are
    known and returns whether it took inputs and whether it emitted outputs.
    """

    def __init__(self, layer, mapping, images):
        arch, timing = mapping.arch, mapping.timing
        self.name, self.role = layer.name, layer.role
        self.p_in, self.p_out = layer.input_pixels, layer.output_pixels
        self.n_in, self.n_out = images * layer.input_pixels, images * layer.output_pixels
        self.take, self.emit, self.read, self.hand = [], [], [], []
        self.producers: list = []   # (stage, link latency, beats sent on the link), per input
        self.consumers: list = []   # (stage, FIFO depth, beats sent on the link), per input fed
        self.queued = True
        self.stall = None           # next cycle not stalled at the port, for the source and output
        self.gap = timing.image_gap
        self.latency = engine_latency(layer, arch, timing)
        self.capacity = capacity(layer, arch, timing)
        self.t, self.window = layer.interval, timing.window_latency
        # a window source reading over passes: windows that many cycles apart, valid
        # `source` cycles after their read starts, their pixels kept until the last pass
        self.passes_w = layer.window_passes
        self.source = timing.window_latency + layer.window_passes - 1
        self.advance = {"source": self._advance_source, "join": self._advance_join,
                        "gap": self._advance_gap, "crossbar": self._advance_crossbar,
                        }.get(layer.role, self._advance_window)
        if layer.role == "source":  # pixel i is offered from cycle i on (when the input is not idle)
            self.offers = range(self.n_out)
        if layer.role == "join":
            if join_registers(layer, timing):
                # input registers (taking both inputs), the product registers (filled over the
                # passes, reading the input registers until the last) and the output register
                self.arrive, self.valid = [], []
                self.chain = [self.take] + [[] for _ in range(timing.join_latency)]
                self.dwell = [1, layer.requant_passes] + [1] * (timing.join_latency - 1)
                self.latency = 0   # the emit rule starts from ``valid``
            else:   # `latency` from the handshake, in the last pass
                self.chain = None
                self.passes = 1 + passes_latency(layer, timing)
                self.latency -= self.passes - 1
        if layer.role in ("source", "join"):
            return
        if layer.role == "gap":  # image n's sum is complete with its last pixel, which waits
            # until the product register has taken image n - 1's (`_advance_gap`)
            offsets = np.repeat(np.arange(images, dtype=np.int64), self.p_out) * self.p_in
            self.need = (np.tile(layer.last_needed(), images) + offsets).tolist()
            self.slot = np.maximum((np.arange(self.n_in) + 1) // self.p_in - 1, 0).tolist()
            # the product and output registers after the sum register
            self.chain, self.valid = [[] for _ in range(timing.global_pool_latency - 1)], []
            self.dwell = [1 + passes_latency(layer, timing)] + [1] * len(self.chain)
            self.latency = 0   # the emit rule starts from ``valid``
            return
        # the window source: the timing contract's rules (`window_rules`)
        self.need, self.slot = window_rules(layer.geometry, strategy=layer.buffer, images=images)
        # Copy j mod r takes output pixel j of each image: the previous window of the same copy,
        # and the one `capacity` windows back, whose output handshake frees the copy.
        prev = _previous_on_copy(self.n_out, self.p_out, layer.replication)
        held = np.arange(self.n_out)
        for _ in range(self.capacity):
            held = np.where(held >= 0, prev[np.maximum(held, 0)], -1)
        self.prev, self.held = prev.tolist(), held.tolist()
        if layer.role == "crossbar":
            r = layer.replication
            self.copy = (np.arange(self.n_out) % self.p_out % r).tolist()
            self.clocks = [_TileClock() for _ in range(r)]
            issue, depth = steps(layer, arch), arch.mac_stages + timing.crossbar_latency
            # en-cycle offsets from a window's issue: its first finished group reaches stage 2
            # (``first``), its last is written into the output register (``last``)
            self.first = max(arch.planes - 1 + depth - 1, 0)
            self.last = issue - 1 + depth
            self.acc = timing.accumulator_latency
            # cycles each accumulator register holds a beat: the product register is filled over
            # the requantization passes, reading the sum register until the last
            self.dwell = [1] * self.acc
            if self.acc >= 2:
                self.dwell[1] = 1 + passes_latency(layer, timing)
            merge = timing.merge_latency if r > 1 else 0
            self.latency = 0   # the emit rule starts from ``valid``
            # per window: issue index, output register written (first group), valid (last),
            # accumulator register moves (``chain[0]``: taken from the tile), copy output
            self.index, self.written, self.tile_valid = [], [], []
            self.chain = [[] for _ in range(self.acc)]
            self.merged = [[] for _ in range(merge)]
            self.valid = []

    @property
    def complete(self) -> bool:
        return len(self.emit) == self.n_out

    def _emit(self, ready) -> bool:
        """Append output handshakes while engine outputs ``ready`` and FIFO room allow.

        With several consumers the output is a fork (`imcflow.hw.residual.Fork`): each consumer
        takes an offered beat as soon as its FIFO has room (``sent``), and the beat leaves when
        the last one has taken it. At a stalled port (``stall``) a beat is offered (the input) or
        taken (the output) in the first cycle not stalled from the one it could be. Returns
        whether any consumer got a beat.
        """
        emit, room, latency = self.emit, self.consumers, self.latency
        gap, per_image, stall = self.gap, self.p_out, self.stall
        stalled = len(stall) if stall is not None else 0
        n = start = len(emit)
        end = len(ready)
        sent_any = False
        while n < end:
            x = ready[n] + latency
            if n:
                y = emit[n - 1] + 1
                if gap and n % per_image == 0:
                    y += gap
                if y > x:
                    x = y
            if x < stalled:
                x = stall[x]
            if len(room) == 1:  # no fork: the beat leaves when the FIFO has room
                stage, depth, _ = room[0]
                k = n - depth
                if k >= 0:
                    taken = stage.take
                    if k >= len(taken):
                        return n > start
                    if taken[k] >= x:
                        x = taken[k] + 1
            else:
                offer, waiting = x, False
                for stage, depth, sent in room:
                    if len(sent) == n:
                        k = n - depth
                        if k >= 0 and k >= len(stage.take):
                            waiting = True
                            continue
                        sent.append(max(offer, stage.take[k] + 1) if k >= 0 else offer)
                        sent_any = True
                    if sent[n] > x:
                        x = sent[n]
                if waiting:
                    return sent_any
            emit.append(x)
            n += 1
        return n > start or sent_any

    def _advance_source(self):
        return False, self._emit(self.offers)

    # Window stages take pixels and read windows by the timing contract's rules
    # (`~imcflow.sw.timing.accept_pixels`, `~imcflow.sw.timing.read_windows`), called directly:
    # they run in the innermost loop of the model.

    def _advance_window(self):
        take, read, hand, emit = self.take, self.read, self.hand, self.emit
        prev, held, t, window = self.prev, self.held, self.t, self.window
        slot, need, passes, source = self.slot, self.need, self.passes_w, self.source
        (_, link, arrived), = self.producers
        t0, emitted = len(take), False
        while True:
            moved = accept_pixels(take, slot, arrived, link, read, passes)
            moved |= read_windows(read, take, need, hand, window, passes)
            n, nr, ne = len(hand), len(read), len(emit)
            while n < nr and held[n] < ne:
                x = read[n] + source
                if n:
                    if hand[n - 1] >= x:
                        x = hand[n - 1] + 1
                    if prev[n] >= 0 and hand[prev[n]] + t > x:
                        x = hand[prev[n]] + t
                    if held[n] >= 0 and emit[held[n]] > x:
                        x = emit[held[n]]
                hand.append(x)
                n += 1
                moved = True
            out = self._emit(hand)
            emitted |= out
            if not (out or moved):
                return len(take) > t0, emitted

    def _advance_crossbar(self):
        take, read, hand, slot, need, window = (self.take, self.read, self.hand, self.slot,
                                                self.need, self.window)
        passes = self.passes_w
        (_, link, arrived), = self.producers
        t0, emitted = len(take), False
        while True:
            moved = accept_pixels(take, slot, arrived, link, read, passes)
            moved |= read_windows(read, take, need, hand, window, passes)
            moved |= self._copies()
            out = self._emit(self.valid)
            emitted |= out
            if not (out or moved):
                return len(take) > t0, emitted

    def _copies(self) -> bool:
        """Append the handshakes inside the crossbar copies, by the rules of the RTL
        (`~imcflow.hw.crossbar.CrossbarTile`, `~imcflow.hw.accumulator.AdcAccumulator`, the
        merge of `~imcflow.gen.replication.ReplicatedLayer`), for windows whose constraints are
        known.

        - issue (``hand``): the window handed to its copy in a cycle with ``en``, at least the
          MVM interval of ``en`` cycles after the copy's previous window;
        - the tile's output register: the window's first finished group is written when the
          register is free; until then ``en`` is low (a block of the copy's clock); the window
          is valid there once its last group is written (``tile_valid``);
        - the accumulator's registers, each taking when it is empty or being emptied
          (``chain``), then the merge registers (``merged``) when there are copies, shared by
          the copies in window order;
        - ``valid``: the stage output is valid, and leaves by the emit rule.
        """
        read, hand, emit, prev, copy = self.read, self.hand, self.emit, self.prev, self.copy
        index, written, tile_valid, chain = self.index, self.written, self.tile_valid, self.chain
        merged, valid, clocks, t, source = self.merged, self.valid, self.clocks, self.t, self.source
        out = merged[0] if merged else emit   # each copy's output handshakes
        taken = chain[0] if chain else out    # the tile's output register read
        moved = False
        n = len(hand)
        while n < len(read) and prev[n] < len(written):
            clock, p = clocks[copy[n]], prev[n]
            x = read[n] + source
            if n and hand[n - 1] >= x:
                x = hand[n - 1] + 1
            k = clock.index(x)
            if p >= 0 and index[p] + t > k:
                k = index[p] + t
            index.append(k)
            hand.append(clock.cycle(k))
            n += 1
            moved = True
        n = len(written)
        while n < len(hand) and prev[n] < len(taken):
            clock, p = clocks[copy[n]], prev[n]
            f = clock.cycle(index[n] + self.first) + 1
            w = f
            if p >= 0 and taken[p] > f:
                w = taken[p]
                clock.block(f, w)
            written.append(w)
            v = clock.cycle(index[n] + self.last) + 1
            tile_valid.append(v if v > w else w + 1)
            n += 1
            moved = True
        # Register chains: entry k of a chain takes beat n when its valid ``source`` (the
        # previous entry's take + 1) and the next entry (``after``) has taken the beat before it
        # on the same registers: the copy's previous window, or the previous window at all for
        # the shared merge registers.
        moved_chain, ready, step = _register_chain(tile_valid, 0, chain, prev, self.dwell,
                                                   merged[0] if merged else emit)
        moved_merge, ready, step = _register_chain(ready, step, merged, None, None, emit)
        moved |= moved_chain | moved_merge
        n = len(valid)
        while n < len(ready):
            valid.append(ready[n] + step)
            n += 1
            moved = True
        return moved

    def _advance_gap(self):
        """The image sum register, written with an image's last pixel (``sums``, which waits
        until the product register has taken the sum before), then the product and output
        registers (`_register_chain`; the product register holds each beat ``passes`` cycles)."""
        take, sums, need, slot, emit = self.take, self.read, self.need, self.slot, self.emit
        chain = self.chain
        (_, link, arrived), = self.producers
        t0, emitted = len(take), False
        while True:
            moved = accept_pixels(take, slot, arrived, link, chain[0] if chain else emit, 0)
            while len(sums) < self.n_out and need[len(sums)] < len(take):  # with its last pixel
                sums.append(take[need[len(sums)]])
                moved = True
            moved_chain, out = self._through_chain(sums, 1)
            emitted |= out
            if not (out or moved or moved_chain):
                return len(take) > t0, emitted

    def _through_chain(self, ready, step):
        """Beats valid at ``ready[n] + step`` through the stage's register chain
        (`_register_chain`, ``dwell``) into ``valid`` and out by the emit rule; returns whether
        any moved and whether any left."""
        moved, last, step = _register_chain(ready, step, self.chain, None, self.dwell, self.emit)
        valid = self.valid
        while len(valid) < len(last):
            valid.append(last[len(valid)] + step)
            moved = True
        return moved, self._emit(valid)

    def _advance_join(self):
        """Both inputs are taken together once the product registers are free (`capacity`
        registers, each taking when the next is empty or being emptied), in the last of the
        ``passes`` cycles that fill them; with input registers (`join_registers`), into those,
        then through the product and output registers (`_register_chain`)."""
        if self.chain is not None:
            return self._advance_join_registers()
        take, emit, capacity, n_out = self.take, self.emit, self.capacity, self.n_out
        hold = self.passes - 1
        (_, link_a, ea), (_, link_b, eb) = self.producers
        t0, emitted = len(take), False
        while True:
            n = start = len(take)
            limit = min(n_out, len(ea), len(eb))
            while n < limit and (n < capacity or n - capacity < len(emit)):
                x = ea[n] + link_a
                if eb[n] + link_b > x:
                    x = eb[n] + link_b
                if n:
                    if take[n - 1] >= x:
                        x = take[n - 1] + 1
                    if n >= capacity and emit[n - capacity] > x:
                        x = emit[n - capacity]
                take.append(x + hold)
                n += 1
            out = self._emit(take)
            emitted |= out
            if not (out or n > start):
                return len(take) > t0, emitted

    def _advance_join_registers(self):
        take, arrive = self.take, self.arrive
        (_, link_a, ea), (_, link_b, eb) = self.producers
        t0, emitted = len(take), False
        while True:
            moved = False
            limit = min(self.n_out, len(ea), len(eb))
            while len(arrive) < limit:   # both inputs valid
                n = len(arrive)
                arrive.append(max(ea[n] + link_a, eb[n] + link_b))
                moved = True
            moved_chain, out = self._through_chain(arrive, 0)
            emitted |= out
            if not (out or moved or moved_chain):
                return len(take) > t0, emitted


@dataclass(frozen=True)
class Schedule:
    """The event model's result: the cycle of every handshake, for ``images`` images.

    Attributes
    ----------
    images : int
    take, emit : dict of str to int array
        Per stage, the cycle of each input and output handshake over all images (cycles from
        reset release); the source's ``emit`` are the input port's handshakes.
    source, output : str
        The network's input stage and the stage producing its output.
    """

    images: int
    take: dict
    emit: dict
    source: str
    output: str

    @property
    def done(self) -> np.ndarray:
        """Cycle of each image's last output beat."""
        out = self.emit[self.output]
        return out[len(out) // self.images - 1::len(out) // self.images]

    @property
    def latency(self) -> int:
        """First input handshake to the first image's last output beat."""
        return int(self.done[0] - self.emit[self.source][0])

    @property
    def cycles_per_image(self) -> int:
        """Cycles between the last two images' last output beats (the steady state once the
        pipeline has filled)."""
        if self.images < 2:
            raise ValueError("Cycles per image need at least two images")
        return int(self.done[-1] - self.done[-2])


def _next_free(stall) -> list[int] | None:
    """For each cycle ``c`` of a stall mask, the first cycle ``>= c`` not stalled (cycles past
    the mask's end are not stalled); None for no mask."""
    if stall is None:
        return None
    stall = np.asarray(stall)
    if stall.ndim != 1 or stall.dtype != bool:
        raise UserError(f"stall masks: must be 1-D bool arrays, not {stall.dtype} of shape "
                        f"{stall.shape}")
    free = np.append(np.flatnonzero(~stall), len(stall))
    return free[np.searchsorted(free, np.arange(len(stall)))].tolist()


def simulate(mapping, images: int = 1, *, input_stall=None, output_stall=None) -> Schedule:
    """The event model of ``mapping`` (with ``mapping.timing``) for ``images`` images fed back to
    back into the pipeline from reset release (cycle 0).

    Without stall masks the input offers one pixel per cycle and the output is always taken.
    ``input_stall[c]`` (True: the producer is idle in cycle ``c``) and ``output_stall[c]`` (True:
    ``tready`` low in cycle ``c``) follow `imcflow.verif.patterns.stall_mask`'s semantics: input
    pixel ``n`` is offered in the first cycle not idle from its predecessor's handshake + 1 (from
    0 for the first) and held until taken; an output beat is taken in the first cycle not stalled
    from the one it is valid in. Cycles past a mask's end are not stalled.

    Every handshake happens in the first cycle its constraints allow: a monotone max-plus system
    whose constraints only refer to earlier beats, solved exactly in one pass by computing each
    stage's handshakes as soon as the ones they depend on are known (docs/mapper.md). Raises
    `UserError` naming the stuck stages if the pipeline deadlocks (a skip FIFO too shallow).
    """
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise UserError(f"images: must be a positive integer, not {images!r}")
    timing = mapping.timing
    stages = {l.name: _Stage(l, mapping, images) for l in mapping.stages}
    source = next(l.name for l in mapping.stages if l.role == "source")
    stages[source].stall = _next_free(input_stall)
    stages[mapping.output].stall = _next_free(output_stall)
    fanout = {name: sum(l.inputs.count(name) for l in mapping.stages) for name in stages}
    for l in mapping.stages:
        stage = stages[l.name]
        for p in l.inputs:
            producer = stages[p]
            sent = producer.emit if fanout[p] == 1 else []
            depth = l.buffer_words if l.skip_input == p else timing.fifo_depth
            producer.consumers.append((stage, depth, sent))
            stage.producers.append((producer, link_latency(timing, fanout[p]), sent))
    order = list(stages.values())
    pending = deque(order)
    while pending:  # a worklist: a stage is run again when a neighbour has moved
        stage = pending.popleft()
        stage.queued = False
        took, emitted = stage.advance()
        for moved, neighbours in ((took, stage.producers), (emitted, stage.consumers)):
            if moved:
                for neighbour, _, _ in neighbours:
                    if not neighbour.queued:
                        neighbour.queued = True
                        pending.append(neighbour)
    if not all(s.complete for s in order):
        stuck = ", ".join(f"{s.name!r} ({len(s.emit)} of {s.n_out} beats out)"
                          for s in order if not s.complete)
        raise UserError(f"the pipeline of {mapping.network!r} deadlocks: {stuck}; "
                        f"is a skip FIFO shallower than its minimum?")
    return Schedule(images, {s.name: np.array(s.take, dtype=np.int64) for s in order},
                    {s.name: np.array(s.emit, dtype=np.int64) for s in order}, source,
                    mapping.output)


# --- closed form and summary ---------------------------------------------------------------------

def _register_chain(ready, step, registers, before, dwell, after_last):
    """Append the handshakes of a chain of elastic registers whose constraints are known.

    Entry ``k`` takes beat ``n`` when it is valid at its source (``ready[n] + step`` for the
    first entry, the entry before's take + 1 for the others) and the next entry (``after_last``
    for the last) has taken the beat before it on the same registers (``before[n]``; ``n - 1``
    when ``before`` is None): each register takes when it is empty or being emptied. An entry
    that holds each beat ``dwell[k]`` cycles (a product register filled over several passes)
    takes it, the handshake with the entry before, in the last of them. Returns whether any
    entry moved, the last entry's takes (``ready`` if there is none) and the step to its
    output.
    """
    moved = False
    for k, stage in enumerate(registers):
        after = registers[k + 1] if k + 1 < len(registers) else after_last
        hold = dwell[k] - 1 if dwell else 0
        n = len(stage)
        while n < len(ready):
            p = n - 1 if before is None else before[n]
            if p >= len(after):
                break
            x = ready[n] + step
            if p >= 0 and after[p] > x:
                x = after[p]
            stage.append(x + hold)
            n += 1
            moved = True
        ready, step = stage, 1
    return moved, ready, step


def closed_form_holds(mapping) -> bool:
    """Whether `frame_latency` applies: frame buffers everywhere, and no join that takes a
    pixel per several cycles (shared multipliers) while replicated stages send bursts of
    pixels one cycle apart (the join would queue them, which the closed form does not count)."""
    if any(l.role in ("crossbar", "pool") and l.buffer != "frame" for l in mapping.stages):
        return False
    return not (any(l.role == "join" and l.requant_passes > 1 for l in mapping.stages)
                and any(l.replication > 1 for l in mapping.stages))


def frame_latency(mapping) -> int:
    """Latency of one image when every window buffer is a frame buffer, in closed form.

    Each window stage starts when the last pixel of its input image arrives and then runs at its
    own pace: window ``j`` is handed to its copy ``max(j p, (j // r) t + (j % r) p)`` cycles after
    the first (``p`` the window source's read passes); nothing downstream stalls an image on its
    own. Equal to the event model's latency.
    """
    lines = [l.name for l in mapping.stages
             if l.role in ("crossbar", "pool") and l.buffer != "frame"]
    if lines:
        raise UserError(f"frame_latency: every window buffer must be a frame buffer; layer "
                        f"{lines[0]!r} has a line buffer")
    if not closed_form_holds(mapping):
        raise UserError("frame_latency: a join shares its multipliers (requant_passes > 1) "
                        "behind replicated stages, whose bursts it queues; no closed form")
    arch, timing = mapping.arch, mapping.timing
    fanout = {l.name: sum(c.inputs.count(l.name) for c in mapping.stages) for l in mapping.stages}
    last = {}
    for l in mapping.stages:
        if l.role == "source":
            last[l.name] = l.output_pixels - 1
            continue
        arrived = max(last[p] + link_latency(timing, fanout[p]) for p in l.inputs)
        j, r, t, p = l.output_pixels - 1, l.replication, l.interval, l.window_passes
        queue = max(j * p, (j // r) * t + j % r * p) if l.role in ("crossbar", "pool") else 0
        last[l.name] = arrived + fill_latency(l, arch, timing) + queue
    return last[mapping.output]


@dataclass(frozen=True)
class StageTiming:
    """One stage's times for the first image (event model) and its closed-form stage time.

    Attributes
    ----------
    name, role : str
    stage_cycles : int
        The stage's cycles per image alone (closed form, `LayerMapping.stage_cycles`).
    fill_latency : int
        Last needed input handshake to output handshake when nothing stalls.
    first_output, last_output : int
        Cycle of the stage's first and last output handshake of image 0.
    """

    name: str
    role: str
    stage_cycles: int
    fill_latency: int
    first_output: int
    last_output: int


@dataclass(frozen=True)
class Performance:
    """Throughput and latency of a mapping, from the closed form and the event model.

    Attributes
    ----------
    cycles_per_image_bound : int
        The longest stage time: one image per that many cycles at best.
    cycles_per_image : int
        Event model, images back to back: cycles between the last two of ``images`` images.
    latency_cycles : int
        Event model: first input handshake to the last output beat of one image.
    latency_closed_form : int or None
        `frame_latency` when it applies (`closed_form_holds`: every window buffer a frame
        buffer, ...), else None.
    throughput_ips : float
        Images per second at ``cycles_per_image`` and the clock.
    latency_us : float
    images : int
        Images of the event model run.
    stages : tuple of StageTiming
    """

    cycles_per_image_bound: int
    cycles_per_image: int
    latency_cycles: int
    latency_closed_form: int | None
    throughput_ips: float
    latency_us: float
    images: int
    stages: tuple[StageTiming, ...]

    def to_json(self) -> dict:
        d = asdict(self)
        d["stages"] = [asdict(s) for s in self.stages]
        return d


def analyze(mapping, images: int = 3) -> Performance:
    """The `Performance` of ``mapping``: closed forms and an event model run of ``images``
    images back to back (at least 2; the first gives the latency, the last two the period)."""
    if isinstance(images, bool) or not isinstance(images, int) or images < 2:
        raise UserError(f"images: must be an integer >= 2, not {images!r}")
    schedule = simulate(mapping, images)
    arch, timing = mapping.arch, mapping.timing
    stages = tuple(
        StageTiming(l.name, l.role, l.stage_cycles, fill_latency(l, arch, timing),
                    int(schedule.emit[l.name][0]), int(schedule.emit[l.name][l.output_pixels - 1]))
        for l in mapping.stages)
    period = schedule.cycles_per_image
    return Performance(
        cycles_per_image_bound=mapping.cycles_per_image, cycles_per_image=period,
        latency_cycles=schedule.latency,
        latency_closed_form=frame_latency(mapping) if closed_form_holds(mapping) else None,
        throughput_ips=arch.clock_mhz * 1e6 / period,
        latency_us=schedule.latency / arch.clock_mhz, images=images, stages=stages)
