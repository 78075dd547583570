"""Domain store order and memory cap; split candidates, points and heuristic scores."""

from __future__ import annotations

import math

import pytest
import torch

from bounds import BoundGraph, Bounds
from bounds.crown import crown_bounds
from bounds.subdomains import BoundRequest, bound_subdomains
from branching import HEURISTICS, DomainMemoryError, DomainStore, heuristics
from branching.heuristics import HeuristicInput, shortcuts
from branching.splits import candidate_mask, find_split_nodes, split_points
from models import load_onnx
from models.zoo import zoo_model_path


def _batch(values: list[float]) -> dict[str, torch.Tensor]:
    t = torch.tensor(values)
    return {"margin": t, "payload": t[:, None].repeat(1, 3)}


def test_lifo_pops_the_newest_domains_first() -> None:
    store = DomainStore("lifo")
    store.push(_batch([1.0, 2.0, 3.0]))
    store.push(_batch([4.0, 5.0]))
    assert len(store) == 5
    assert sorted(store.pop(3)["margin"].tolist()) == [3.0, 4.0, 5.0]
    assert store.pop(10)["margin"].tolist() == [1.0, 2.0]
    assert len(store) == 0 and store.pop(4) == {}


def test_worst_order_pops_the_smallest_margins() -> None:
    store = DomainStore("worst")
    store.push(_batch([0.5, -2.0, 1.0]))
    store.push(_batch([-1.0, 3.0]))
    assert sorted(store.pop(2)["margin"].tolist()) == [-2.0, -1.0]
    assert store.worst() == 0.5


def test_memory_cap_raises_before_holding_too_much() -> None:
    store = DomainStore("lifo", max_bytes=100)
    store.push(_batch([1.0]))  # 16 bytes
    with pytest.raises(DomainMemoryError, match="MiB"):
        store.push(_batch([0.0] * 10))
    assert len(store) == 1


def test_bad_order_is_rejected() -> None:
    with pytest.raises(ValueError, match="lifo"):
        DomainStore("fifo-ish")


def _root(name: str, radius: float):
    bg = BoundGraph(load_onnx(zoo_model_path(name)))
    lo = torch.full((1,) + bg.input_shape, -radius, dtype=torch.float64)
    hi = -lo
    return bg, lo, hi, crown_bounds(bg, Bounds(lo, hi))


@pytest.mark.parametrize("name", ["mlp_relu", "mlp_sigmoid", "acopf"])
def test_points_lie_strictly_inside_candidate_intervals(name: str) -> None:
    bg, lo, hi, root = _root(name, 0.5)
    flat = {k: (v.lower.flatten(1), v.upper.flatten(1)) for k, v in root.items()}
    for node in find_split_nodes(bg):
        b = root[node.name]
        mask = candidate_mask(bg, node, b.lower, b.upper)
        for method in ("table", "midpoint"):
            p = split_points(bg, node, b.lower, b.upper, flat, method=method)
            l, u = b.lower.flatten(1), b.upper.flatten(1)
            assert bool(((p > l) & (p < u))[mask].all()), (name, node.name, method)
            if any(c.op == "Relu" for c in node.consumers):
                crossing = (l < 0) & (u > 0)
                assert bool((p[crossing] == 0).all())


def _heuristic_input(name: str, radius: float = 0.5) -> HeuristicInput:
    bg, lo, hi, root = _root(name, radius)
    nodes = find_split_nodes(bg)
    record = frozenset(c.name for n in nodes for c in n.consumers)
    C = torch.tensor([[[1.0, -1.0, 0.0, 0.0]]], dtype=torch.float64)
    res = bound_subdomains(
        bg,
        BoundRequest(
            lo, hi, C, torch.zeros(1, 1, dtype=torch.float64), root, iterations=0, record=record
        ),
    )
    flat = {k: (v.lower.flatten(1), v.upper.flatten(1)) for k, v in root.items()}
    masks = {n.name: candidate_mask(bg, n, root[n.name].lower, root[n.name].upper) for n in nodes}
    points = {
        n.name: split_points(bg, n, root[n.name].lower, root[n.name].upper, flat) for n in nodes
    }
    inp = HeuristicInput(
        bg,
        nodes,
        res.intervals,
        res.lA,
        (res.lower - 0.0).T,
        Bounds(lo, hi),
        masks,
        points,
        shortcuts(bg, nodes, root, 1 << 26),
    )
    return inp


