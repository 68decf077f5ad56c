"""Shared pytest fixtures.

Randomized tests take a seed from `seeds(n)` or `rng`. By default the seeds are fixed (drawn
from the test's id), so CI replays the same runs; ``IMCFLOW_SEED=random`` draws fresh ones to
explore, and ``IMCFLOW_SEED=<seed>`` replaces them all by one, so a failing run reproduces
alone. Each seed is printed (pytest shows it on failure).
"""

from __future__ import annotations

import os
import random
import zlib

import numpy as np
import pytest


def _base_seed(request) -> int:
    # Stable per test id, so parallel workers and reruns draw the same seeds.
    return zlib.crc32(request.node.nodeid.encode())


def _seed_setting() -> str:
    value = os.environ.get("IMCFLOW_SEED", "").strip()
    if value not in ("", "random") and not value.isdigit():
        raise pytest.UsageError(f"IMCFLOW_SEED: must be 'random' or an integer >= 0, not {value!r}")
    return value


def pytest_configure(config):
    _seed_setting()   # a mistyped IMCFLOW_SEED stops the run before any test


def pytest_report_header(config):
    value = _seed_setting()
    return [f"IMCFLOW_SEED={value}: " + ("fresh random seeds, printed by each test" if value == "random"
                                         else "one seed for every test") if value else
            "seeds: fixed per test (IMCFLOW_SEED=random explores, IMCFLOW_SEED=<seed> replays)"]


@pytest.fixture
def seeds(request):
    """``seeds(n)`` -> n seeds for this test: fixed per test id, fresh with
    ``IMCFLOW_SEED=random``, or ``[IMCFLOW_SEED]`` when it is a number."""

    def make(n: int) -> list[int]:
        value = _seed_setting()
        if value.isdigit():
            chosen = [int(value)]
        else:
            base = random.SystemRandom().randrange(2**31) if value else _base_seed(request)
            chosen = [(base + 7919 * i) % 2**31 for i in range(n)]
        print(f"seeds: {chosen} (replay one with IMCFLOW_SEED=<seed>)")
        return chosen

    return make


@pytest.fixture
def rng(seeds):
    """A NumPy generator seeded from this test's first seed."""
    return np.random.default_rng(seeds(1)[0])
