"""Whole-network soundness and tightness of IBP / CROWN / alpha-CROWN.

Zoo networks always; the shared VNN-COMP models when ../shared is present.
Samples are drawn inside the spec's input box (plus its corners' neighbourhood
through uniform sampling) and evaluated with ``models.evaluate``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from bounds import AlphaConfig, BoundGraph, compute_bounds
from bounds.crown import _affine_step, linear_bounds
from bounds.deadline import Deadline
from models import evaluate, load_onnx
from models.zoo import ZOO, zoo_model_path, zoo_spec_path
from tests.shared_data import parametrize_shared
from vnnlib import load_vnnlib

TOL = 1e-5


def _box_and_rows(bg: BoundGraph, spec_path: Path, dtype=torch.float64):
    spec = load_vnnlib(spec_path)
    lo, hi, props = spec.groups()[0]
    shape = (1,) + bg.input_shape
    lower = torch.tensor(lo, dtype=dtype).reshape(shape)
    upper = torch.tensor(hi, dtype=dtype).reshape(shape)
    C = torch.tensor(np.concatenate([c for c, _ in props]), dtype=dtype).unsqueeze(0)
    d = np.concatenate([d for _, d in props])
    return lower, upper, C, d


def _samples(graph, lower, upper, C, n):
    t = torch.rand((n,) + tuple(lower.shape[1:]), dtype=lower.dtype)
    xs = lower + (upper - lower) * t
    ys = evaluate(graph, xs).reshape(n, -1)
    return xs, ys @ C[0].T


def _check_network(
    onnx_path: Path, spec_path: Path, n: int, methods, dtype=torch.float64, max_elements=4096
):
    graph = load_onnx(onnx_path)
    bg = BoundGraph(graph)
    lower, upper, C, _ = _box_and_rows(bg, spec_path, dtype)
    _, vals = _samples(graph, lower, upper, C, n)
    results = {}
    for m in methods:
        r = compute_bounds(
            bg,
            lower,
            upper,
            C,
            method=m,
            alpha=AlphaConfig(iterations=10),
            crown_max_elements=max_elements,
        )
        assert torch.all(vals >= r.lower - TOL), f"{m}: lower bound above a sampled value"
        assert torch.all(vals <= r.upper + TOL), f"{m}: upper bound below a sampled value"
        results[m] = r
    return results


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_network_bounds_are_sound_and_ordered(name: str) -> None:
    res = _check_network(
        zoo_model_path(name), zoo_spec_path(name), 2000, ("ibp", "crown", "alpha-crown")
    )
    ibp, crown, alpha = res["ibp"], res["crown"], res["alpha-crown"]
    # CROWN intersects with IBP and alpha-CROWN starts from CROWN: never looser.
    assert torch.all(crown.lower >= ibp.lower - 1e-9)
    assert torch.all(alpha.lower >= crown.lower - 1e-9)


def _shared_rows(root: Path) -> list[tuple[str, str, str]]:
    out = []
    for bench in sorted(p for p in root.iterdir() if p.is_dir()):
        with open(bench / "instances.csv", newline="") as f:
            rows = list(csv.reader(f))
        seen: set[str] = set()
        for r in rows:
            # every distinct model, but only two of the 45 ACAS Xu networks
            if r and r[0] not in seen and not (bench.name.startswith("acasxu") and len(seen) >= 2):
                seen.add(r[0])
                out.append((bench.name, r[0], r[1]))
    return out


@parametrize_shared(
    ("bench", "onnx_rel", "spec_rel"), _shared_rows, ids=lambda r: f"{r[0]}-{Path(r[1]).stem}"
)
def test_shared_model_crown_is_sound(benchmarks_dir, bench, onnx_rel, spec_rel) -> None:
    base = benchmarks_dir / bench
    big = bench in ("vit_2023", "ml4acopf_2023")
    methods = ("crown",) if big else ("crown", "alpha-crown")
    # vit: CROWN for the small intermediate nodes only (keeps the test quick; IBP elsewhere)
    limit = 300 if bench == "vit_2023" else 4096
    _check_network(base / onnx_rel, base / spec_rel, 200, methods, torch.float32, limit)


def test_linear_fast_path_matches_derived_backward() -> None:
    graph = load_onnx(zoo_model_path("mlp_tanh"))
    bg = BoundGraph(graph)
    info = next(i for i in bg.infos.values() if i.node.op == "Linear")
    a = torch.randn((3, 2) + info.node.shape, dtype=torch.float64)
    fast, fast_bias = _affine_step(bg, info, a)
    fn = bg.affine_fn(info.node, a)
    zeros = torch.zeros((6,) + bg.shape(info.node.inputs[0]), dtype=torch.float64)
    out0, vjp_fn = torch.func.vjp(fn, zeros)
    (derived,) = vjp_fn(a.reshape((6,) + info.node.shape))
    torch.testing.assert_close(fast[0], derived.reshape(fast[0].shape))
    torch.testing.assert_close(fast_bias, (a * out0[:1]).flatten(2).sum(-1))


@pytest.mark.parametrize("name", ["mlp_sigmoid", "vit", "acopf"])
def test_linear_bounds_of_split_nodes_hold(name: str) -> None:
    graph = load_onnx(zoo_model_path(name))
    bg = BoundGraph(graph)
    lower, upper, C, _ = _box_and_rows(bg, zoo_spec_path(name))
    res = compute_bounds(bg, lower, upper, C, method="crown", return_A=True)
    xs = lower + (upper - lower) * torch.rand((500,) + bg.input_shape, dtype=torch.float64)
    from models import evaluate_all

    values = evaluate_all(graph, xs)
    for node in [n for n in bg.needs_bounds if n != bg.input_name][:4]:
        lb = linear_bounds(bg, node, res.intermediate)
        z = values[node].reshape(500, -1) if node in values else None
        if z is None:
            continue
        flat_x = xs.reshape(500, -1)
        lo = flat_x @ lb.lA[:, 0].reshape(lb.lA.shape[0], -1).T + lb.lbias[:, 0]
        hi = flat_x @ lb.uA[:, 0].reshape(lb.uA.shape[0], -1).T + lb.ubias[:, 0]
        assert torch.all(lo <= z + TOL) and torch.all(z <= hi + TOL)
    # the objective's linear bounds w.r.t. the input also hold
    ys = evaluate(graph, xs).reshape(500, -1) @ C[0].T
    lin = res.linear
    lo = xs.reshape(500, -1) @ lin.lA[:, 0].reshape(lin.lA.shape[0], -1).T + lin.lbias[:, 0]
    assert torch.all(lo <= ys + TOL)


def test_expired_deadline_falls_back_to_ibp_intervals_soundly() -> None:
    """Past its deadline, compute_bounds stops refining (IBP intervals), still sound."""
    graph = load_onnx(zoo_model_path("vit"))
    bg = BoundGraph(graph)
    lower, upper, C, _ = _box_and_rows(bg, zoo_spec_path("vit"))
    _, vals = _samples(graph, lower, upper, C, 500)
    ibp = compute_bounds(bg, lower, upper, C, method="ibp")
    full = compute_bounds(bg, lower, upper, C, method="crown")
    expired = Deadline.after(0.0, clock=lambda: 0.0)
    for method in ("crown", "alpha-crown"):
        cut = compute_bounds(
            bg, lower, upper, C, method=method, deadline=expired, alpha=AlphaConfig(iterations=2)
        )
        for name, b in cut.intermediate.items():
            ref = ibp.intermediate[name]
            if method == "crown":
                torch.testing.assert_close(b.lower, ref.lower, rtol=0, atol=0)
                torch.testing.assert_close(b.upper, ref.upper, rtol=0, atol=0)
            else:  # alpha-CROWN runs one bound pass before it checks the deadline
                assert torch.all(b.lower >= ref.lower) and torch.all(b.upper <= ref.upper)
        assert torch.all(vals >= cut.lower - TOL) and torch.all(vals <= cut.upper + TOL)
        if method == "crown":
            assert torch.all(cut.lower <= full.lower + 1e-9)
