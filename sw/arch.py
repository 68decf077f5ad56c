"""The IMC architecture description: one validated, immutable `Arch` with named presets.

An architecture is what the user chooses besides the network: crossbar geometry, bit widths, the
input encoding, analog timing, the core budget, the clock, the buffer strategy and the
non-idealities. It is read from a preset name or a TOML file (keys as the fields below, optionally
under an ``[arch]`` table) and validated at construction; a bad field is a one-line `UserError`
naming the field and its allowed values.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from imcflow.errors import UserError
from imcflow.validate import check_bool, check_choice, check_int, check_number

__all__ = ["Arch", "CrossbarParams", "CROSSBAR_FIELDS", "PRESETS", "ENCODINGS", "BUFFER_STRATEGIES",
           "load_arch", "arch_label"]

ENCODINGS = ("pwm", "bit_serial")
BUFFER_STRATEGIES = ("line", "frame", "auto")


def _int_in(lo, hi):
    return lambda name, v: check_int(name, v, lo, hi)


def _choice(options):
    return lambda name, v: check_choice(name, v, options)


def _float_in(lo, hi, *, lo_open=False):
    return lambda name, v: check_number(name, v, lo, hi, lo_open=lo_open)


def _bool():
    return check_bool


def _optional(check):
    def optional(name, v):
        if v is not None:
            check(name, v)
    return optional


def _check_bit_serial(prefix: str, params) -> None:
    if params.input_encoding == "bit_serial" and params.mvm_cycles < params.act_bits:
        raise UserError(f"{prefix}.mvm_cycles: bit_serial input needs at least act_bits = "
                        f"{params.act_bits} cycles per MVM (one bit plane per cycle), not "
                        f"{params.mvm_cycles}")


def _f(default, check, doc):
    return field(default=default, metadata={"check": check, "doc": doc})


@dataclass(frozen=True)
class Arch:
    """An IMC architecture. All fields are validated; derived quantities are properties."""

    rows: int = _f(256, _int_in(1, 4096), "crossbar rows (inputs) per core")
    cols: int = _f(256, _int_in(1, 4096), "crossbar columns (outputs, one ADC each) per core")
    weight_bits: int = _f(4, _int_in(2, 8), "signed symmetric weight precision")
    act_bits: int = _f(8, _int_in(2, 8), "unsigned activation precision")
    adc_bits: int = _f(8, _int_in(2, 16), "signed ADC output precision")
    input_encoding: str = _f("pwm", _choice(ENCODINGS), "how inputs are applied to the crossbar")
    mvm_cycles: int = _f(8, _int_in(1, 4096), "cycles between MVMs of one crossbar (analog timing)")
    col_parallelism: int | None = _f(
        None, _optional(_int_in(1, 4096)),
        "columns the behavioral crossbar computes per cycle (None: the fewest that still "
        "finish an MVM within mvm_cycles)")
    mac_stages: int = _f(
        0, _int_in(0, 8),
        "pipeline registers in the behavioral crossbar's multiply-and-add trees (FPGA clock rate; "
        "each adds one cycle of latency, the rate stays)")
    row_folds: int = _f(
        1, _int_in(1, 4096),
        "steps over which the behavioral crossbar sums a column's rows, ceil(rows / row_folds) "
        "rows per step, before the ADC (fewer FPGA adders; the interval grows by this factor)")
    slack_folds: bool = _f(
        False, _bool(),
        "fold each crossbar layer's rows further (row_folds at least) as far as the pipeline's "
        "slowest stage leaves it slack: fewer FPGA adders at no throughput cost")
    requant_lanes: int = _f(
        0, _int_in(0, 4096),
        "requantization multipliers per ADC accumulator, join and global pool: each output "
        "pixel is requantized that many lanes per cycle, over at most the MVM interval "
        "(accumulators) or the slowest stage's time (fewer FPGA DSPs; each further cycle adds "
        "one of latency); 0: one multiplier per lane, one cycle")
    window_ports: int = _f(
        0, _int_in(0, 4096),
        "read ports of each crossbar layer's window buffer: a window's k*k taps are read over "
        "ceil(k*k / window_ports) cycles, as far as the MVM interval and the slowest stage's time "
        "allow (fewer FPGA block RAM copies and wires; each further cycle adds one of latency); "
        "0: one port per tap, a window per cycle")
    core_budget: int | None = _f(None, _optional(_int_in(1, 1 << 20)),
                                 "crossbars available; None means no replication")
    clock_mhz: float = _f(1000.0, _float_in(0, 1e5, lo_open=True), "digital clock frequency")
    buffer: str = _f("line", _choice(BUFFER_STRATEGIES), "activation buffer strategy")
    weight_noise: float = _f(0.0, _float_in(0.0, 1.0),
                             "programming noise: std dev relative to the largest weight magnitude")
    noise_seed: int = _f(0, _int_in(0, 2**32 - 1), "seed of the weight programming noise")

    def __post_init__(self):
        for f in fields(self):
            f.metadata["check"](f"arch.{f.name}", getattr(self, f.name))
        _check_bit_serial("arch", self)

    # derived -----------------------------------------------------------------------------------
    @functools.cached_property
    def crossbar(self) -> "CrossbarParams":
        """What the crossbar blocks of `imcflow.hw` need of this architecture (they never take
        the `Arch` itself)."""
        return CrossbarParams(**{name: getattr(self, name) for name in CROSSBAR_FIELDS})

    @property
    def planes(self) -> int:
        """`CrossbarParams.planes`."""
        return self.crossbar.planes

    def columns_per_cycle(self, tile_cols: int) -> int:
        """`CrossbarParams.columns_per_cycle`."""
        return self.crossbar.columns_per_cycle(tile_cols)

    def mvm_interval(self, tile_cols: int) -> int:
        """`CrossbarParams.mvm_interval`."""
        return self.crossbar.mvm_interval(tile_cols)

    def replace(self, **changes) -> "Arch":
        """A copy with ``changes`` applied and validated (unknown names are a `UserError`)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise UserError(f"arch: unknown field {sorted(unknown)[0]!r}; allowed: "
                            f"{', '.join(f.name for f in fields(self))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "arch") -> "Arch":
        if not isinstance(d, dict):
            raise UserError(f"{source}: expected a table of architecture fields")
        return cls().replace(**d)

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name -> documentation (for the README and ``--help``)."""
        return {f.name: f.metadata["doc"] for f in fields(cls)}


#: the fields of `Arch` that `CrossbarParams` carries
CROSSBAR_FIELDS = ("rows", "cols", "weight_bits", "act_bits", "adc_bits", "input_encoding",
                   "mvm_cycles", "col_parallelism", "mac_stages", "row_folds", "requant_lanes")
#: their defaults, read from `Arch` so that the two cannot drift apart
_ARCH_DEFAULTS = {f.name: f.default for f in fields(Arch) if f.name in CROSSBAR_FIELDS}


@dataclass(frozen=True)
class CrossbarParams:
    """The crossbar parameters the blocks of `imcflow.hw` take (`Arch.crossbar`): geometry, bit
    widths, input encoding and timing of one crossbar tile, validated as the `Arch` fields of the
    same names (``crossbar.rows: must be an integer in 1..4096, not 0``).

    Attributes
    ----------
    rows, cols, weight_bits, act_bits, adc_bits, input_encoding, mvm_cycles, col_parallelism,
    mac_stages, row_folds, requant_lanes
        As the `Arch` fields.
    planes : int
        ADC conversions per MVM.
    output_range : tuple of int
        Exact range of one output lane of a tile.
    """

    rows: int = _ARCH_DEFAULTS["rows"]
    cols: int = _ARCH_DEFAULTS["cols"]
    weight_bits: int = _ARCH_DEFAULTS["weight_bits"]
    act_bits: int = _ARCH_DEFAULTS["act_bits"]
    adc_bits: int = _ARCH_DEFAULTS["adc_bits"]
    input_encoding: str = _ARCH_DEFAULTS["input_encoding"]
    mvm_cycles: int = _ARCH_DEFAULTS["mvm_cycles"]
    col_parallelism: int | None = _ARCH_DEFAULTS["col_parallelism"]
    mac_stages: int = _ARCH_DEFAULTS["mac_stages"]
    row_folds: int = _ARCH_DEFAULTS["row_folds"]
    requant_lanes: int = _ARCH_DEFAULTS["requant_lanes"]

    def __post_init__(self):
        checks = {f.name: f.metadata["check"] for f in fields(Arch)}
        for name in CROSSBAR_FIELDS:
            checks[name](f"crossbar.{name}", getattr(self, name))
        _check_bit_serial("crossbar", self)

    @property
    def planes(self) -> int:
        """ADC conversions per MVM: 1 for ``pwm``, ``act_bits`` for ``bit_serial``."""
        return self.act_bits if self.input_encoding == "bit_serial" else 1

    @property
    def output_range(self) -> tuple[int, int]:
        """Exact range of one output lane of a `~imcflow.hw.crossbar.CrossbarTile`.

        ``pwm``: the signed ``adc_bits`` code range ``[-2**(A-1), 2**(A-1) - 1]``. ``bit_serial``:
        the shift-added sum of ``act_bits`` codes, that range times ``2**act_bits - 1``, which
        fits ``adc_bits + act_bits`` signed bits.
        """
        lo, hi = -(1 << (self.adc_bits - 1)), (1 << (self.adc_bits - 1)) - 1
        if self.input_encoding == "bit_serial":
            planes_weight = (1 << self.act_bits) - 1
            return lo * planes_weight, hi * planes_weight
        return lo, hi

    def columns_per_cycle(self, tile_cols: int) -> int:
        """Columns the behavioral crossbar of a tile with ``tile_cols`` used columns computes per
        cycle (`imcflow.hw.crossbar.CrossbarTile`: ``rows x columns_per_cycle`` multipliers).

        ``col_parallelism`` (at most ``tile_cols``) or, when it is None, the fewest columns that
        still issue all ``planes`` bit planes of all column groups within ``mvm_cycles``:
        ``ceil(tile_cols / (mvm_cycles // planes))``. Both give the interval `mvm_interval`; the
        smaller array takes a few more cycles of latency (one per column group).
        """
        if self.col_parallelism is not None:
            return min(self.col_parallelism, tile_cols)
        return -(-tile_cols // (self.mvm_cycles // self.planes))

    def mvm_interval(self, tile_cols: int) -> int:
        """Cycles between MVMs of a crossbar tile with ``tile_cols`` used columns.

        The analog interval ``mvm_cycles``, or longer when the behavioral crossbar's `steps`
        need more cycles.
        """
        return max(self.mvm_cycles, self.steps(tile_cols))

    def requant_passes(self, tile_cols: int) -> int:
        """Cycles the `~imcflow.hw.accumulator.AdcAccumulator` of a column tile with
        ``tile_cols`` columns takes to multiply one output pixel by its requantization
        multipliers: ``ceil(tile_cols / requant_lanes)``, at most the tile's `mvm_interval` (so
        the tile never waits for it); 1 when ``requant_lanes`` is 0 (a multiplier per column).
        """
        if self.requant_lanes == 0:
            return 1
        return min(-(-tile_cols // self.requant_lanes), self.mvm_interval(tile_cols))

    def steps(self, tile_cols: int, row_folds: int | None = None) -> int:
        """Issue cycles of one MVM of the behavioral crossbar of a tile with ``tile_cols`` used
        columns: column groups x bit ``planes`` x row folds (``row_folds``, default the field)."""
        folds = self.row_folds if row_folds is None else row_folds
        return self.planes * folds * -(-tile_cols // self.columns_per_cycle(tile_cols))


PRESETS: dict[str, Arch] = {
    # IBM PCM silicon numbers the paper follows: 256x256, 8-bit PWM inputs, 8-bit ADC, 4-bit weights.
    "default": Arch(),
    "bit_serial": Arch(input_encoding="bit_serial"),
    # Smaller crossbars: more row/column tiles on small networks, cheap to simulate.
    "small": Arch(rows=64, cols=64),
    # What fits an FPGA (docs/fpga.md): one column per cycle (a board behind a UART needs far
    # less than the crossbar rate), adder trees cut by 3 registers, a 100 MHz clock (the
    # ULX3S-85F build of digits meets it with the flow's two seeds). Each tile sums its rows in
    # 16 folds, and layers with slack under the slowest stage fold further: what `imcflow fpga
    # plan` chooses for digits behind the UART (about 20k LUT4 instead of 56k, 16,384 cycles
    # per image, 6,104 images/s at 100 MHz, faster than the 3 Mbaud link's 4,286). Three
    # registers in the trees: with two, yowasp Yosys 0.70's ABC9 exits without a message on
    # digits' fc tile (docs/fpga.md). One requantization multiplier
    # per accumulator, join input and global pool, shared by the lanes over the stage's slack:
    # with one per lane (124 of 156 MULT18X18D) the router did not converge (docs/fpga.md).
    # One read port per window buffer, the taps read over the MVM interval's slack: a 3x3
    # conv's line buffer is one LUT-RAM instead of 9 block-RAM copies (digits: 6 DP16KD
    # instead of 123).
    "fpga": Arch(col_parallelism=1, mac_stages=3, row_folds=16, slack_folds=True, mvm_cycles=8,
                 requant_lanes=1, window_ports=1, clock_mhz=100.0),
    # What fits the iCEBreaker's iCE40 UP5K (5,280 logic cells) with digits_ice40 (docs/fpga.md):
    # bit-serial 4-bit inputs (adder trees over the weights of the rows whose input bit is set,
    # a quarter of the pwm trees' logic), one column per cycle, 64-row crossbars, one pipeline
    # register, rows folded where a stage has slack (the design fits only so); the board's 12 MHz
    # oscillator.
    "ice40": Arch(rows=64, cols=16, act_bits=4, input_encoding="bit_serial", col_parallelism=1,
                  mac_stages=1, mvm_cycles=8, clock_mhz=12.0, slack_folds=True),
}


def load_arch(spec: "str | Path | Arch | None" = None, **overrides) -> Arch:
    """An `Arch` from a preset name, a TOML file path or an `Arch`, with field ``overrides``.

    ``None`` overrides are ignored, so CLI options that were not given do not count.
    """
    if spec is None:
        arch = PRESETS["default"]
    elif isinstance(spec, Arch):
        arch = spec
    elif str(spec) in PRESETS:
        arch = PRESETS[str(spec)]
    elif str(spec).endswith(".toml"):
        path = Path(spec)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise UserError(f"--arch: cannot read {str(path)!r}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise UserError(f"--arch: {path.name} is not UTF-8 text (byte {e.object[e.start]:#04x} "
                            f"at offset {e.start}); TOML files are UTF-8") from None
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"--arch: {path.name} is not valid TOML: {e}") from None
        arch = Arch.from_dict(doc.get("arch", doc), source=str(path))
    else:
        raise UserError(f"--arch: {str(spec)!r} is neither a preset ({', '.join(PRESETS)}) nor a .toml file")
    return arch.replace(**{k: v for k, v in overrides.items() if v is not None})


def arch_label(spec: "str | Path | Arch | None" = None, **overrides) -> str:
    """How a result names the architecture it used: the preset name or TOML path that `load_arch`
    read (``custom`` for an `Arch` object), then the fields a command line changed, as in
    ``fpga, buffer=frame``. ``None`` overrides are left out, as in `load_arch`."""
    if isinstance(spec, Arch):
        base = "custom"
    elif spec is None or str(spec) in PRESETS:
        base = str(spec or "default")
    else:
        base = Path(spec).as_posix()
    return ", ".join([base, *(f"{k}={v}" for k, v in overrides.items() if v is not None)])
