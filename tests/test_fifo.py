# amaranth: UnusedElaboratable=no
"""PipelineFifo and SkidBuffer in the Amaranth simulator: constructor checks, cycle-exact agreement
with FifoModel under random traffic, ordering with a VectorLayout payload, latency and rate."""

import random

import pytest
from amaranth.sim import Simulator

from imcflow.errors import UserError
from imcflow.hw.fifo import FifoModel, PipelineFifo, SkidBuffer
from imcflow.hw.streams import VectorLayout
from imcflow.verif.amaranth_sim import flat, stream_receive, stream_send
from imcflow.verif.scoreboard import Scoreboard


def simulate(dut, *testbenches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    sim.run()


# --- constructor checks ----------------------------------------------------------------------

@pytest.mark.parametrize("depth", [0, -1, 2.0, "4", True])
def test_depth_must_be_a_positive_integer(depth):
    with pytest.raises(UserError, match=rf"^depth: must be a positive integer, not {depth!r}$"):
        PipelineFifo(8, depth)
    with pytest.raises(UserError, match=rf"^depth: must be a positive integer, not {depth!r}$"):
        FifoModel(depth)


@pytest.mark.parametrize("cls", [lambda s: PipelineFifo(s, 4), SkidBuffer])
def test_shape_must_be_shape_castable(cls):
    with pytest.raises(TypeError, match=r"^Shape must be a shape-castable object, not 'wide'$"):
        cls("wide")


def test_timing_attributes():
    assert (PipelineFifo(8, 1).latency, PipelineFifo(8, 1).interval) == (1, 2)
    assert (PipelineFifo(8, 2).latency, PipelineFifo(8, 2).interval) == (1, 1)
    skid = SkidBuffer(VectorLayout(4, 8))
    assert (skid.latency, skid.interval, skid.depth) == (1, 1, 2)


# --- cycle-exact agreement with the model ----------------------------------------------------

QUEUES = [pytest.param(lambda d=d: PipelineFifo(8, d), d, id=f"fifo-d{d}") for d in (1, 2, 3, 4, 7, 16)]
QUEUES += [pytest.param(lambda: SkidBuffer(8), 2, id="skid")]


@pytest.mark.parametrize("make, depth", QUEUES)
def test_matches_model_cycle_by_cycle(make, depth, seeds):
    # Random producer (obeying the stream rules) and random consumer, whose rates change every
    # 100 cycles so the queue fills, drains and streams; every cycle the outputs of the RTL must
    # equal the model's, including `level` and the payload on `o`.
    dut = make()
    cycles = 1500
    for seed in seeds(1):
        rng, model = random.Random(seed), FifoModel(depth)

        async def testbench(ctx):
            i_valid, i_payload = False, 0
            for cycle in range(cycles):
                if cycle % 100 == 0:
                    offer, accept = rng.choice([0.1, 0.5, 0.9, 1]), rng.choice([0.1, 0.5, 0.9, 1])
                if not i_valid and rng.random() < offer:
                    i_valid, i_payload = True, rng.randrange(256)
                o_ready = rng.random() < accept
                ctx.set(dut.i.valid, i_valid)
                ctx.set(dut.i.payload, i_payload)
                ctx.set(dut.o.ready, o_ready)
                got = (ctx.get(dut.i.ready), ctx.get(dut.o.valid), ctx.get(dut.level))
                want = (model.i_ready, model.o_valid, model.level)
                assert got == want, f"cycle {cycle}: (i.ready, o.valid, level) {got} != {want}"
                if model.o_valid:
                    assert ctx.get(dut.o.payload) == model.o_payload, f"cycle {cycle}: payload"
                accepted, _ = model.step(i_valid, i_payload, o_ready)
                i_valid = i_valid and not accepted
                await ctx.tick()

        simulate(dut, testbench)


# --- ordering of VectorLayout beats under idle cycles and backpressure -----------------------

@pytest.mark.parametrize("make", [lambda s: PipelineFifo(s, 5), SkidBuffer], ids=["fifo-d5", "skid"])
def test_vector_beats_in_order(make, seeds):
    layout = VectorLayout(3, 5, signed_=True)
    dut = make(layout)
    for seed in seeds(1):
        rng = random.Random(seed)
        beats = [layout.pack([rng.randrange(-16, 16) for _ in range(3)], last=(n % 7 == 6))
                 for n in range(300)]
        received = []

        async def producer(ctx):
            await stream_send(ctx, flat(dut.i), beats, idle=0.4, rng=random.Random(seed + 1))

        async def consumer(ctx):
            received.extend(await stream_receive(ctx, flat(dut.o), len(beats),
                                                 backpressure=0.6, rng=random.Random(seed + 2)))

        simulate(dut, producer, consumer)
        Scoreboard.check(beats, received, name="o", fmt=lambda w: repr(layout.unpack(w)))


# --- latency and rate ------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: PipelineFifo(8, 1), lambda: PipelineFifo(8, 2),
                                  lambda: PipelineFifo(8, 6), lambda: SkidBuffer(8)],
                         ids=["fifo-d1", "fifo-d2", "fifo-d6", "skid"])
def test_latency_and_interval(make):
    # With a producer that never idles and a consumer that never stalls, the first beat appears
    # `latency` cycles after it was accepted and the beats leave every `interval` cycles.
    dut, beats = make(), 20
    out_cycles = []

    async def producer(ctx):
        await stream_send(ctx, dut.i, range(beats))

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(4 * beats):
            _, _, handshake, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if handshake:
                out_cycles.append(cycle)
                assert payload == len(out_cycles) - 1

    simulate(dut, producer, consumer)
    # the first beat is accepted at the edge ending cycle 0 and offered in cycle `latency`
    assert out_cycles[0] == dut.latency
    assert [b - a for a, b in zip(out_cycles, out_cycles[1:])] == [dut.interval] * (beats - 1)
