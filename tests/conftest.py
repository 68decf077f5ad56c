"""Shared pytest fixtures.

Randomized tests take a seed from `seeds(n)` or `rng`: each seed is printed (pytest shows it on
failure) and ``IMCFLOW_SEED=<seed>`` replaces them all, so one failing run reproduces alone.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest


def _base_seed(request) -> int:
    # Stable per test id, so parallel workers and reruns draw the same seeds.
    return zlib.crc32(request.node.nodeid.encode())


@pytest.fixture
def seeds(request):
    """``seeds(n)`` -> n seeds for this test (or ``[IMCFLOW_SEED]`` when it is set)."""

    def make(n: int) -> list[int]:
        if "IMCFLOW_SEED" in os.environ:
            chosen = [int(os.environ["IMCFLOW_SEED"])]
        else:
            base = _base_seed(request)
            chosen = [(base + 7919 * i) % 2**31 for i in range(n)]
        print(f"seeds: {chosen} (reproduce one with IMCFLOW_SEED=<seed>)")
        return chosen

    return make


@pytest.fixture
def rng(seeds):
    """A NumPy generator seeded from this test's first seed."""
    return np.random.default_rng(seeds(1)[0])
