"""The cost-cutting paths of the bounds engine (issue 10) give the bounds of the plain ones.

* the unary backward step on broadcast (stride-0) coefficients, e.g. a softmax's
  ``ReduceSum`` feeding its ``Exp``, equals the step on the materialised coefficients;
* a unary node whose input CROWN refines keeps the interval of that input's image: it
  contains every sampled value and is never looser than the node's own CROWN rows;
* per-row tangent-point relaxations (alpha-CROWN) equal the per-row relaxations computed
  from expanded bounds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bounds.crown as crown
from bounds import BoundGraph, Bounds, compute_bounds
from bounds.crown import _unary_step, crown_bounds, is_crown_refined, node_bounds
from models import load_onnx
from models.evaluate import evaluate_all
from models.zoo import zoo_model_path, zoo_spec_path
from vnnlib import load_vnnlib

TOL = 1e-9


def _vit() -> tuple[BoundGraph, Bounds, torch.Tensor]:
    bg = BoundGraph(load_onnx(zoo_model_path("vit")))
    lo, hi, props = load_vnnlib(zoo_spec_path("vit")).groups()[0]
    shape = (1,) + bg.input_shape
    box = Bounds(
        torch.tensor(lo, dtype=torch.float64).reshape(shape),
        torch.tensor(hi, dtype=torch.float64).reshape(shape),
    )
    C = torch.tensor(np.concatenate([c for c, _ in props]), dtype=torch.float64)[None]
    return bg, box, C


def _unary(bg: BoundGraph, op: str):
    return next(i for i in bg.infos.values() if i.kind == "unary" and i.node.op == op)


@pytest.mark.parametrize("per_row_alpha", [False, True])
@pytest.mark.parametrize("infinite", [False, True])
def test_unary_step_on_broadcast_coefficients_equals_materialised(
    per_row_alpha: bool, infinite: bool
) -> None:
    bg, _, _ = _vit()
    info = _unary(bg, "Exp")
    gen = torch.Generator().manual_seed(0)
    shape = (3, 4, 5, 6)
    lo = torch.randn((2,) + shape, generator=gen, dtype=torch.float64) - 1.0
    up = lo + torch.rand((2,) + shape, generator=gen, dtype=torch.float64) * 3
    if infinite:
        lo[0, 0, 0, 0, 0] = -float("inf")
    b = Bounds(lo, up)
    S = 7
    compact = torch.randn((S, 2, 3, 1, 5, 1), generator=gen, dtype=torch.float64)
    a = compact.expand((S, 2) + shape)
    assert a.stride(3) == 0 and a.stride(5) == 0
    alpha = None
    if per_row_alpha:
        alpha = lo.clamp(min=-5) + (up.clamp(max=5) - lo.clamp(min=-5)) * torch.rand(
            (1, S, 2) + shape, generator=gen, dtype=torch.float64
        )
    new_a, bias = _unary_step(info, a, b, alpha)
    ref_a, ref_bias = _unary_step(info, a.contiguous(), b, alpha)
    assert new_a.shape == ref_a.shape
    assert torch.equal(new_a, ref_a)
    assert torch.allclose(bias, ref_bias, rtol=1e-12, atol=1e-12)


def _skipped(bg: BoundGraph) -> list[str]:
    return [
        n
        for n in bg.needs_bounds
        if n in bg.infos
        and bg.infos[n].kind == "unary"
        and not is_crown_refined(bg, n, 4096)
        and crown._is_image_of_refined(bg, n, 4096)
    ]


def test_image_of_a_refined_node_is_sound_and_never_looser_than_its_crown_rows() -> None:
    bg, box, C = _vit()
    skipped = _skipped(bg)
    assert skipped, "the zoo vit's softmax Reciprocal should be skipped"
    inter = crown_bounds(bg, box)
    xs = box.lower + (box.upper - box.lower) * torch.rand(
        (500,) + bg.input_shape, dtype=box.lower.dtype
    )
    values = evaluate_all(bg.graph, xs)
    for name in skipped:
        b = inter[name]
        assert torch.all(values[name] >= b.lower - TOL) and torch.all(values[name] <= b.upper + TOL)
        own = node_bounds(bg, name, inter)  # the CROWN rows the skip saves
        assert torch.all(b.lower >= own.lower - TOL) and torch.all(b.upper <= own.upper + TOL)


def test_skipping_image_rows_leaves_the_crown_bound(monkeypatch) -> None:
    bg, box, C = _vit()
    new = compute_bounds(bg, box.lower, box.upper, C, method="crown").lower
    monkeypatch.setattr(crown, "_is_image_of_refined", lambda *args: False)
    full = compute_bounds(bg, box.lower, box.upper, C, method="crown").lower
    assert torch.all(new >= full - 1e-9)
    assert torch.allclose(new, full, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op", ["Exp", "Reciprocal"])
def test_tangent_relaxation_rows_match_expanded_bounds(op: str) -> None:
    bg, _, _ = _vit()
    relax = _unary(bg, op).relaxation
    assert relax is not None
    gen = torch.Generator().manual_seed(1)
    lo = torch.rand((2, 5), generator=gen, dtype=torch.float64) + 0.5
    up = lo + torch.rand((2, 5), generator=gen, dtype=torch.float64)
    alpha = lo + (up - lo) * torch.rand((1, 4, 2, 5), generator=gen, dtype=torch.float64)
    lines = relax.relax(lo, up, alpha)
    for s in range(4):
        row = relax.relax(lo, up, alpha[:, s])
        for got, want in zip(
            (lines.lw, lines.lb, lines.uw, lines.ub), (row.lw, row.lb, row.uw, row.ub), strict=True
        ):
            assert got.shape == (4, 2, 5)
            assert torch.allclose(got[s], want, rtol=1e-12, atol=1e-12)


def _pairwise_node(bg: BoundGraph) -> str:
    """The input of the zoo vit's softmax ``Exp``: pairwise differences ``s_k - s_j``."""
    return _unary(bg, "Exp").node.inputs[0]


