# amaranth: UnusedElaboratable=no
"""`imcflow mutate` (imcflow.verif.mutate): Yosys mutants of a block run through its regression
and proofs. A small campaign on the FIFO must report consistent counts and kill the mutants that
break it; the crossbar's campaign runs on its fpga flavour; a regression too weak to catch some
mutants must report them as survivors with their source lines (and one proven equivalent as
such); a Yosys mutant that corrupts or misaddresses the FIFO's data while `level` stays right
must fail the port-level FIFO contract; bad arguments are one line and exit status 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from imcflow.cli.mutate import text as report_text
from imcflow.hw.fifo import PipelineFifo
from imcflow.sw.geometry import WindowGeometry
from imcflow.sw.timing import window_schedule
from imcflow.verif import contracts, mutate
from imcflow.verif.formal import FormalError, check


def imcflow(*args):
    return subprocess.run([sys.executable, "-m", "imcflow", *args], capture_output=True,
                          text=True)


def test_fifo_campaign_report_is_consistent():
    out = imcflow("mutate", "fifo", "--mutants", "10", "--seed", "2", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)          # exactly one JSON object on stdout
    results = report["results"]
    assert report["mutants"] == len(results) == 10
    counts = {s: sum(r["status"] == s for r in results)
              for s in ("killed", "survived", "equivalent")}
    assert counts == {s: report[s] for s in counts}
    assert report["kill_rate"] == report["killed"] / (report["mutants"] - report["equivalent"])
    assert sorted(r["mutsel"] for r in results) == list(range(1, 11))
    for r in results:
        assert re.match(r"hw/fifo\.py:\d+: ", r["source"]), r   # the mutated line, with its text
        assert (r["by"] is None) == (r["status"] == "survived")
    # the memory's write data mutated (seed 2 draws two bits tied, to 1 and to 0): level stays
    # right, the beats are wrong; the scoreboard (or the proof) must catch it
    corrupting = [r for r in results if "-port WR_DATA" in r["mutation"]]
    assert corrupting and all(r["status"] == "killed" for r in corrupting)
    assert "imcflow mutate:" not in out.stdout and "fifo: 11/11 simulated" in out.stderr


def test_crossbar_campaign_mutates_the_mac_array():
    out = imcflow("mutate", "crossbar", "--mutants", "4", "--seed", "3", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["mutants"] == len(report["results"]) == 4
    assert "fpga" in report["design"]
    for r in report["results"]:
        assert re.match(r"hw/(crossbar|arith)\.py:\d+: ", r["source"]), r
    assert report["killed"] >= 1


def test_survivors_and_equivalent_mutants_are_reported(monkeypatch):
    # A FIFO regression at full rate only (no stalls, no proof) cannot see a mutant that breaks
    # the FIFO when it fills: such mutants must come out as survivors, with their source lines
    # and texts, and out of the kill rate only those proven equivalent.
    def weak():
        fifo = PipelineFifo(3, 4)
        params = {"width": 3, "depth": 4, "latency": fifo.latency, "interval": fifo.interval}
        return fifo, params, mutate.Regression([
            {"testbench": "fifo_tb", "testcase": "full_rate", "parameters": {"seed": 5}}])
    monkeypatch.setattr(mutate, "_targets", lambda: {
        "fifo": mutate.Target("fifo", ("hw/fifo.py",), weak, None, "weak FIFO regression")})
    report = mutate.campaign("fifo", count=12, seed=1)
    survivors = [r for r in report["results"] if r["status"] == "survived"]
    assert survivors and report["kill_rate"] < 1
    for r in survivors:
        assert r["by"] is None
        where, text = r["source"].split(": ", 1)
        line = int(where.split(":")[1])
        assert text.split("  [")[0] == (Path(mutate.ROOT) / "hw/fifo.py").read_text() \
            .splitlines()[line - 1].strip()
    text = report_text(report)
    assert all(f"survived #{r['mutsel']}: {r['source']}" in text for r in survivors)
    relevant = report["mutants"] - report["equivalent"]
    assert report["kill_rate"] == report["killed"] / relevant


class Offset(wiring.Component):
    """A register stage that adds 3 to each beat; while idle it loads 9 (never shown: `valid` is
    low then)."""

    i: In(stream.Signature(4))
    o: Out(stream.Signature(4))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        plus = self.i.payload + Const(3, 4)
        loaded = Mux(self.i.valid, plus, 9)
        with m.If(self.i.ready):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(loaded)]
        return m


def test_equivalence_check_tells_equivalent_mutants_from_bugs():
    # Tying a bit of the constant 3 to the value it has changes nothing (equal for every input);
    # changing the idle value 9 changes only a payload that is not valid (equal for every input
    # that follows the stream rules); the other bit of 3 tied to 0 is a bug.
    offset = Offset()
    text = rtlil.convert(offset, name="offset")
    found = {}
    for m in mutate.mutations(text, "offset", 400, 1):
        f = dict(re.findall(r"-(mode|port|portbit) (\S+)", m.args))
        line = re.match(r"\S+: (.*)  \[", m.describe())
        if line:
            found.setdefault((line[1], f["mode"], f["port"], f["portbit"]), m)
    plus, loaded = "plus = self.i.payload + Const(3, 4)", "loaded = Mux(self.i.valid, plus, 9)"
    same = found[(plus, "const1", "B", "0")]            # bit 0 of 3 is 1 already
    idle = found[(loaded, "const0", "A", "3")]          # 9 becomes 1, shown never
    bug = found[(plus, "const0", "B", "1")]             # 3 becomes 1
    assert mutate.equivalent(offset, same).startswith("equiv_induct")
    assert mutate.equivalent(offset, idle).startswith("k-induction")
    assert mutate.equivalent(offset, bug) is None


class Scale(wiring.Component):
    """``min(round(x * 11 / 4), 5)`` through a product register that holds while stalled, as the
    average pools' requantizers do: it holds 0, 11, 22 or 33, never e.g. 4."""

    i: In(stream.Signature(2))
    o: Out(stream.Signature(3))

    def elaborate(self, platform):
        m = Module()
        product = Signal(6)
        full = Signal()
        o_free = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(~full | o_free)
        with m.If(self.i.ready):
            m.d.sync += [full.eq(self.i.valid), product.eq(self.i.payload * 11)]
        with m.If(o_free):
            m.d.sync += [self.o.valid.eq(full),
                         self.o.payload.eq(Mux(product >= 18, 5, (product + 2)[2:]))]
        return m


