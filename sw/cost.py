"""The cost model: energy per image and silicon area of a mapped pipeline (docs/cost-model.md).

`estimate` turns a `~imcflow.sw.mapper.Mapping` and a `CostModel` (per-event energies and
per-unit areas) into a `Cost`: energy per image and area, per layer and in total, split into

- ``crossbar``: the analog array, per used cell and read window: ``rows x cols`` cells of every
  tile, once per MVM for ``pwm`` input and once per bit plane for ``bit_serial`` input;
- ``adc``: one conversion per used column, tile and bit plane, costing ``adc_fom_j * 2**adc_bits``
  (Walden figure of merit);
- ``digital``: the periphery's adds (row-tile partial sums, bit-plane shift-adds, bias, pooling
  windows, global sums, residual joins) and multiplies (requantization), by operand width;
- ``buffer``: every bit written to and read from a window buffer or skip FIFO, at an SRAM energy
  per bit that grows with the square root of the memory's size;
- ``transfer``: every bit of every stage's output stream moved one core pitch to each consumer;
- ``leakage``: the static power of every crossbar core over the image period (so a design that
  idles its cores pays for them).

Area: every crossbar core (array cells plus one ADC and digital slice per column), every buffer
bit, and the logic of the pool, join and global-pooling stages. Every default is a published
silicon figure or an estimate derived from one; docs/cost-model.md cites each. A TOML file
(`load_cost`) overrides any of them.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from imcflow.errors import UserError
from imcflow.sw.arith import MULT_BITS
from imcflow.sw.mapper import INPUT_BITS

__all__ = ["CostModel", "Cost", "LayerCost", "estimate", "load_cost", "COMPONENTS"]

#: the parts of a layer's energy, in the order reports list them
COMPONENTS = ("crossbar", "adc", "digital", "buffer", "transfer", "leakage")


def _f(default, doc):
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class CostModel:
    """Per-event energies (joules) and per-unit areas of the cost model; all positive.

    Defaults: a 14 nm PCM IMC core after IBM's HERMES core and 64-core chip, 14 nm SRAM and
    logic scaled from published 45 nm figures (docs/cost-model.md derives each number).
    """

    cell_read_j: float = _f(1.6e-13, "crossbar cell, one read window (one MVM, or one bit plane)")
    adc_fom_j: float = _f(2.0e-14, "ADC Walden figure of merit: a conversion costs fom * 2**bits")
    plane_read_fraction: float = _f(1.0, "read energy of one bit_serial plane relative to a "
                                         "pwm read window (1: a plane is a full window)")
    add_j_per_bit: float = _f(9.2e-16, "adder, per operand bit")
    mult_j_per_bit2: float = _f(7.7e-16, "multiplier, per product of operand widths")
    sram_j_per_bit: float = _f(3.84e-14, "SRAM read or write of one bit, at sram_ref_bytes")
    sram_ref_bytes: float = _f(8192.0, "size at which sram_j_per_bit holds (energy ~ sqrt(size))")
    sram_min_bytes: float = _f(512.0, "smallest size of the sqrt law (smaller: register files)")
    wire_j_per_bit_mm: float = _f(3.8e-13, "on-chip wire, one bit over one mm")
    core_leakage_w: float = _f(4.7e-3, "static power of one crossbar core")
    cell_area_um2: float = _f(7.1, "crossbar cell with its share of row drivers")
    column_area_um2: float = _f(600.0, "one column's ADC and digital slice, at 8 ADC bits "
                                       "(linear in the ADC bits)")
    sram_bit_area_um2: float = _f(0.098, "SRAM bit with its share of periphery")
    stage_area_mm2: float = _f(0.005, "logic of one pool, join or global-pooling stage")

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v <= 0:
                raise UserError(f"cost.{f.name}: must be a positive number, not {v!r}")

    def replace(self, **changes) -> "CostModel":
        """A copy with ``changes`` applied and validated (unknown names are a `UserError`)."""
        names = [f.name for f in fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise UserError(f"cost: unknown field {unknown[0]!r}; allowed: {', '.join(names)}")
        return CostModel(**{**asdict(self), **changes})

    def adc_j(self, bits: int) -> float:
        """Energy of one conversion at ``bits``."""
        return self.adc_fom_j * 2 ** bits

    def sram_bit_j(self, memory_bits: int) -> float:
        """Energy per bit read or written in a memory of ``memory_bits`` bits."""
        size = max(memory_bits / 8, self.sram_min_bytes)
        return self.sram_j_per_bit * math.sqrt(size / self.sram_ref_bytes)

    def core_area_mm2(self, arch) -> float:
        """One crossbar core: ``rows x cols`` cells and ``cols`` ADC/digital slices."""
        column = self.column_area_um2 * arch.adc_bits / 8
        return (arch.rows * arch.cols * self.cell_area_um2 + arch.cols * column) * 1e-6

    @classmethod
    def describe(cls) -> dict[str, str]:
        return {f.name: f.metadata["doc"] for f in fields(cls)}


def load_cost(spec: "str | Path | CostModel | None" = None) -> CostModel:
    """A `CostModel` from None (the defaults), a `CostModel` or a TOML file of field overrides
    (optionally under a ``[cost]`` table)."""
    if spec is None:
        return CostModel()
    if isinstance(spec, CostModel):
        return spec
    path = Path(spec)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as e:
        raise UserError(f"--cost: cannot read {str(path)!r}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"--cost: {path.name} is not valid TOML: {e}") from None
    doc = doc.get("cost", doc)
    if not isinstance(doc, dict):
        raise UserError(f"--cost: {path.name}: [cost] must be a table of cost fields")
    return CostModel().replace(**doc)


@dataclass(frozen=True)
class LayerCost:
    """Energy per image of one layer (joules per component of `COMPONENTS`) and its area."""

    name: str
    energy: dict
    area_mm2: float
    ops: int

    @property
    def energy_j(self) -> float:
        return sum(self.energy.values())


@dataclass(frozen=True)
class Cost:
    """Energy and area of a mapped design.

    Attributes
    ----------
    layers : tuple of LayerCost
    energy_per_image_j : float
    area_mm2 : float
    ops_per_image : int
        Two operations (multiply and add) per weight and output pixel of every crossbar layer.
    seconds_per_image : float
        The image period the leakage is charged over.
    """

    layers: tuple
    energy_per_image_j: float
    area_mm2: float
    ops_per_image: int
    seconds_per_image: float

    @property
    def images_per_j(self) -> float:
        return 1.0 / self.energy_per_image_j

    @property
    def tops_per_w(self) -> float:
        """Operations per joule in units of 10**12 (TOPS/W)."""
        return self.ops_per_image / self.energy_per_image_j / 1e12

    @property
    def power_w(self) -> float:
        """Average power at one image per ``seconds_per_image``."""
        return self.energy_per_image_j / self.seconds_per_image

    def breakdown(self) -> dict:
        """Energy per image per component, over all layers."""
        return {c: sum(l.energy[c] for l in self.layers) for c in COMPONENTS}

    def to_json(self) -> dict:
        return {"energy_per_image_j": self.energy_per_image_j, "images_per_j": self.images_per_j,
                "tops_per_w": self.tops_per_w, "area_mm2": self.area_mm2,
                "ops_per_image": self.ops_per_image, "power_w": self.power_w,
                "energy_breakdown_j": self.breakdown(),
                "layer_energy_j": {l.name: l.energy_j for l in self.layers},
                "layer_area_mm2": {l.name: l.area_mm2 for l in self.layers}}


def estimate(mapping, cost: CostModel | None = None, *, cycles_per_image: float | None = None) -> Cost:
    """The `Cost` of ``mapping`` with the energies and areas of ``cost`` (default `CostModel()`).

    ``cycles_per_image`` (default the mapping's throughput bound) is the image period over which
    the cores leak.
    """
    cost = cost or CostModel()
    arch = mapping.arch
    period = (cycles_per_image or mapping.cycles_per_image) / (arch.clock_mhz * 1e6)
    stages = {l.name: l for l in mapping.layers}
    consumers = {l.name: sum(s.inputs.count(l.name) for s in mapping.stages) for l in mapping.stages}
    pitch = math.sqrt(cost.core_area_mm2(arch))
    add, mult = cost.add_j_per_bit, cost.mult_j_per_bit2
    act = arch.act_bits
    layers = []
    for l in mapping.layers:
        e = dict.fromkeys(COMPONENTS, 0.0)
        area, ops = 0.0, 0
        if l.role == "fused":
            layers.append(LayerCost(l.name, e, 0.0, 0))
            continue
        P, c_out = l.output_pixels, l.out_shape.c
        in_bits = (INPUT_BITS if l.inputs and stages[l.inputs[0]].role == "source" else act)
        if l.role == "crossbar":
            planes = arch.planes
            window = cost.plane_read_fraction if planes > 1 else 1.0
            # every cell of a built tile's part of the matrix is read (a grouped conv's zeros
            # between its groups too); each of its columns converts; tiles not built do neither
            tiles = l.built_tiles(arch)
            cells, columns = sum(r * c for r, c in tiles), sum(c for _, c in tiles)
            e["crossbar"] = P * planes * window * cells * cost.cell_read_j
            conversions = P * planes * columns
            e["adc"] = conversions * cost.adc_j(arch.adc_bits)
            serial_bits = arch.adc_bits + act
            acc_bits = (serial_bits if planes > 1 else arch.adc_bits) + math.ceil(
                math.log2(l.row_tiles)) + 1
            adds = (P * (planes - 1) * columns * serial_bits        # shift-add of planes
                    + P * (columns - l.cols) * acc_bits             # row-tile partial sums
                    + P * l.cols * acc_bits)                        # bias
            e["digital"] = adds * add + P * l.cols * acc_bits * MULT_BITS * mult
            e["leakage"] = l.crossbars * cost.core_leakage_w * period
            area = l.crossbars * cost.core_area_mm2(arch)
            ops = 2 * l.weights * P  # a multiply and an add per weight, not per cell
        elif l.role == "pool":
            k2, c = l.kernel ** 2, l.in_shape.c
            if l.op.requantizing:  # an average: the window sum, then the requantization
                sum_bits = act + math.ceil(math.log2(k2))
                e["digital"] = P * c * ((k2 - 1) * sum_bits * add + sum_bits * MULT_BITS * mult)
            else:  # compares cost an add each
                e["digital"] = P * c * (k2 - 1) * act * add
            area = cost.stage_area_mm2
        elif l.role == "gap":
            c, n = l.in_shape.c, l.input_pixels
            sum_bits = act + math.ceil(math.log2(max(n, 2)))
            e["digital"] = c * (n * sum_bits * add + sum_bits * MULT_BITS * mult)
            area = cost.stage_area_mm2
        elif l.role == "join":
            c = c_out
            e["digital"] = P * c * (2 * in_bits * MULT_BITS * mult + (in_bits + MULT_BITS) * add)
            area = cost.stage_area_mm2
        if l.buffer_bits:
            c_in = l.in_shape.c
            if l.buffer == "skip":  # every beat of the skip input written once and read once
                skip_bits = INPUT_BITS if stages[l.skip_input].role == "source" else act
                moved = 2 * P * c_in * skip_bits
            else:
                moved = l.input_pixels * c_in * in_bits + P * l.kernel ** 2 * c_in * in_bits
            e["buffer"] = moved * cost.sram_bit_j(l.buffer_bits)
            area += l.buffer_bits * cost.sram_bit_area_um2 * 1e-6
        out_bits = INPUT_BITS if l.role == "source" else act
        e["transfer"] = P * c_out * out_bits * max(consumers.get(l.name, 0), 1) * pitch \
            * cost.wire_j_per_bit_mm
        layers.append(LayerCost(l.name, e, area, ops))
    return Cost(tuple(layers), sum(l.energy_j for l in layers), sum(l.area_mm2 for l in layers),
                sum(l.ops for l in layers), period)
