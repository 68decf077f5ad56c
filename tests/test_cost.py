"""The cost model (imcflow.sw.cost): every energy component of a tiny network against numbers
worked out by hand, the defaults against the published silicon figures they were derived from,
TOML overrides, one-line errors, and the energy and area figures of ``imcflow map``."""

from __future__ import annotations

import json
import math

import pytest

from imcflow.cli import main
from imcflow.errors import UserError
from imcflow.sw.arch import Arch
from imcflow.sw.cost import CostModel, estimate, load_cost
from imcflow.sw.ir import Add, AvgPool, Conv2d, Dense, Input, MaxPool, Network, ReLU, Shape
from imcflow.sw.mapper import map_network
from imcflow.sw.ops.grouped_conv import GroupedConv2d

# Round numbers, so each component below is a short hand calculation. The SRAM size law is made
# flat (every buffer is below sram_min_bytes = sram_ref_bytes), and a core is 10 um x 10 um:
# 16 x 2 cells of 2 um^2 plus 2 columns of 18 um^2 (at 4 ADC bits, half of column_area_um2).
HAND = CostModel(cell_read_j=1e-15, adc_fom_j=1e-15, add_j_per_bit=1e-16, mult_j_per_bit2=1e-17,
                 sram_j_per_bit=1e-15, sram_ref_bytes=1e6, sram_min_bytes=1e6,
                 wire_j_per_bit_mm=1e-12, core_leakage_w=1e-6, cell_area_um2=2.0,
                 column_area_um2=36.0, sram_bit_area_um2=0.5, stage_area_mm2=1e-3)
def exact(x):
    """``x`` up to float rounding (pytest.approx's default absolute 1e-12 would swallow pJ)."""
    return pytest.approx(x, rel=1e-9, abs=0)


TINY_ARCH = Arch(rows=16, cols=2, adc_bits=4, act_bits=4, mvm_cycles=4, clock_mhz=100.0)


def tiny_net():
    """4x4x2 input, a padded 3x3 conv to 3 channels (18 rows: 2 row tiles; 3 columns: 2 column
    tiles of the 16x2 crossbar), ReLU, a 2x2 max pool."""
    return Network("tiny", [Input("in", Shape(4, 4, 2)),
                            Conv2d("c", "in", 3, kernel=3, padding=1), ReLU("r", "c"),
                            MaxPool("mp", "r", kernel=2, stride=2)])


def test_tiny_network_energy_by_hand():
    mapping = map_network(tiny_net(), TINY_ARCH)
    conv = mapping.layer("c")
    assert (conv.row_tiles, conv.col_tiles, conv.interval, mapping.cycles_per_image) == (2, 2, 4, 64)
    cost = estimate(mapping, HAND)
    e = {l.name: l.energy for l in cost.layers}
    # conv: 16 output pixels, one pwm read of 18 x 3 cells each
    assert e["c"]["crossbar"] == exact(16 * 18 * 3 * 1e-15)
    # 16 pixels x 2 row tiles x 3 columns conversions at 2**4 * 1e-15
    assert e["c"]["adc"] == exact(16 * 2 * 3 * 16e-15)
    # accumulator 4 + 1 + 1 = 6 bits: one row-tile add and one bias add per column and pixel,
    # one 6 x 16-bit requantization multiply
    assert e["c"]["digital"] == exact(16 * 3 * 2 * 6 * 1e-16 + 16 * 3 * 6 * 16 * 1e-17)
    # line buffer of 8-bit input pixels: 16 written (2 channels), 16 windows of 9 read
    assert e["c"]["buffer"] == exact((16 * 2 * 8 + 16 * 9 * 2 * 8) * 1e-15)
    # 16 pixels x 3 channels x 4 bits over one 0.01 mm core pitch
    assert e["c"]["transfer"] == exact(16 * 3 * 4 * 0.01 * 1e-12)
    # 4 cores leaking 1 uW for 64 cycles at 100 MHz
    assert e["c"]["leakage"] == exact(4 * 1e-6 * 64 / 100e6)
    # the source sends 16 pixels of 2 8-bit channels
    assert sum(e["in"].values()) == exact(16 * 2 * 8 * 0.01 * 1e-12)
    # max pool: 4 outputs x 3 channels x 3 compares of 4 bits; its line buffer takes 16 pixels
    # and reads 4 windows of 4; its 4 outputs leave over one pitch
    assert e["mp"]["digital"] == exact(4 * 3 * 3 * 4 * 1e-16)
    assert e["mp"]["buffer"] == exact((16 * 3 * 4 + 4 * 4 * 3 * 4) * 1e-15)
    assert e["mp"]["transfer"] == exact(4 * 3 * 4 * 0.01 * 1e-12)
    assert sum(e["r"].values()) == 0  # fused into the conv
    assert cost.energy_per_image_j == exact(sum(sum(v.values()) for v in e.values()))
    assert cost.ops_per_image == 2 * 18 * 3 * 16
    assert cost.tops_per_w == exact(cost.ops_per_image / cost.energy_per_image_j / 1e12)
    # area: 4 cores of 100 um^2, the buffers at 0.5 um^2 per bit, one pool stage
    bits = conv.buffer_bits + mapping.layer("mp").buffer_bits
    assert cost.area_mm2 == exact(4 * 1e-4 + bits * 0.5e-6 + 1e-3)


