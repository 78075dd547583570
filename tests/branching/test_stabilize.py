"""Stabilising intermediate neurons (``branching.stabilize``): every tightened interval
holds the values sampled in the box, the cut network computes the node it was cut at,
and the search reaches the same answers from the tightened intervals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import branching.stabilize as stabilize_module
from bounds import BoundGraph, compute_bounds
from bounds.deadline import Deadline
from branching import BabConfig, BabProblem, BabStats, StopReason, run_bab
from branching.stabilize import (
    StabilizeStats,
    pass_plan,
    prefix_graph,
    stabilizable_nodes,
    stabilize,
)
from models import evaluate, load_onnx
from models.evaluate import evaluate_all
from models.zoo import zoo_model_path


def _relu_setup(radius: float):
    bg = BoundGraph(load_onnx(zoo_model_path("mlp_relu")))
    centre = torch.linspace(-0.3, 0.4, 8, dtype=torch.float64).reshape((1,) + bg.input_shape)
    lo, hi = centre - radius, centre + radius
    root = compute_bounds(bg, lo, hi, method="crown", bound_upper=False).intermediate
    return bg, lo, hi, dict(root)


def test_only_nodes_feeding_relus_after_the_first_layer_are_stabilised() -> None:
    bg, *_ = _relu_setup(0.1)
    names = stabilizable_nodes(bg)
    assert names and bg.needs_bounds[0] not in names  # the first layer's CROWN is exact
    for name in names:
        assert all(i.node.op == "Relu" for i in bg.infos.values() if name in i.node.inputs)
    sigmoid = BoundGraph(load_onnx(zoo_model_path("mlp_sigmoid")))
    assert stabilizable_nodes(sigmoid) == []


def test_prefix_graph_computes_the_node_it_is_cut_at() -> None:
    bg, lo, hi, _ = _relu_setup(0.5)
    x = lo + (hi - lo) * torch.rand((64,) + tuple(lo.shape[1:]), dtype=lo.dtype)
    full = evaluate_all(bg.graph, x)
    for name in stabilizable_nodes(bg):
        cut = prefix_graph(bg, name)
        assert cut.output_name == name
        torch.testing.assert_close(evaluate(cut.source, x), full[name])


@pytest.mark.parametrize("radius", [0.1, 0.2, 0.3, 0.6])
def test_tightened_intervals_hold_every_sampled_value(radius: float) -> None:
    bg, lo, hi, root = _relu_setup(radius)
    out, stats = stabilize(bg, lo, hi, root, BabConfig(), Deadline.after(60.0))
    x = lo + (hi - lo) * torch.rand((20000,) + tuple(lo.shape[1:]), dtype=lo.dtype)
    corners = torch.where(torch.rand_like(x) < 0.5, lo, hi)
    vals = evaluate_all(bg.graph, torch.cat([x, corners]))
    at_zero = moved = 0
    for name in stabilizable_nodes(bg):
        v = vals[name].flatten(1)
        b, r = out[name], root[name]
        assert bool((v >= b.lower.flatten(1) - 1e-9).all()), name
        assert bool((v <= b.upper.flatten(1) + 1e-9).all()), name
        assert bool((b.lower >= r.lower).all() and (b.upper <= r.upper).all())
        lo_moved, up_moved = b.lower != r.lower, b.upper != r.upper
        moved += int(lo_moved.sum() + up_moved.sum())
        at_zero += int((lo_moved & (b.lower == 0)).sum() + (up_moved & (b.upper == 0)).sum())
    assert at_zero >= stats.proved  # each proof puts one end at 0
    assert stats.proved <= moved <= stats.proved + stats.tightened
    assert stats.attempted >= stats.proved


def test_stabilising_proves_neurons_that_crown_leaves_unstable() -> None:
    bg, lo, hi, root = _relu_setup(0.2)  # CROWN: all 16 neurons of linear_1 unstable
    _, stats = stabilize(bg, lo, hi, root, BabConfig(), Deadline.after(60.0))
    assert stats.proved > 0
    assert stats.domains > 0


@pytest.mark.parametrize("radius", [0.2, 0.4, 0.6])
def test_neurons_left_unstable_still_get_narrower_intervals(
    radius: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search that gives up still bounds its neuron by its open leaves' least margin, and
    the neurons that sampled points show on both sides get narrowing searches: their
    intervals shrink too. With ``TIGHTEN`` off and no narrowing searches an end moves
    only to 0 (a proof)."""
    bg, lo, hi, root = _relu_setup(radius)
    cfg = BabConfig(stabilize_domains=8)  # too few for some proofs
    out, stats = stabilize(bg, lo, hi, root, cfg, Deadline.after(60.0))
    monkeypatch.setattr(stabilize_module, "TIGHTEN", False)
    monkeypatch.setattr(stabilize_module, "WIDE_DOMAINS", 0)
    plain, before = stabilize(bg, lo, hi, root, cfg, Deadline.after(60.0))
    assert stats.tightened > 0 and before.tightened == 0
    x = lo + (hi - lo) * torch.rand((20000,) + tuple(lo.shape[1:]), dtype=lo.dtype)
    vals = evaluate_all(bg.graph, x)
    narrower = 0
    for name in stabilizable_nodes(bg):
        b, p, r = out[name], plain[name], root[name]
        assert bool(((p.lower == r.lower) | (p.lower == 0)).all()), name
        assert bool(((p.upper == r.upper) | (p.upper == 0)).all()), name
        v = vals[name].flatten(1)
        both_signs = ((v.min(0).values < 0) & (v.max(0).values > 0)).reshape(b.lower.shape)
        narrower += int((both_signs & ((b.lower > r.lower) | (b.upper < r.upper))).sum())
    assert narrower > 0