def test_pdr_proves_mutants_equal_in_reachable_states_only_and_no_bug():
    # Bit 2 of the product register tied to 0 changes no output for the products that occur
    # (22 becomes 18, which saturates to 5 as well) but does for 4, where induction may start:
    # only PDR (the reachable states) proves it. Bit 3 tied to 0 is a bug (11 becomes 3):
    # PDR must find it reachable, not merely fail to prove it.
    scale = Scale()
    text = rtlil.convert(scale, name="scale")
    muts = {re.search(r"-portbit (\d+)", m.args)[1]: m
            for m in mutate.mutations(text, "scale", 60, 1, "-mode const0 -port Q")
            if "product = Signal(6)" in m.describe()}
    assert mutate.equivalent(scale, muts["2"]).startswith("pdr:")
    assert mutate.equivalent(scale, muts["3"]) is None
    _, pair = mutate._gold_and_gate(scale, muts["3"])
    with pytest.raises(FormalError, match="an assertion fails in a reachable state"):
        check(contracts.SameBehaviour(scale, "gold", "gate"), mode="pdr", name="scale-bug",
              modules=[pair], timeout=60)


def test_held_bit_check_proves_a_product_bit_the_rounding_drops_and_no_bug():
    # The product register's bit 0 inverted at its output: the register reads it back while it
    # holds, so the mutant's bit 0 flips in every stalled cycle and really differs from the
    # original's (the plain one-step check finds that reachable: accumulator #11, #18, #40 and
    # gap #5, #8, #14 of the seed-1 campaign at 8908720 are this case), but (product + 2) >> 2
    # drops it and the saturation compare gives the same for the products that occur (0, 11,
    # 22, 33). With the mutated register's bits free in the copy, only outputs and the other
    # registers compared, PDR proves it. Bit 1 inverted is the rounding bit (11 shows 2, not
    # 3): a bug, which the same check must find reachable, not merely fail to prove. The same
    # for the multiplier's output bits (the product loaded mutated, read a cycle later: gap #5,
    # #8): the copy must read the mutant's register, not the original's.
    scale = Scale()
    text = rtlil.convert(scale, name="scale")
    muts = {(re.search(r"-port (\w+)", m.args)[1], re.search(r"-portbit (\d+)", m.args)[1]): m
            for m in mutate.mutations(text, "scale", 200, 1, "-mode inv")
            if re.search(r"product = Signal\(6\)|product\.eq\(self\.i\.payload \* 11\)",
                         m.describe())}
    spec = contracts.Driven(scale, "unit")
    for (port, bit), proven in ((("Q", "0"), True), (("Q", "1"), False), (("Y", "0"), True),
                                (("Y", "1"), False)):
        args = muts[port, bit].args.replace("-module scale", "-module unit")
        with pytest.raises(FormalError, match="an assertion fails in a reachable state"):
            check(spec, mode="pdr", name=f"held-{port}{bit}-plain", timeout=60,
                  modules=[mutate._one_step(scale, args)])
        held = mutate._one_step(scale, args, free=True)
        assert f'attribute \\imcflow_free "product [{bit}]"' in held   # that bit alone is free
        assert held.count("$assert $one_step_assert") == 1
        if proven:
            check(spec, mode="pdr", name=f"held-{port}{bit}", modules=[held], timeout=60)
        else:
            with pytest.raises(FormalError, match="an assertion fails in a reachable state"):
                check(spec, mode="pdr", name=f"held-{port}{bit}", modules=[held], timeout=60)
    assert mutate.equivalent(scale, muts["Q", "0"]).startswith(
        "pdr: the mutant's state differs from the original's at most in product [0]")
    assert mutate.equivalent(scale, muts["Q", "1"]) is None


