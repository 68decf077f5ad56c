"""What `imcflow sim` checks a run against: the golden model, stage by stage, and the performance
model, handshake by handshake.

- `Streams` compares recorded streams with the golden model's per-layer trace
  (`imcflow.sw.inference.trace`, computed `BATCH` images at a time): every tapped stage's output
  (the top's debug taps, `imcflow.gen.accelerator.AxiStreamTop`) and the network output on
  ``m_axis``. A stream matches when it has every beat of every image in raster order with the
  golden values and ``last`` on each image's last beat, and nothing more. The first mismatch of
  a stream names its image, pixel (row, column), channel, expected and actual value; `Streams.figures`
  reports the first mismatch of the most upstream stage, where a bug shows first.
- `timing` compares every image's completion cycle (its last output handshake) and every tapped
  stage's handshakes with the performance model's `~imcflow.sw.perf.Schedule` of the same run
  (same images, same stall masks): both count cycles from reset release, so they must be equal.

The cocotb engine records no taps; its runs are compared at the output only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imcflow.sw.inference import trace

__all__ = ["BATCH", "OUTPUT", "Stream", "Streams", "timing"]

#: images per golden-model batch (bounds the memory of the per-layer trace)
BATCH = 128
#: the name under which the output port's stream is reported
OUTPUT = "m_axis"


@dataclass
class Stream:
    """The comparison of one recorded stream with its golden feature maps, image batch by batch.

    Attributes
    ----------
    name : str
        The stage (or `OUTPUT`).
    shape : (H, W, C)
        The golden feature map of one image.
    values, last : arrays
        The recorded beats: ``(beats, C)`` values and ``last`` flags.
    exact : list of bool
        Per image compared so far: every beat present and equal.
    mismatched_beats : int
    first : dict or None
        The first wrong beat: ``layer``, ``image``, ``beat``, ``pixel`` ([row, col]),
        ``channel``, ``expected``, ``actual`` (for a ``last`` flag that is wrong while the values
        are right: ``channel`` None and the flags).
    """

    name: str
    shape: tuple
    values: np.ndarray
    last: np.ndarray
    exact: list = field(default_factory=list)
    mismatched_beats: int = 0
    first: dict | None = None

    @property
    def per_image(self) -> int:
        return self.shape[0] * self.shape[1]

    def check(self, start: int, golden: np.ndarray) -> None:
        """Compare images ``start ..`` with ``golden`` ``(images, H, W, C)``."""
        p, images = self.per_image, len(golden)
        want = golden.reshape(images * p, -1)
        want_last = np.tile(np.arange(p) == p - 1, images)
        got = self.values[start * p:(start + images) * p]
        got_last = self.last[start * p:(start + images) * p]
        n = len(got)
        bad = np.ones(images * p, dtype=bool)     # a missing beat is a wrong one
        bad[:n] = (got != want[:n]).any(axis=1) | (got_last != want_last[:n])
        self.mismatched_beats += int(bad[:n].sum())
        self.exact += (~bad.reshape(images, p).any(axis=1)).tolist()
        if self.first is None and bad.any():
            k = int(np.argmax(bad))
            beat, image, pixel = start * p + k, start + k // p, k % p
            first = {"layer": self.name, "image": image, "beat": beat,
                     "pixel": [pixel // self.shape[1], pixel % self.shape[1]]}
            if k >= n:
                first.update(channel=None, expected=want[k].tolist(), actual=None)
            else:
                channels = np.flatnonzero(got[k] != want[k])
                if len(channels):
                    c = int(channels[0])
                    first.update(channel=c, expected=int(want[k, c]), actual=int(got[k, c]))
                else:
                    first.update(channel=None, expected=f"last={bool(want_last[k])}",
                                 actual=f"last={bool(got_last[k])}")
            self.first = first

    def extra_beats(self, images: int) -> int:
        return max(len(self.values) - images * self.per_image, 0)

    def missing_beats(self, images: int) -> int:
        return max(images * self.per_image - len(self.values), 0)


class Streams:
    """Every recorded stream of a run against the golden model's trace.

    Parameters
    ----------
    qnet : QNetwork
        The golden model.
    pixels : array (images, H, W, C)
        The images the run streamed.
    output : (values, last)
        The beats taken from ``m_axis``.
    taps : dict of str to (cycles, values, last)
        Each tapped stage's beats (empty for a run without taps), in network order.
    """

    def __init__(self, qnet, pixels: np.ndarray, output, taps: dict):
        shape = lambda name: (qnet[name].shape.h, qnet[name].shape.w, qnet[name].shape.c)
        self.images = len(pixels)
        self.output = Stream(OUTPUT, shape(qnet.output.name), *output)
        self.layers = [Stream(name, shape(name), values, last)
                       for name, (_, values, last) in taps.items()]
        outputs = []
        for start in range(0, self.images, BATCH):
            golden = trace(qnet, pixels[start:start + BATCH])
            for s in self.layers:
                s.check(start, golden[s.name])
            self.output.check(start, golden[qnet.output.name])
            outputs.append(golden[qnet.output.name].reshape(len(golden[qnet.output.name]), -1))
        #: the golden model's outputs, ``(images, H * W * C)``
        self.golden_output = np.concatenate(outputs)

    def figures(self) -> dict:
        """``bit_exact`` (images exact at every tapped layer and at the output),
        ``output_bit_exact``, ``layers_checked``, ``mismatched_images``, ``first_mismatch``
        (the most upstream stream's, the output's last), ``layer_mismatches`` (stage: wrong or
        missing beats, for each stage that has any), ``missing_beats`` and ``extra_beats`` of the
        output, ``extra_layer_beats``."""
        streams = [*self.layers, self.output]
        exact = np.logical_and.reduce([np.array(s.exact, dtype=bool) for s in streams])
        first = next((s.first for s in streams if s.first is not None), None)
        return {
            "bit_exact": int(exact.sum()), "output_bit_exact": int(sum(self.output.exact)),
            "layers_checked": len(self.layers), "mismatched_images": int((~exact).sum()),
            "first_mismatch": first,
            "layer_mismatches": {s.name: s.mismatched_beats + s.missing_beats(self.images)
                                 for s in self.layers
                                 if s.mismatched_beats or s.missing_beats(self.images)},
            "missing_beats": self.output.missing_beats(self.images),
            "extra_beats": self.output.extra_beats(self.images),
            "extra_layer_beats": sum(s.extra_beats(self.images) for s in self.layers),
        }


def timing(schedule, images: int, out_cycles: np.ndarray, per_image: int, taps: dict,
           shapes: dict) -> dict:
    """The run's handshake cycles against the performance model's ``schedule``.

    Parameters
    ----------
    schedule : Schedule
        `imcflow.sw.perf.simulate` of the same mapping, images and stall masks.
    out_cycles : int array
        Every output handshake's cycle.
    per_image : int
        Output beats per image.
    taps : dict of str to (cycles, values, last)
    shapes : dict of str to (H, W, C)
        Each tapped stage's output feature map (for naming pixels).

    Returns
    -------
    dict
        ``model_completion_error_cycles`` (largest difference of an image's completion cycle,
        None when images are missing), ``first_timing_mismatch`` (``image``, ``expected``,
        ``actual``, ``difference``), ``model_handshake_error_cycles`` (largest difference over
        every tapped handshake, None without taps or with beats missing) and
        ``first_handshake_mismatch`` (the most upstream stage's first: ``layer``, ``image``,
        ``pixel``, ``expected``, ``actual``, ``difference``).
    """
    done = out_cycles[per_image - 1::per_image][:images]
    model_done = schedule.done
    errors = done - model_done[:len(done)]
    first = int(np.argmax(errors != 0)) if errors.any() else None
    f = {"model_completion_error_cycles": int(np.abs(errors).max(initial=0))
         if len(done) == images else None,
         "first_timing_mismatch": None if first is None else {
             "image": first, "expected": int(model_done[first]), "actual": int(done[first]),
             "difference": int(errors[first])}}
    worst, mismatch, complete = 0, None, bool(taps)
    for stage, (cycles, _, _) in taps.items():
        want = schedule.emit[stage]
        n = min(len(cycles), len(want))
        complete &= len(cycles) == len(want)
        diff = cycles[:n] - want[:n]
        worst = max(worst, int(np.abs(diff).max(initial=0)))
        if mismatch is None and diff.any():
            k = int(np.argmax(diff != 0))
            h, w, _ = shapes[stage]
            pixel = k % (h * w)
            mismatch = {"layer": stage, "image": k // (h * w), "pixel": [pixel // w, pixel % w],
                        "expected": int(want[k]), "actual": int(cycles[k]),
                        "difference": int(diff[k])}
    f.update(model_handshake_error_cycles=worst if complete else None,
             first_handshake_mismatch=mismatch)
    return f
