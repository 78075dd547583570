"""Shared fixtures: the ../shared benchmark folder (tests skip without it), seeds.

Where the shared folder is and how tests skip without it: ``tests/shared_data.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shared_data import require_benchmarks


@pytest.fixture
def benchmarks_dir() -> Path:
    """Path of ../shared/benchmarks (or $NLVERIFY_SHARED/benchmarks); skips when absent."""
    return require_benchmarks()


@pytest.fixture(autouse=True)
def _compiled_kernels_from_the_start(monkeypatch) -> None:
    """The compiled relaxations serve every call (no warm-up on the torch path first), so
    the tests exercise the engine's path of long runs; tests of the torch path switch
    ``bounds.relax.compiled.ENABLED`` off."""
    from bounds.relax import compiled

    monkeypatch.setattr(compiled, "WARMUP_S", 0.0)


@pytest.fixture(autouse=True)
def _seed() -> None:
    import numpy as np
    import torch

    torch.manual_seed(0)
    np.random.seed(0)