class Halve(wiring.Component):
    """A register loaded from each beat taken, shown halved (``r >> 1``) through no register:
    its bit 0 reaches no output, its bit 1 reaches one combinationally."""

    i: In(stream.Signature(3))
    o: Out(stream.Signature(2))

    def elaborate(self, platform):
        m = Module()
        r = Signal(3)
        full = Signal()
        m.d.comb += [self.i.ready.eq(~full | self.o.ready), self.o.valid.eq(full),
                     self.o.payload.eq(r[1:])]
        with m.If(self.i.ready):
            m.d.sync += [full.eq(self.i.valid), r.eq(self.i.payload)]
        return m


def test_held_bit_check_compares_the_outputs_of_the_free_bits():
    # The held-bit check must compare the outputs themselves, not only what registers load:
    # here the mutated register's bit 1 reaches the output through no register, and it is the
    # only register that reads it. Bit 0 inverted (read back while it holds) is no bug.
    halve = Halve()
    text = rtlil.convert(halve, name="halve")
    muts = {re.search(r"-portbit (\d+)", m.args)[1]: m
            for m in mutate.mutations(text, "halve", 80, 1, "-mode inv -port Q")
            if "r = Signal(3)" in m.describe()}
    spec = contracts.Driven(halve, "unit")
    for bit, proven in (("0", True), ("1", False)):
        held = mutate._one_step(halve, muts[bit].args.replace("-module halve", "-module unit"),
                                free=True)
        assert f'attribute \\imcflow_free "r [{bit}]"' in held
        if proven:
            check(spec, mode="pdr", name=f"halve-{bit}", modules=[held], timeout=60)
        else:
            with pytest.raises(FormalError, match="an assertion fails in a reachable state"):
                check(spec, mode="pdr", name=f"halve-{bit}", modules=[held], timeout=60)


