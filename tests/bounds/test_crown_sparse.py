"""CROWN rows only for elements whose interval can still change a relaxation.

A stable ReLU input (the consumer's ``split_mask`` is False in every domain) is relaxed
exactly whatever its interval, so :func:`bounds.crown.crown_bounds` gives it no CROWN rows.
Every element that shapes a relaxation must get exactly the interval of the dense pass,
and every interval must still contain the sampled values.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bounds import BoundGraph, Bounds
from bounds import crown as crown_mod
from bounds.crown import crown_bounds, shaping_elements, sparse_rows_apply
from models import evaluate_all, load_onnx
from models.zoo import zoo_model_path


def _graph(name: str, benchmarks_dir: Path) -> BoundGraph:
    if name == "acasxu":  # six ReLU layers of 50: deep enough for CROWN to beat IBP
        path = benchmarks_dir / "acasxu_2023/onnx/ACASXU_run2a_1_1_batch_2000.onnx"
        return BoundGraph(load_onnx(path))
    return BoundGraph(load_onnx(zoo_model_path(name)))


@pytest.mark.parametrize(
    ("name", "radius"), [("mlp_relu", 0.05), ("acasxu", 0.02), ("acasxu", 0.1)]
)
def test_sparse_rows_match_dense_rows_where_they_matter(
    name: str, radius: float, benchmarks_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bg = _graph(name, benchmarks_dir)
    gen = torch.Generator().manual_seed(3)
    centre = torch.rand((2,) + bg.input_shape, generator=gen, dtype=torch.float64) - 0.5
    box = Bounds(centre - radius, centre + radius)
    sparse = crown_bounds(bg, box)
    monkeypatch.setattr(crown_mod, "shaping_elements", lambda *a, **k: None)
    dense = crown_bounds(bg, box)
    skipped = 0
    for node, d in dense.items():
        if node not in bg.needs_bounds:
            continue  # intervals no relaxation reads (e.g. a ReLU's output): soundness below
        s = sparse[node]
        rows = shaping_elements(bg, node, s)
        if rows is None:
            torch.testing.assert_close(s.lower, d.lower, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(s.upper, d.upper, rtol=1e-12, atol=1e-12)
            continue
        lo_s, up_s = s.lower.flatten(1), s.upper.flatten(1)
        lo_d, up_d = d.lower.flatten(1), d.upper.flatten(1)
        torch.testing.assert_close(lo_s[:, rows], lo_d[:, rows], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(up_s[:, rows], up_d[:, rows], rtol=1e-12, atol=1e-12)
        # every other element is stable in every domain: relaxed exactly either way
        stable = torch.ones(lo_s.shape[1], dtype=torch.bool)
        stable[rows] = False
        assert bool(((lo_s[:, stable] >= 0) | (up_s[:, stable] <= 0)).all())
        skipped += int(((lo_s != lo_d) | (up_s != up_d)).any(0).sum())
    if name == "acasxu":
        assert skipped > 0  # the sparse path was taken and kept looser, unused intervals
    pts = box.lower + (box.upper - box.lower) * torch.rand(
        (256, 2) + bg.input_shape, generator=gen, dtype=torch.float64
    )
    with torch.no_grad():
        values = evaluate_all(bg.source, pts.reshape((-1,) + bg.input_shape))
    for node, s in sparse.items():
        v = values[node].reshape((256, 2) + s.lower.shape[1:])
        assert bool((v >= s.lower - 1e-9).all()) and bool((v <= s.upper + 1e-9).all()), node


def test_sparse_rows_only_on_masked_piecewise_linear_graphs(benchmarks_dir: Path) -> None:
    """Smooth and product relaxations read intervals that the interval pass can tighten
    (``CROWN ∩ interval``), so graphs with them keep every row (power-flow models lost
    up to 0.46 on a CROWN objective when their stable ReLU rows were skipped)."""
    assert sparse_rows_apply(_graph("acasxu", benchmarks_dir), 4096)
    assert sparse_rows_apply(_graph("mlp_relu", benchmarks_dir), 4096)
    acopf = benchmarks_dir / "ml4acopf_2023/onnx/14_ieee_ml4acopf.onnx"
    assert not sparse_rows_apply(BoundGraph(load_onnx(acopf)), 4096)
    assert not sparse_rows_apply(_graph("mlp_sigmoid", benchmarks_dir), 4096)
