"""stall_mask: the seeded stall pattern Python and the C++ harness share, against a pure-int reference."""

import numpy as np
import pytest

from imcflow.verif.patterns import STREAM_BACKPRESSURE, STREAM_IDLE, stall_mask

M = 1 << 64


def splitmix_reference(seed, stream, probability, cycles):
    """The definition, one cycle at a time in Python integers (independent of numpy's wrapping)."""
    base = (seed % M) ^ ((stream * 0xD1B54A32D192ED03) % M)
    threshold = int(probability * 2**53)
    out = []
    for c in range(cycles):
        z = (base + (c + 1) * 0x9E3779B97F4A7C15) % M
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % M
        z ^= z >> 31
        out.append((z >> 11) < threshold)
    return out


def test_splitmix_known_value():
    # SplitMix64 seeded with 0 (stream 0 leaves the seed as is) first outputs 0xE220A8397B1DCDAF,
    # the published reference value; (z >> 11) / 2**53 = 0.8833..., so p = 0.88 does not stall
    # cycle 0 and p = 0.89 does.
    assert (0xE220A8397B1DCDAF >> 11) / 2**53 == pytest.approx(0.88331, abs=1e-5)
    assert not stall_mask(0, 0, 0.88, 1)[0]
    assert stall_mask(0, 0, 0.89, 1)[0]


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**64 + 7, 2**70 - 1])
@pytest.mark.parametrize("stream", [STREAM_IDLE, STREAM_BACKPRESSURE])
@pytest.mark.parametrize("probability", [0.3, 0.5, 0.999])
def test_matches_integer_reference(seed, stream, probability):
    mask = stall_mask(seed, stream, probability, 300)
    assert mask.dtype == bool and mask.shape == (300,)
    assert mask.tolist() == splitmix_reference(seed, stream, probability, 300)


def test_known_prefixes():
    # Pinned so a change to the definition (which the C++ harness shares) cannot go unnoticed.
    idle = "".join("x" if s else "." for s in stall_mask(1, STREAM_IDLE, 0.3, 32))
    back = "".join("x" if s else "." for s in stall_mask(1, STREAM_BACKPRESSURE, 0.5, 32))
    assert idle == "".join("x" if s else "." for s in splitmix_reference(1, 1, 0.3, 32))
    assert back == "".join("x" if s else "." for s in splitmix_reference(1, 2, 0.5, 32))
    assert idle == IDLE_SEED1_P03
    assert back == BACK_SEED1_P05


def test_rate_and_streams_differ():
    idle = stall_mask(7, STREAM_IDLE, 0.3, 100_000)
    back = stall_mask(7, STREAM_BACKPRESSURE, 0.3, 100_000)
    assert abs(idle.mean() - 0.3) < 0.01 and abs(back.mean() - 0.3) < 0.01
    assert (idle != back).mean() > 0.3
    assert not stall_mask(7, STREAM_IDLE, 0.0, 1000).any()


@pytest.mark.parametrize("args", [(1, 1, 1.0, 5), (1, 1, -0.1, 5), (-1, 1, 0.5, 5), (1, 1, 0.5, -1)])
def test_bad_arguments(args):
    with pytest.raises(ValueError):
        stall_mask(*args)


# stall_mask(1, STREAM_IDLE, 0.3, 32) and stall_mask(1, STREAM_BACKPRESSURE, 0.5, 32), x = stalled.
IDLE_SEED1_P03 = "x.xx.x.xx.x....xx.xx..x.x.x.x..."
BACK_SEED1_P05 = "x...xx.....xx..xx...x..xx..x.xx."
