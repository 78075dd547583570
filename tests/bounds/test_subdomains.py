"""Sampled soundness of :func:`bounds.subdomains.bound_subdomains` (alpha + beta, splits).

Subdomains are made by cutting random neurons of split nodes at the median of sampled
values; a sampled input belongs to a subdomain when every split node's value lies in the
subdomain's interval. For every subdomain, every such input must satisfy ``C·y >= lower``,
whatever the (random, non-negative) beta and the (random) alpha warm start.
"""

from __future__ import annotations

import math

import pytest
import torch

from bounds import BoundGraph, Bounds
from bounds.crown import crown_bounds
from bounds.subdomains import (
    BoundRequest,
    bound_subdomains,
    refreshed_intervals,
    split_constraints,
)
from models import evaluate_all, load_onnx
from models.zoo import zoo_model_path

NETS = ["mlp_sigmoid", "mlp_tanh", "mlp_relu", "mlp_gelu", "mlp_sin", "acopf", "lstm", "vit"]
B, N = 6, 3000


def _split_nodes(bg: BoundGraph) -> list[str]:
    from branching.splits import find_split_nodes  # the search's notion of split nodes

    return [n.name for n in find_split_nodes(bg)]


@pytest.mark.parametrize("mode", ["refresh", "known", "refine", "refine-2"])
@pytest.mark.parametrize("name", NETS)
def test_subdomain_bounds_hold_on_samples(name: str, mode: str) -> None:
    """Sampled soundness; ``known``: the intervals of the uncut box (valid in every
    subdomain) are passed as known, the cuts intersected in, and no interval pass runs;
    ``refine``: the interval pass also re-bounds every node by CROWN in each subdomain
    (``refine-2``: each subdomain's two widest elements per node), and every node's
    interval must hold the subdomain's sampled values."""
    known = mode == "known"
    gen = torch.Generator().manual_seed(1)
    graph = load_onnx(zoo_model_path(name))
    bg = BoundGraph(graph)
    shape = bg.input_shape
    centre = 0.2 * torch.rand((1,) + shape, generator=gen, dtype=torch.float64) - 0.1
    radius = 0.3 if name not in ("vit", "lstm") else 0.1
    lo, hi = centre - radius, centre + radius
    root = crown_bounds(bg, Bounds(lo, hi))
    xs = lo + (hi - lo) * torch.rand((N,) + shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        vals = evaluate_all(bg.graph, xs)
    splits = _split_nodes(bg)
    assert splits, f"{name}: no split node"
    lows = {
        z: root[z].lower.expand(B, *root[z].lower.shape[1:]).contiguous().clone() for z in splits
    }
    ups = {
        z: root[z].upper.expand(B, *root[z].upper.shape[1:]).contiguous().clone() for z in splits
    }
    for b in range(B):  # three cuts per subdomain, at the median of the sampled values
        for _ in range(3):
            z = splits[int(torch.randint(0, len(splits), (1,), generator=gen))]
            v = vals[z].reshape(N, -1)
            j = int(torch.randint(0, v.shape[1], (1,), generator=gen))
            p = float(v[:, j].median())
            side = lows if torch.rand(1, generator=gen).item() < 0.5 else ups
            side[z][b].view(-1)[j] = p
    overrides = {z: Bounds(lows[z], ups[z]) for z in splits}
    inside = torch.ones(B, N, dtype=torch.bool)
    for z in splits:
        v = vals[z].reshape(1, N, -1)
        lo_z, up_z = lows[z].reshape(B, 1, -1), ups[z].reshape(B, 1, -1)
        inside &= ((v >= lo_z - 1e-12) & (v <= up_z + 1e-12)).all(-1)
    n_out = math.prod(bg.shape(bg.output_name))
    C = torch.randn(B, 2, n_out, generator=gen, dtype=torch.float64)
    betas = {
        z: 2.0 * torch.rand((2, 2, B) + bg.shape(z), generator=gen, dtype=torch.float64)
        for z in splits
    }
    box = Bounds(lo.expand(B, *shape), hi.expand(B, *shape))
    uncut = refreshed_intervals(bg, box, root, {})[0] if known else None
    req = BoundRequest(
        lower=box.lower,
        upper=box.upper,
        C=C,
        thresholds=torch.full((B, 2), math.inf, dtype=torch.float64),
        base=root,
        overrides=overrides,
        betas=betas,
        iterations=3,
        input_A=True,
        known=uncut,
        refine=frozenset(bg.needs_bounds) if mode.startswith("refine") else frozenset(),
        refine_rows=2 if mode == "refine-2" else 0,
    )
    res = bound_subdomains(bg, req)
    if mode.startswith("refine"):
        for z, iv in res.intervals.items():
            if z == bg.input_name:
                continue
            v = vals[z].reshape(1, N, -1)
            lo_z, up_z = iv.lower.reshape(B, 1, -1), iv.upper.reshape(B, 1, -1)
            tol = 1e-9 * (1 + v.abs())
            bad = ((v < lo_z - tol) | (v > up_z + tol)).any(-1) & inside
            assert not bool(bad.any()), f"{name}: refined interval of {z} misses samples"
    if known:  # the cut nodes' intervals are the cuts, every other node's the uncut ones
        assert uncut is not None
        for z in res.intervals:
            want = overrides[z] if z in overrides else uncut[z]
            assert torch.equal(res.intervals[z].lower, torch.maximum(want.lower, uncut[z].lower))
            assert torch.equal(res.intervals[z].upper, torch.minimum(want.upper, uncut[z].upper))
    y = vals[bg.output_name].reshape(N, -1)
    obj = torch.einsum("bso,no->bns", C, y)  # [B, N, S]
    checked = 0
    for b in range(B):
        if bool(res.infeasible[b]):
            assert not bool(inside[b].any()), "a subdomain with samples was called infeasible"
            continue
        pts = obj[b, inside[b]]
        checked += pts.shape[0]
        slack = 1e-7 * (1 + pts.abs())
        assert bool((pts >= res.lower[b] - slack).all()), f"{name}: domain {b} unsound"
    assert checked > 0
    assert res.input_A is not None and res.input_A.shape[:2] == (2, B)
    for z in splits:  # betas stay non-negative after the projection
        assert bool((res.betas[z] >= 0).all())


def _boxes(name: str, n: int, rows: int, radius: float, seed: int):
    """``n`` random boxes of a zoo net, root intervals over their union, ``rows`` random C."""
    gen = torch.Generator().manual_seed(seed)
    bg = BoundGraph(load_onnx(zoo_model_path(name)))
    centre = 0.2 * torch.rand((n,) + bg.input_shape, generator=gen, dtype=torch.float64) - 0.1
    lo, hi = centre - radius, centre + radius
    root = crown_bounds(bg, Bounds(lo.min(0, keepdim=True).values, hi.max(0, keepdim=True).values))
    n_out = math.prod(bg.shape(bg.output_name))
    C = torch.randn(n, rows, n_out, generator=gen, dtype=torch.float64)
    return bg, lo, hi, root, C


@pytest.mark.parametrize("name", ["mlp_sigmoid", "mlp_relu"])
def test_verified_subdomains_leave_the_optimisation(name: str, monkeypatch) -> None:
    """Dropping verified subdomains mid-optimisation changes nothing for the others (Adam is
    elementwise and each bound depends on its own parameters only)."""
    import bounds.subdomains as sd

    n = 8
    bg, lo, hi, root, C = _boxes(name, n, 2, radius=0.3, seed=3)
    thr = torch.full((n, 2), math.inf, dtype=torch.float64)
    thr[::2] = -math.inf  # every other subdomain is verified by the first pass
    req = BoundRequest(
        lower=lo,
        upper=hi,
        C=C,
        thresholds=thr,
        base=root,
        iterations=4,
        input_A=True,
        record=frozenset(_split_nodes(bg)),
    )
    kept = bound_subdomains(bg, req)
    monkeypatch.setattr(sd, "_COMPACT_FRACTION", 0)  # never drop
    full = bound_subdomains(bg, req)
    assert kept.iterations == full.iterations == 4
    open_ = torch.arange(n) % 2 == 1
    torch.testing.assert_close(kept.lower, full.lower, rtol=1e-9, atol=1e-9)
    for k, v in full.alphas.items():  # verified ones: the parameters that verified them
        torch.testing.assert_close(kept.alphas[k], v)
    for k, v in full.lA.items():
        torch.testing.assert_close(kept.lA[k][:, open_], v[:, open_])
    assert kept.input_A is not None and full.input_A is not None
    torch.testing.assert_close(kept.input_A[:, open_], full.input_A[:, open_])


def test_catchup_steps_only_for_subdomains_below_their_known_bound() -> None:
    """``catchup`` steps go on for the subdomains whose own bound is below ``initial``; the
    others leave after ``iterations`` steps with exactly the outputs they would have had."""
    n = 6
    bg, lo, hi, root, C = _boxes("mlp_sigmoid", n, 1, radius=0.5, seed=4)
    thr = torch.full((n, 1), math.inf, dtype=torch.float64)
    kw = dict(lower=lo, upper=hi, C=C, thresholds=thr, base=root, iterations=3, input_A=True)
    kw["record"] = frozenset(_split_nodes(bg))
    own = bound_subdomains(bg, BoundRequest(**kw)).lower  # what 3 steps reach
    kw["thresholds"] = own + 2.0  # never reached; own margins -2
    initial = own - 1.0
    lag = torch.arange(n) < 2
    initial[lag] = own[lag] + 1.0  # known margin -1, far above: these two lag behind
    plain = bound_subdomains(bg, BoundRequest(**kw, initial=initial))
    more = bound_subdomains(bg, BoundRequest(**kw, initial=initial, catchup=5))
    assert plain.iterations == 3 and more.iterations == 8
    torch.testing.assert_close(more.lower, plain.lower)  # the floors
    for k, v in plain.alphas.items():
        torch.testing.assert_close(more.alphas[k][:, :, ~lag], v[:, :, ~lag])
        assert not torch.equal(more.alphas[k][:, :, lag], v[:, :, lag])
    for k, v in plain.lA.items():
        torch.testing.assert_close(more.lA[k][:, ~lag], v[:, ~lag])


@pytest.mark.parametrize("name", ["mlp_sigmoid", "mlp_relu"])
def test_verified_subdomains_return_parameters_that_verify_them(name: str) -> None:
    """The parameters returned for a subdomain verified mid-optimisation give, in one pass,
    a bound above its threshold (Adam's momentum would move them on; a caller that checks
    the proof again, as the float32 search does in float64, relies on them)."""
    n = 8
    bg, lo, hi, root, C = _boxes(name, n, 1, radius=0.3, seed=5)
    common = dict(lower=lo, upper=hi, C=C, base=root, record=frozenset(_split_nodes(bg)))
    free = torch.full((n, 1), math.inf, dtype=torch.float64)
    first = bound_subdomains(bg, BoundRequest(thresholds=free, iterations=0, **common))
    later = bound_subdomains(bg, BoundRequest(thresholds=free, iterations=3, **common))
    gains = later.lower > first.lower + 1e-6
    assert int(gains.sum()) >= 3
    # reached between the first and the last step (never, where the steps gain nothing)
    thr = torch.where(gains, 0.5 * (first.lower + later.lower), free)
    res = bound_subdomains(bg, BoundRequest(thresholds=thr, iterations=12, **common))
    assert bool((res.lower > thr)[gains].all())
    again = bound_subdomains(
        bg,
        BoundRequest(thresholds=free, iterations=0, alphas=res.alphas, **common),
    )
    assert bool((again.lower > thr)[gains].all())


@pytest.mark.parametrize("name", ["mlp_sigmoid", "mlp_relu", "vit"])
def test_known_intervals_equal_to_the_refreshed_ones_give_the_same_bounds(name: str) -> None:
    """Passing the intervals that the interval pass would compute, as known, changes nothing:
    the known path only skips that pass."""
    bg, lo, hi, root, C = _boxes(name, 4, 2, 0.1 if name == "vit" else 0.3, seed=3)
    split = _split_nodes(bg)[0]
    cut = {
        split: Bounds(
            root[split].lower.expand(4, *bg.shape(split)).contiguous().clone(),
            root[split].upper.expand(4, *bg.shape(split)).contiguous().clone(),
        )
    }
    mid = 0.5 * (cut[split].lower + cut[split].upper)
    cut[split].upper.view(4, -1)[:, 0] = mid.reshape(4, -1)[:, 0]
    fresh = refreshed_intervals(bg, Bounds(lo, hi), root, cut)[0]
    common = dict(
        lower=lo,
        upper=hi,
        C=C,
        thresholds=torch.full((4, 2), math.inf, dtype=torch.float64),
        base=root,
        overrides=cut,
        iterations=0,
    )
    a = bound_subdomains(bg, BoundRequest(**common))
    b = bound_subdomains(bg, BoundRequest(**common, known=fresh))
    assert torch.equal(a.lower, b.lower)


def test_split_constraints_skip_ends_narrowed_by_rounding_alone() -> None:
    """An end the interval pass narrowed by an ulp (as float32 rounding against the
    outward-rounded root does) gets no constraint; one it narrowed for real does, and a
    split end always does, at the tighter refreshed point."""
    root = Bounds(torch.tensor([[-1.0, -2.0, -3.0]]), torch.tensor([[1.0, 2.0, 3.0]]))
    split = Bounds(torch.tensor([[0.0, -2.0, -3.0]]), torch.tensor([[1.0, 2.0, 3.0]]))
    ulp = float(torch.nextafter(root.lower[0, 1], torch.tensor(0.0)))
    cur = Bounds(torch.tensor([[0.25, ulp, -3.0]]), torch.tensor([[1.0, 2.0, 2.5]]))
    c = split_constraints({"z": root}, {"z": cur}, ["z"], {"z": split})["z"]
    assert c.raised.tolist() == [[1.0, 0.0, 0.0]]
    assert c.lower.tolist() == [[0.25, 0.0, 0.0]]
    assert c.lowered.tolist() == [[0.0, 0.0, 1.0]]
    assert c.upper.tolist() == [[0.0, 0.0, 2.5]]
    # A split end within rounding of the root's still gets its constraint.
    tiny = Bounds(torch.tensor([[-1.0, ulp, -3.0]]), root.upper)
    c = split_constraints({"z": root}, {"z": tiny}, ["z"], {"z": tiny})["z"]
    assert c.raised.tolist() == [[0.0, 1.0, 0.0]]


def test_crown_refinement_tightens_the_nodes_after_a_cut() -> None:
    """Re-bounding by CROWN after a cut gives intervals inside the interval pass's, and
    strictly tighter on some later neuron: the cut neuron's ReLU becomes exact in the
    later rows, which the interval pass cannot exploit."""
    bg, lo, hi, root, _ = _boxes("mlp_relu", 4, 2, 0.3, seed=5)
    split = _split_nodes(bg)
    first = split[0]
    lo_c = root[first].lower.expand(4, *bg.shape(first)).contiguous().clone()
    up_c = root[first].upper.expand(4, *bg.shape(first)).contiguous().clone()
    crossing = torch.nonzero((root[first].lower < 0) & (root[first].upper > 0))[:, 1]
    assert crossing.numel() > 0
    j = int(crossing[0])
    lo_c[:2, j] = 0.0  # domains 0, 1: active; 2, 3: inactive
    up_c[2:, j] = 0.0
    cut = {first: Bounds(lo_c, up_c)}
    box = Bounds(lo, hi)
    plain, empty = refreshed_intervals(bg, box, root, cut)
    later = frozenset(n for n in bg.needs_bounds if bg.order.index(n) > bg.order.index(first))
    assert later
    refined, empty_r = refreshed_intervals(bg, box, root, cut, later)
    assert not bool((empty & ~empty_r).any())  # refining never loses an infeasibility
    ok = ~empty_r  # (empty intervals are widened back to a point: compare the others)
    assert bool(ok.any())
    gained = False
    for name in later:
        p, r = plain[name].take(ok), refined[name].take(ok)
        assert bool((r.lower >= p.lower).all() and (r.upper <= p.upper).all())
        gained |= bool((r.lower > p.lower + 1e-9).any() or (r.upper < p.upper - 1e-9).any())
    assert gained