def test_bit_serial_reads_and_converts_every_plane():
    mapping = map_network(tiny_net(), TINY_ARCH.replace(input_encoding="bit_serial"))
    e = estimate(mapping, HAND.replace(plane_read_fraction=0.25)).layers[1].energy
    assert e["crossbar"] == exact(4 * 0.25 * 16 * 18 * 3 * 1e-15)  # 4 planes of 1/4 window
    assert e["adc"] == exact(4 * 16 * 2 * 3 * 16e-15)
    # plus a shift-add of (4 + 4)-bit plane results for every plane after the first; the
    # accumulator is then 4 + 4 + 1 + 1 = 10 bits
    assert e["digital"] == exact(16 * 3 * 2 * 3 * 8 * 1e-16 + 16 * 3 * 2 * 10 * 1e-16
                                         + 16 * 3 * 10 * 16 * 1e-17)


def test_defaults_reproduce_the_published_core():
    # One full 256 x 256 MVM on the default arch, as HERMES measured it: 2 * 65536 operations at
    # 10.5 TOPS/W is 12.48 nJ (leakage over its ~133 ns MVM included); a core is 0.62 mm^2
    # (63.1 TOPS / 64 cores at 1.59 TOPS/mm^2). docs/cost-model.md derives the defaults from these.
    net = Network("one_mvm", [Input("in", Shape(1, 1, 256)), Dense("fc", "in", 256)])
    mapping = map_network(net, Arch())
    fc = estimate(mapping, cycles_per_image=133).layers[1].energy
    core = fc["crossbar"] + fc["adc"] + fc["digital"] + fc["leakage"]
    assert core == pytest.approx(2 * 65536 / 10.5e12, rel=0.01)
    assert CostModel().core_area_mm2(Arch()) == pytest.approx(63.1 / 64 / 1.59, rel=0.01)


def test_sram_energy_grows_with_the_square_root_of_its_size():
    c = CostModel()
    assert c.sram_bit_j(8 * 8192) == exact(c.sram_j_per_bit)
    assert c.sram_bit_j(8 * 32768) == exact(2 * c.sram_j_per_bit)
    assert c.sram_bit_j(8) == c.sram_bit_j(8 * 512) == exact(c.sram_j_per_bit / 4)


def test_overrides_from_toml_take_effect(tmp_path):
    path = tmp_path / "cost.toml"
    path.write_text("[cost]\ncell_read_j = 3.2e-13\ncore_leakage_w = 1e-3\n")
    cost = load_cost(path)
    assert cost.cell_read_j == 3.2e-13 and cost.core_leakage_w == 1e-3
    assert cost.adc_fom_j == CostModel().adc_fom_j
    mapping = map_network(tiny_net(), TINY_ARCH)
    base, doubled = estimate(mapping).layers[1].energy, estimate(mapping, cost).layers[1].energy
    assert doubled["crossbar"] == exact(2 * base["crossbar"])
    assert doubled["adc"] == base["adc"]
    plain = tmp_path / "plain.toml"  # without the [cost] table
    plain.write_text("adc_fom_j = 1e-14\n")
    assert load_cost(plain).adc_fom_j == 1e-14


@pytest.mark.parametrize("text, message", [
    ("cell_read_j = -1.0", r"^cost.cell_read_j: must be a positive number, not -1.0$"),
    ("adc_fom_j = 'cheap'", r"^cost.adc_fom_j: must be a positive number, not 'cheap'$"),
    ("adc_j = 1e-12", r"^cost: unknown field 'adc_j'; allowed: cell_read_j, "),
    ("cell_read_j = ", r"^--cost: c.toml is not valid TOML"),
])
def test_bad_fields_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(UserError, match=message):
        load_cost(path)