def test_duplicate_rows_of_pairwise_differences_get_the_same_bound() -> None:
    from bounds.alpha import _start_rows, _unique_rows
    from bounds.crown import backward_lower

    bg, box, _ = _vit()
    name = _pairwise_node(bg)
    inter = crown_bounds(bg, box)
    idx = torch.arange(int(np.prod(bg.shape(name))))
    A0 = _start_rows(bg, name, idx, box.lower)
    found = _unique_rows(bg, name, A0)
    assert found is not None, "lower (j, k) and upper (k, j) rows should coincide"
    reps, inverse = found
    assert len(reps) < A0.shape[0] and torch.equal(inverse[reps], torch.arange(len(reps)))
    full = backward_lower(bg, name, A0, inter).lower
    dedup = backward_lower(bg, name, A0[reps], inter).lower[inverse]
    assert torch.allclose(full, dedup, rtol=1e-12, atol=1e-12)


def test_intermediate_alpha_with_shared_rows_is_sound() -> None:
    from bounds import AlphaConfig
    from bounds.alpha import _intermediate_starts

    bg, box, C = _vit()
    crown_res = compute_bounds(bg, box.lower, box.upper, C, method="crown")
    starts = _intermediate_starts(bg, crown_res.intermediate, 1 << 22, 4096)
    assert _pairwise_node(bg) in starts
    res = compute_bounds(
        bg, box.lower, box.upper, C, method="alpha-crown", alpha=AlphaConfig(iterations=5)
    )
    xs = box.lower + (box.upper - box.lower) * torch.rand(
        (2000,) + bg.input_shape, dtype=box.lower.dtype
    )
    values = evaluate_all(bg.graph, xs)
    for node, b in res.intermediate.items():
        assert torch.all(values[node] >= b.lower - TOL), f"{node}: lower bound above a sample"
        assert torch.all(values[node] <= b.upper + TOL), f"{node}: upper bound below a sample"
    ys = values[bg.output_name].reshape(2000, -1) @ C[0].T
    assert torch.all(ys >= res.lower - TOL) and torch.all(ys <= res.upper + TOL)
    assert torch.all(res.lower >= crown_res.lower - TOL)
