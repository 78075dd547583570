"""The shared helpers of bounds.types."""

from __future__ import annotations

import math

import pytest
import torch

from bounds.types import all_finite


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_finite_answers_false_for_any_inf_or_nan(dtype: torch.dtype) -> None:
    t = torch.randn(7, 33, dtype=dtype)
    assert all_finite(t) and all_finite(t, t[:0])  # an empty tensor is all finite
    for bad in (math.inf, -math.inf, math.nan):
        for at in ((0, 0), (3, 17), (6, 32)):
            u = t.clone()
            u[at] = bad
            assert not all_finite(u)
            assert not all_finite(t, u)
    both = t.clone()
    both[0, 0], both[1, 1] = math.inf, -math.inf  # the sum is nan, not a cancellation
    assert not all_finite(both)


def test_all_finite_overflow_only_errs_on_the_safe_side() -> None:
    """Finite values whose sum overflows answer False (the caller's general path)."""
    big = torch.full((4,), torch.finfo(torch.float32).max, dtype=torch.float32)
    assert bool(torch.isfinite(big).all())
    assert not all_finite(big)


def test_all_finite_ignores_autograd() -> None:
    t = torch.randn(5, requires_grad=True)
    assert all_finite(t * 2)