class Modulo3(wiring.Component):
    """Shows a counter 0, 1, 2, 0, ... (one step per beat taken) in a 3-bit register: its bit 2
    is never set from reset, although nothing but reachability says so."""

    o: Out(stream.Signature(3))

    def elaborate(self, platform):
        m = Module()
        count = Signal(3)
        m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(count)]
        with m.If(self.o.ready):
            m.d.sync += count.eq(Mux(count == 2, 0, count + 1))
        return m


def test_one_step_check_proves_a_mutation_that_never_changes_the_next_state_and_no_bug():
    # The count's bit 2 tied to 0 changes nothing from reset (the line buffer's `count + 1`
    # register with its sign bit tied, linebuffer #25, is this case) but does from 5, where
    # equivalence by induction may start; the one-step check proves, on the original alone,
    # that in no reachable state the mutant would load another next state or show other
    # outputs. Bit 1 tied to 0 is a bug (2 shows 0): found reachable.
    dut = Modulo3()
    text = rtlil.convert(dut, name="modulo3")
    muts = {re.search(r"-portbit (\d+)", m.args)[1]: m
            for m in mutate.mutations(text, "modulo3", 60, 1, "-mode const0 -port Q")
            if "count = Signal(3)" in m.describe()}
    _, pair = mutate._gold_and_gate(dut, muts["2"])
    assert not mutate._equiv_induct(pair)
    assert mutate.equivalent(dut, muts["2"]).startswith("pdr: the mutant's next state")
    for bit, proven in (("2", True), ("1", False)):
        alone = mutate._one_step(dut, muts[bit].args.replace("-module modulo3", "-module unit"))
        assert alone.count("$assert $one_step_assert") == 1
        spec = contracts.Driven(dut, "unit")
        if proven:
            check(spec, mode="pdr", name="one-step-equal", modules=[alone], timeout=60)
        else:
            with pytest.raises(FormalError, match="an assertion fails in a reachable state"):
                check(spec, mode="pdr", name="one-step-bug", modules=[alone], timeout=60)


def fifo_mutants(select):
    fifo = PipelineFifo(3, 5)
    text = rtlil.convert(fifo, name="fifo_m")
    muts = mutate.mutations(text, "fifo_m", 3, 1, select)
    _, module = mutate.mutant_design(text, "fifo_m", muts)
    return fifo, muts, module


@pytest.mark.parametrize("select", ["-mode inv -port WR_DATA", "-mode const0 -port RD_ADDR"],
                         ids=["corrupt-data", "wrong-read-address"])
def test_yosys_mutants_that_keep_level_fail_the_fifo_contract(select, tmp_path, monkeypatch):
    # Mutants of the memory's data or read address leave `level` (and every handshake) exactly
    # as in the original; only the tracked beat, seen from the ports, can tell. The original
    # (mutsel 0) meets the contract; each mutant fails it at the data assertion.
    monkeypatch.setenv("IMCFLOW_CACHE", str(tmp_path))
    fifo, muts, module = fifo_mutants(select)
    assert muts
    width = mutate.mutsel_width(len(muts))
    source = Path(contracts.__file__).read_text().splitlines()
    for mutsel in [0, *(m.index for m in muts)]:
        mutant = contracts.as_instance(fifo, "fifo_m", {"mutsel": Const(mutsel, width)})
        spec = contracts.QueueSpec(mutant, internal=False)
        if mutsel == 0:
            check(spec, mode="bmc", depth=11, name="original", modules=[module])
            continue
        with pytest.raises(FormalError, match="failed assertion") as failure:
            check(spec, mode="bmc", depth=11, name=f"mutant{mutsel}", modules=[module])
        failed = {source[int(n) - 1].strip()
                  for n in re.findall(r"contracts\.py:(\d+)", str(failure.value))}
        assert not any("level" in line for line in failed), failed