def test_passes_put_likely_proofs_first() -> None:
    narrow = ((32, "narrow"), (64, "narrow"), (128, "narrow"), (256, "narrow"), (512, "narrow"))
    assert pass_plan(256) == ((64, "first"), (256, "retry"), (64, "far")) + narrow
    assert pass_plan(64) == ((64, "all"),)


@pytest.mark.parametrize("radius", [0.2, 0.3])
def test_deferred_candidates_are_searched_in_the_last_pass(
    radius: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    bg, lo, hi, root = _relu_setup(radius)
    monkeypatch.setattr(stabilize_module, "WIDE_DOMAINS", 0)
    one, once = stabilize(bg, lo, hi, root, BabConfig(stabilize_domains=64), Deadline.after(60.0))
    # every candidate waits for the far pass: the same searches as one pass of 64 domains
    # (without the first pass's narrowing of the far candidates)
    monkeypatch.setattr(stabilize_module, "FAR_SHARE", -1.0)
    monkeypatch.setattr(stabilize_module, "WIDE_DOMAINS", 0)
    three = pass_plan(256)[:3]  # first, retry, far: no narrowing pass
    monkeypatch.setattr(stabilize_module, "pass_plan", lambda cap: three)
    last, deferred = stabilize(bg, lo, hi, root, BabConfig(), Deadline.after(60.0))
    assert once.proved > 0
    assert (deferred.proved, deferred.attempted) == (once.proved, once.attempted)
    for name in stabilizable_nodes(bg):
        assert torch.equal(one[name].lower, last[name].lower), name
        assert torch.equal(one[name].upper, last[name].upper), name


def test_an_expired_deadline_returns_the_root_intervals() -> None:
    bg, lo, hi, root = _relu_setup(0.6)
    out, stats = stabilize(bg, lo, hi, root, BabConfig(), Deadline.after(0.0))
    assert stats.attempted == 0
    for name, b in root.items():
        assert out[name] is b


@pytest.mark.parametrize("radius", [0.2, 0.3])
def test_search_from_stabilised_intervals_reaches_both_answers(radius: float) -> None:
    bg, lo, hi, root = _relu_setup(radius)
    out, _ = stabilize(bg, lo, hi, root, BabConfig(), Deadline.after(60.0))
    x = lo + (hi - lo) * torch.rand((20000,) + tuple(lo.shape[1:]), dtype=lo.dtype)
    C = torch.zeros(1, 4, dtype=torch.float64)
    C[0, 0], C[0, 1] = 1.0, -1.0
    with torch.no_grad():
        m = float((evaluate(bg.source, x).reshape(len(x), -1) @ C.T).min())
    cfg = BabConfig(split="activation", max_domains=20000)
    # below every sampled value by a wide margin: must be proved; above one: must not be
    for d, want in ((m - 2.0, {StopReason.PROVED}), (m + 0.05, {StopReason.COUNTEREXAMPLE})):
        thr = torch.tensor([d], dtype=torch.float64)
        res = run_bab(
            bg,
            BabProblem(lo, hi, C, thr, thr, out),
            cfg,
            Deadline.after(60.0),
            falsify=_falsify(bg, C, thr),
        )
        assert res.reason in want, (d, res.reason, res.detail)


def _falsify(bg, C, d):
    def check(points: torch.Tensor):
        with torch.no_grad():
            v = evaluate(bg.source, points).reshape(points.shape[0], -1) @ C.T - d
        hit = torch.nonzero(v.flatten() <= 0).flatten()
        return None if hit.numel() == 0 else points[hit[0]].clone()

    return check


def test_config_rejects_bad_stabilize_settings() -> None:
    with pytest.raises(ValueError, match="stabilize"):
        BabConfig(stabilize_share=1.5)
    with pytest.raises(ValueError, match="stabilize"):
        BabConfig(stabilize_domains=0)
    with pytest.raises(ValueError, match="stabilize"):
        BabConfig(stabilize_min_s=-1.0)


def test_pipeline_stabilises_a_real_relu_instance(benchmarks_dir: Path) -> None:
    """mnist_fc 256x4 prop_3: alpha-CROWN leaves all 9 cases open; with stabilised
    intermediate neurons the re-bounded root refutes them (the answer is ``unsat``)."""
    from verifier.pipeline import verify

    bench = benchmarks_dir / "mnist_fc_2022"

    class Progress:  # a progress callback that also wants the stabilising reports
        def __init__(self) -> None:
            self.bab: list = []
            self.stab: list = []

        def __call__(self, stats) -> None:
            self.bab.append(stats)

        def stabilizing(self, stats) -> None:
            self.stab.append(stats)

    seen = Progress()
    res = verify(
        bench / "onnx/mnist-net_256x4.onnx",
        bench / "vnnlib/prop_3_0.05.vnnlib",
        timeout=60,
        progress=seen,
    )
    assert res.status.word == "unsat"
    assert res.stats["stabilize_proved"] > 0
    assert res.stats["stabilize_attempted"] >= res.stats["stabilize_proved"]
    # the live line sees the stabilising searches' progress
    assert seen.stab and all(isinstance(s, StabilizeStats) for s in seen.stab)
    assert max(s.domains for s in seen.stab) > 0
    assert all(isinstance(s, BabStats) for s in seen.bab)


def test_pipeline_skips_stabilising_when_little_time_is_left(benchmarks_dir: Path) -> None:
    """At a 30 s timeout the search has less than ``stabilize_min_s`` (30 s) left: the
    same row is proved by the search alone, without stabilising."""
    from verifier.pipeline import verify

    bench = benchmarks_dir / "mnist_fc_2022"
    res = verify(
        bench / "onnx/mnist-net_256x4.onnx", bench / "vnnlib/prop_3_0.05.vnnlib", timeout=30
    )
    assert res.status.word == "unsat"
    assert "stabilize_attempted" not in res.stats
    assert res.stats["bab_domains"] > 0
