"""Shared fixtures: the ../shared benchmark folder (tests skip without it), seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NLVERIFY_SHARED", REPO.parent / "shared")).resolve()
BENCHMARKS = SHARED / "benchmarks"


def shared_available() -> bool:
    return BENCHMARKS.is_dir()


requires_shared = pytest.mark.skipif(
    not shared_available(), reason="../shared/benchmarks is not present"
)


@pytest.fixture
def benchmarks_dir() -> Path:
    """Path of ../shared/benchmarks; skips the test when it is absent."""
    if not shared_available():
        pytest.skip("../shared/benchmarks is not present")
    return BENCHMARKS


@pytest.fixture(autouse=True)
def _seed() -> None:
    import numpy as np
    import torch

    torch.manual_seed(0)
    np.random.seed(0)