@pytest.mark.parametrize("block", ["fork", "join"])
def test_bank_proofs_hold_on_the_original(block, tmp_path, monkeypatch):
    # A campaign stops when its proofs fail on the original design (mutsel 0): every unit a
    # bank's contract covers must meet it (the join bank's unit of several passes is not one
    # JoinSpec describes: it consumes a pair only every `passes` cycles)
    monkeypatch.setenv("IMCFLOW_CACHE", str(tmp_path))
    target = mutate._targets()[block]
    bank, _, _ = target.design()
    text = rtlil.convert(bank, name="bank_m")
    muts = mutate.mutations(text, "bank_m", 1, 1, target.select)
    _, module = mutate.mutant_design(text, "bank_m", muts)
    target.proofs(bank, module, "bank_m", mutate.mutsel_width(len(muts)), 0)


@pytest.mark.parametrize("geometry", [(5, 5, 3, 1, 1, "line", 1), (7, 5, 3, 2, 0, "line", 1),
                                      (4, 4, 2, 1, 1, "frame", 1), (5, 4, 1, 2, 0, "line", 1),
                                      (6, 5, 3, 1, 1, "line", 9), (5, 4, 3, 2, 1, "frame", 4),
                                      (4, 4, 2, 1, 0, "line", 2)])
def test_window_model_under_stalls(geometry):
    # Never stalled, the model is window_schedule (the full-rate timing the RTL is checked
    # against, also for a window read over several passes); stalled, it takes a pixel only when
    # offered, hands a window over only when the consumer is ready, and still delivers every
    # window in the same order of handshakes.
    *shape, strategy, passes = geometry
    pixels, windows = window_schedule(WindowGeometry(*shape[:2], 1, *shape[2:]),
                                      strategy=strategy, images=3, passes=passes)
    cycles = int(windows[-1]) + 1
    accepted, taken = mutate.window_model(*shape, strategy, 3, "1" * cycles, "1" * cycles,
                                          passes=passes)
    assert accepted == list(pixels) and taken == list(windows)
    rng = np.random.default_rng(len(geometry))
    offered = "".join(rng.choice(["0", "1"], 8 * cycles))
    ready = "".join(rng.choice(["0", "1", "1"], 8 * cycles))
    accepted, taken = mutate.window_model(*shape, strategy, 3, offered, ready, passes=passes)
    assert all(offered[c] == "1" for c in accepted) and all(ready[c] == "1" for c in taken)
    assert len(accepted) >= len(pixels) and len(taken) == len(windows)
    assert taken[0] > accepted[0] and sorted(set(taken)) == taken


@pytest.mark.parametrize("pixels, passes, after", [(1, 1, 1), (1, 2, 1), (1, 3, 1), (6, 1, 1),
                                                   (4, 3, 1), (2, 2, 1), (1, 2, 2), (1, 3, 2)])
def test_requant_model_under_stalls(pixels, passes, after):
    # Never stalled, the model is the blocks' full-rate timing (their `latency` and `interval`
    # attributes): the accumulator (one beat an image) takes a beat every `passes` cycles, the
    # global pool a pixel every cycle when an image has at least `passes` pixels, and each
    # result leaves 2 + after + passes - 1 cycles after the image's last pixel (the join,
    # after = 2: its sum register too). Stalled, it takes only what is offered, hands over only
    # when ready, and still delivers one result per image.
    images, registers = 7, 2 + after
    cycles = images * pixels * passes + 10
    accepted, taken = mutate.requant_model(pixels, "1" * cycles, "1" * cycles, passes, after)
    step = passes if pixels == 1 else 1
    accepted = accepted[:images * pixels]
    assert accepted == list(range(0, step * images * pixels, step))
    assert taken[:images] == [accepted[(n + 1) * pixels - 1] + registers + passes - 1
                              for n in range(images)]
    rng = np.random.default_rng(pixels * 10 + passes)
    offered = "".join(rng.choice(["0", "1"], 20 * cycles))
    ready = "".join(rng.choice(["0", "1", "1"], 20 * cycles))
    accepted, taken = mutate.requant_model(pixels, offered, ready, passes, after)
    assert all(offered[c] == "1" for c in accepted) and all(ready[c] == "1" for c in taken)
    # all registers in flight
    assert len(accepted) // pixels - registers <= len(taken) <= len(accepted) // pixels
    for n, t in enumerate(taken[:20]):   # the result after its image, through the registers
        assert t >= accepted[(n + 1) * pixels - 1] + registers + passes - 1
    # an empty total register takes the image's last pixel while the registers after it are
    # full and stalled (the model of a register waiting for the next even when empty, as
    # accumulator #17 at d35e40c, takes it only when the output is taken)
    if pixels == 1 and passes == 1:
        accepted, taken = mutate.requant_model(1, "11001111", "00000001", 1)
        assert accepted == [0, 1, 4, 7] and taken == [7]


