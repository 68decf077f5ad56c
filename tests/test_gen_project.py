"""The pieces of `imcflow.gen.project` that need no Verilator: the quantized network saved into an
output directory (`QNetwork.save` / `QNetwork.load`), skip FIFO scaling, the config hash and the
top's name."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from imcflow import rtl
from imcflow.errors import UserError
from imcflow.gen import project
from imcflow.gen.project import TARGET_ARCH, config_hash, prepare, scale_skip_fifos, top_name
from imcflow.sw import report
from imcflow.sw.arch import PRESETS
from imcflow.sw.inference import trace
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_qnetwork
from imcflow.sw.quant import QNetwork
from small_networks import small_net


def test_a_saved_quantized_network_loads_back_identical(tmp_path):
    q = load_qnetwork(small_net(), "small")
    q.save(tmp_path / "q.npz")
    r = QNetwork.load(tmp_path / "q.npz")
    assert (r.name, r.arch, r.input_scale) == (q.name, q.arch, q.input_scale)
    assert [type(layer) for layer in r.layers] == [type(layer) for layer in q.layers]
    for a, b in zip(q.layers, r.layers):
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, (a.name, f.name)
    assert r.network.shapes == q.network.shapes
    for a, b in zip(q.network, r.network):   # the float network too, weights included
        assert type(a) is type(b) and a.name == b.name and a.inputs == b.inputs
        if getattr(a, "weight", None) is not None:
            assert np.array_equal(a.weight, b.weight)
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 2))
    for name, codes in trace(q, images).items():
        assert np.array_equal(codes, trace(r, images)[name])


def test_loading_something_else_is_a_user_error(tmp_path):
    (tmp_path / "q.npz").write_bytes(b"not a zip file")
    with pytest.raises(UserError, match=r"q\.npz: not a quantized network written by Q"):
        QNetwork.load(tmp_path / "q.npz")
    np.savez(tmp_path / "arrays.npz", weight=np.zeros(3))
    with pytest.raises(UserError, match=r"arrays\.npz: not a quantized network"):
        QNetwork.load(tmp_path / "arrays.npz")


def test_skip_fifo_scaling():
    q = load_qnetwork("digits")
    mapping = map_network(q.network, q.arch)
    assert scale_skip_fifos(mapping, 1) is mapping
    join = mapping.layer("block_add")
    half = scale_skip_fifos(mapping, 0.5).layer("block_add")
    assert half.buffer_words == join.buffer_words // 2
    assert half.buffer_bits == join.buffer_bits // join.buffer_words * half.buffer_words
    assert scale_skip_fifos(mapping, 1e-3).layer("block_add").buffer_words == 1
    for bad in (0, -1, 17, True, "1"):
        with pytest.raises(UserError, match=r"^skip_depth_scale: must be a number in \(0, 16\]"):
            scale_skip_fifos(mapping, bad)


def test_config_hash_follows_every_input():
    q = load_qnetwork(small_net(), "small")
    mapping = map_network(q.network, q.arch)
    base = config_hash(q, mapping, "module x; endmodule")
    assert base == config_hash(q, mapping, "module x; endmodule") and len(base) == 16
    assert config_hash(q, mapping, "module y; endmodule") != base
    assert config_hash(q, scale_skip_fifos(mapping, 2), "module x; endmodule") != base
    q["c1"].bias[0] += 1
    assert config_hash(q, mapping, "module x; endmodule") != base


def test_top_name_is_a_verilog_identifier():
    assert top_name("digits", "0123456789abcdef") == "imcflow_digits_01234567"
    assert top_name("my-net.v2", "fedcba9876543210") == "imcflow_my_net_v2_fedcba98"


def test_one_mapping_per_generation(tmp_path, monkeypatch):
    # generate maps the network once (prepare); the report maps only the other buffer strategy
    # (its trade-off) and, with a core budget, the unreplicated pipeline it compares with.
    calls = {"project": 0, "report": 0}

    def counted(where, real):
        def map_network(*args, **kwargs):
            calls[where] += 1
            return real(*args, **kwargs)
        return map_network

    monkeypatch.setattr(project, "map_network", counted("project", project.map_network))
    monkeypatch.setattr(report, "map_network", counted("report", report.map_network))
    monkeypatch.setattr(rtl, "lint", lambda *args, **kwargs: None)    # no Verilator here
    gen = project.generate(tmp_path / "a", small_net(), "small", progress=False)
    assert calls == {"project": 1, "report": 1}
    assert gen.manifest["mapping"]["crossbars"] == gen.mapping.crossbars
    project.generate(tmp_path / "b", small_net(), "small", core_budget="2x", progress=False)
    assert calls == {"project": 2, "report": 3}


def test_the_default_arch_follows_the_crossbar_flavour():
    # Without an arch, `imcflow gen --target fpga` and `imcflow fpga build --network` both take
    # the fpga preset, `--target sim` the default one; an explicit arch wins.
    assert TARGET_ARCH == {"sim": "default", "fpga": "fpga"}
    for target, preset in TARGET_ARCH.items():
        gen = prepare(small_net(), target=target)
        assert gen.qnet.arch == PRESETS[preset] and gen.manifest["arch_name"] == preset
        assert gen.target == target and gen.directory is None
    gen = prepare(small_net(), "small", target="fpga", buffer="frame")
    assert gen.qnet.arch == PRESETS["small"].replace(buffer="frame")
    assert gen.manifest["arch_name"] == "small, buffer=frame"
    with pytest.raises(UserError, match=r"^target: must be one of sim, fpga, not 'asic'$"):
        prepare(small_net(), target="asic")