@pytest.mark.parametrize("heuristic", sorted(HEURISTICS))
def test_non_candidates_score_minus_infinity(heuristic: str) -> None:
    inp = _heuristic_input("mlp_relu")
    nodes, masks = inp.nodes, inp.masks
    scores = HEURISTICS[heuristic](inp)
    for n in nodes:
        s, m = scores[n.name], masks[n.name]
        assert bool((s[~m] == -math.inf).all())
        assert bool(torch.isfinite(s[m]).all())
        assert bool(m.any())


@pytest.mark.parametrize("name", ["mlp_relu", "mlp_sigmoid"])
def test_bbps_refinement_matches_the_exact_scores(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ``EXACT_ELEMENTS`` the corner estimate ranks and the best are concretised
    exactly: refining every neuron gives the exact scores, refining a few keeps the best
    score of each domain exact (to float32 rounding: refinement ranks in float32)."""
    inp = _heuristic_input(name)
    tol = {"rtol": 2e-4, "atol": 1e-5}
    exact = heuristics.bbps_scores(inp)
    monkeypatch.setattr(heuristics, "EXACT_ELEMENTS", 0)
    monkeypatch.setattr(heuristics, "REFINE", 10**6)
    everything = heuristics.bbps_scores(inp)
    monkeypatch.setattr(heuristics, "REFINE", 2)
    few = heuristics.bbps_scores(inp)
    for n in inp.nodes:
        e, a, f = exact[n.name], everything[n.name], few[n.name]
        finite = torch.isfinite(e)
        assert torch.equal(finite, torch.isfinite(a)) and torch.equal(finite, torch.isfinite(f))
        torch.testing.assert_close(a[finite], e[finite], **tol)
        if int(finite.sum()) >= 2:
            best = f.max(1)
            torch.testing.assert_close(best.values, e.gather(1, best.indices[:, None])[:, 0], **tol)
            # an unrefined neuron never outranks the refined ones (ties aside)
            second = f.topk(2, dim=1).values[:, 1:]
            assert bool((f <= best.values[:, None]).all()) and bool(torch.isfinite(second).all())


def test_filter_mix_is_validated() -> None:
    from branching import BabConfig

    assert BabConfig().filter_mix == "babsr"
    assert BabConfig(filter_mix="").filter_mix == ""
    with pytest.raises(ValueError, match="filter_mix"):
        BabConfig(filter_mix="nope")


def test_mixed_input_scores_weigh_coefficients_and_width() -> None:
    """``mixed``: each term is 1 at the box's best; a dimension the linear bound ignores
    still ranks by width (the gradient-only score would never split it)."""
    from branching.heuristics import INPUT_HEURISTICS

    lo = torch.zeros(2, 4, dtype=torch.float64)
    hi = torch.tensor([[1.0, 4.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    A = torch.tensor([[[3.0, 0.0, 0.5, 9.0], [0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    sc = INPUT_HEURISTICS["mixed"](A, lo, hi)
    sens = INPUT_HEURISTICS["sensitivity"](A, lo, hi)
    wide = INPUT_HEURISTICS["widest"](A, lo, hi)
    assert sc.shape == (2, 4) and bool(torch.isfinite(sc).all())
    # box 0: |A|*w = [3, 0, 1, 0] and w = [1, 4, 2, 0] -> 1 + 0.25, 0 + 1, 1/3 + 0.5, 0
    torch.testing.assert_close(sc[0], torch.tensor([1.25, 1.0, 1 / 3 + 0.5, 0.0]).double())
    assert int(sc[0].argmax()) == 0 and int(sens[0].argmax()) == 0 and int(wide[0].argmax()) == 1
    # box 1: no coefficient at all -> the width term alone, no NaN from 0/0
    torch.testing.assert_close(sc[1], torch.ones(4, dtype=torch.float64))


def test_open_mass_halves_with_each_level_of_depth() -> None:
    store = DomainStore("lifo")
    assert store.open_mass() == 0.0
    store.push({"margin": torch.zeros(3), "depth": torch.tensor([1, 2, 2])})
    assert store.open_mass() == pytest.approx(1.0)
    store.pop(1)
    assert store.open_mass() == pytest.approx(0.75)