@pytest.mark.parametrize("args, message", [
    (["nosuch"], "block must be one of fifo, skid, "),
    (["fifo", "--mutants", "0"], "--mutants must be an integer in 1..4096, not 0"),
    (["fifo", "--seed", "-1"], "--seed must be a non-negative integer, not -1"),
])
def test_bad_arguments_are_one_line(args, message):
    out = imcflow("mutate", *args)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr


def test_join_bank_shows_product_mutants_in_their_own_channel(monkeypatch):
    # join #8 and #38 at 2f01601 (docs/verification.md): j3's multiplier of b in lane 2, which
    # serves channel 2 alone, with its factor 777 read as 776, and j0's product register of a in
    # channel 0 with bit 4 tied to 1. The bank's rounding pairs were spread over the channels and
    # in j0 all saturated; now every channel gets every one of them, of the pairs that do not
    # saturate, and each mutant changes the golden output of its channel's data
    from imcflow.sw.arith import act_range, round_shift
    units = []
    monkeypatch.setattr(mutate, "_stream_bank", lambda name, us, **kw: units.extend(us))
    mutate._join()

    def changed(n, ch, mutant):
        c, _, _, mult_a, mult_b, shift, act_bits, act_signed, _ = mutate.JOINS[n]
        a = units[n].inputs["i_a"][..., ch].reshape(-1)
        b = units[n].inputs["i_b"][..., ch].reshape(-1)
        out = lambda s: np.clip(round_shift(s, shift), *act_range(act_bits, act_signed))
        return int(np.sum(out(a * mult_a + b * mult_b) != out(mutant(a, b))))

    assert changed(3, 2, lambda a, b: a * 1201 + b * 776) > 0
    assert changed(0, 0, lambda a, b: (a * 3 | 16) + b * 700) > 0
    # the same beats of every channel: the edge pairs
    for unit in units:
        a = unit.inputs["i_a"].reshape(-1, unit.inputs["i_a"].shape[-1])
        assert (a[:12] == a[:12, :1]).all()


def test_join_bank_checks_every_unit_under_stalls(monkeypatch):
    # join #25 at 91e86ec (docs/verification.md): j0's sum register waiting for the output even
    # when empty (`sum_free` without `~sum_valid`) kept every value and lost only cycles under
    # stalls, which only the unit of several passes had a check of; now every unit's handshakes
    # are checked against `requant_model` under stalls (one register after the sum of one pass)
    units = []
    monkeypatch.setattr(mutate, "_stream_bank", lambda name, us, **kw: units.extend(us))
    mutate._join()
    assert len(units) == len(mutate.JOINS) and all(u.stalled is not None for u in units)


def test_rounding_pairs_within_the_bounds_do_not_saturate():
    from imcflow.sw.arith import round_shift
    a, b = mutate._all_pairs(8, False, 8, True)
    edge_a, edge_b = mutate._rounding_pairs(a, b, 3, 700, 7, 36, (-128, 127))
    u = round_shift(edge_a * 3 + edge_b * 700, 7)
    assert len(edge_a) == 36 and ((u >= -128) & (u <= 127)).all()
    dropped = (edge_a * 3 + edge_b * 700) % 128 - 64
    assert (np.abs(dropped + 0.5) <= 1.5).all()     # at or next to the rounding boundary