def test_map_reports_energy_and_area(capsys, tmp_path):
    assert main(["map", "--network", "digits", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["energy_per_image_j"] == exact(sum(l["energy_j"] for l in s["layers"]))
    assert s["images_per_j"] == exact(1 / s["energy_per_image_j"])
    assert s["area_mm2"] == exact(sum(l["area_mm2"] for l in s["layers"]))
    crossbar = [l for l in s["layers"] if l["role"] == "crossbar"]
    assert all(l["energy_breakdown_j"]["adc"] > 0 for l in crossbar)
    assert 0 < s["tops_per_w"] < 20 and math.isfinite(s["area_mm2"])
    # an override reaches the command
    path = tmp_path / "cost.toml"
    path.write_text(f"adc_fom_j = {2 * CostModel().adc_fom_j}\n")
    assert main(["map", "--network", "digits", "--json", "--cost", str(path)]) == 0
    t = json.loads(capsys.readouterr().out)
    assert t["energy_breakdown_j"]["adc"] == exact(2 * s["energy_breakdown_j"]["adc"])
    # the table shows the figures, and a bad file is one line with exit status 2
    assert main(["map", "--network", "digits"]) == 0
    assert "TOPS/W" in capsys.readouterr().out
    path.write_text("cell_read_j = 0\n")
    assert main(["map", "--network", "digits", "--cost", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "imcflow map: error: cost.cell_read_j: must be a positive number, not 0"


def test_residual_join_and_skip_fifo_by_hand():
    net = Network("res", [Input("in", Shape(4, 4, 2)), Conv2d("c1", "in", 2, kernel=3, padding=1),
                          ReLU("r1", "c1"), Conv2d("c2", "r1", 2, kernel=3, padding=1),
                          Add("add", "c2", "r1"), ReLU("r2", "add")])
    mapping = map_network(net, TINY_ARCH)
    join = mapping.layer("add")
    assert join.skip_input == "c1" and join.buffer_words > 0
    e = estimate(mapping, HAND).layers[4].energy
    # 16 pixels x 2 channels: two 4 x 16-bit rescaling multiplies and one (4 + 16)-bit add
    assert e["digital"] == exact(16 * 2 * (2 * 4 * 16 * 1e-17 + 20 * 1e-16))
    # every 4-bit beat of the skip path written into the FIFO and read out once
    assert e["buffer"] == exact(2 * 16 * 2 * 4 * 1e-15)
    assert e["crossbar"] == e["adc"] == e["leakage"] == 0
    # c1 feeds both c2 and the join: its stream crosses a core pitch twice
    c1 = estimate(mapping, HAND).layers[1].energy
    assert c1["transfer"] == exact(16 * 2 * 4 * 2 * 0.01 * 1e-12)


def test_average_pool_sums_and_requantizes():
    net = Network("avg", [Input("in", Shape(4, 4, 2)), Conv2d("c", "in", 3, kernel=3, padding=1),
                          ReLU("r", "c"), AvgPool("ap", "r", kernel=2, stride=2)])
    e = estimate(map_network(net, TINY_ARCH), HAND).layers[3].energy
    # 4 outputs x 3 channels: 3 adds of the 4 + 2 = 6-bit window sum and one 6 x 16-bit multiply
    assert e["digital"] == exact(4 * 3 * (3 * 6 * 1e-16 + 6 * 16 * 1e-17))


def depthwise(arch):
    """8 depthwise 3x3 channels on 32 x 4 crossbars: packs of 3 groups of 9 rows and 1 column
    make an 82 x 8 matrix; of its 3 x 2 tiles, (0, 1) and (2, 0) hold no weight."""
    net = Network("dw", [Input("in", Shape(4, 4, 8)),
                         GroupedConv2d("g", "in", 8, kernel=3, padding=1, groups=8)])
    return map_network(net, arch)


def test_grouped_conv_counts_its_weights_and_built_tiles_only():
    arch = TINY_ARCH.replace(rows=32, cols=4)
    mapping = depthwise(arch)
    g = mapping.layer("g")
    assert (g.rows, g.cols, g.weights, g.empty, g.empty_tiles) == (82, 8, 72, ((0, 1), (2, 0)), 2)
    assert g.built_tiles(arch) == [(32, 4), (32, 4), (32, 4), (18, 4)]
    cost = estimate(mapping, HAND)
    e = cost.layers[1].energy
    # 16 pixels, each reads the 456 cells of the 4 built tiles and converts their 16 columns
    assert e["crossbar"] == exact(16 * 456 * 1e-15)
    assert e["adc"] == exact(16 * 16 * 16e-15)
    # accumulator 4 + 2 + 1 = 7 bits: per pixel 16 - 8 row-tile adds and 8 bias adds, and 8
    # 7 x 16-bit requantization multiplies
    assert e["digital"] == exact(16 * 16 * 7 * 1e-16 + 16 * 8 * 7 * 16 * 1e-17)
    assert e["leakage"] == exact(4 * 1e-6 * mapping.cycles_per_image / 100e6)
    # a multiply and an add per weight, not per cell of the 82 x 8 matrix
    assert cost.ops_per_image == 2 * 72 * 16


def test_replicas_leak_too():
    mapping = map_network(tiny_net(), TINY_ARCH, core_budget="2x")
    conv = mapping.layer("c")
    assert conv.replication == 2 and conv.crossbars == 8 and mapping.cycles_per_image == 32
    assert estimate(mapping, HAND).layers[1].energy["leakage"] == exact(8 * 1e-6 * 32 / 100e6)
