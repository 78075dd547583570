"""Every model of ../shared/benchmarks loads and matches onnxruntime in a spec box.

Points: 100 uniform samples in the input box of the first vnnlib file that uses
the model (read with a tiny regex helper), rounded to float32 so both sides see
the same inputs. Ours runs in float64, onnxruntime in float32; the relative
error ``|ours - ort| / max(1, |ort|)`` must be <= 1e-5. Where onnxruntime's own
float32 rounding is larger than that (cancellation in the ml4acopf power-flow
outputs), the test requires instead that ours matches onnxruntime running a
float64 copy of the model within 1e-9, and that the float32 gap is explained by
onnxruntime's own float32 error.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models import evaluate, load_onnx
from verifier.onnx_agreement import float64_model

_BOUND = re.compile(r"\(assert\s+\((<=|>=)\s+X_(\d+)\s+([-+0-9.eE]+)\s*\)\s*\)")
TOL = 1e-5


def read_box(vnnlib: Path, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``X_i`` from the first ``(assert (<=|>= X_i c))`` lines naming them."""
    lower = np.full(n_inputs, np.nan)
    upper = np.full(n_inputs, np.nan)
    with vnnlib.open() as f:
        for line in f:
            m = _BOUND.search(line)
            if m is None:
                continue
            target = upper if m.group(1) == "<=" else lower
            i = int(m.group(2))
            if i < n_inputs and np.isnan(target[i]):
                target[i] = float(m.group(3))
    assert not np.isnan(lower).any() and not np.isnan(upper).any(), f"{vnnlib}: incomplete box"
    return lower, upper


def shared_models(root: Path) -> list[tuple[Path, Path]]:
    """(onnx, first vnnlib) for every distinct model listed in an instances.csv."""
    found: dict[Path, Path] = {}
    for csv_path in sorted(root.glob("*/instances.csv")):
        with csv_path.open() as f:
            for row in csv.reader(f):
                if len(row) >= 2:
                    onnx_path = (csv_path.parent / row[0].strip()).resolve()
                    found.setdefault(onnx_path, (csv_path.parent / row[1].strip()).resolve())
    return sorted(found.items())


def _ort(model: str | bytes, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    dtype = np.float64 if sess.get_inputs()[0].type == "tensor(double)" else np.float32
    return np.stack([sess.run(None, {name: xi.reshape(shape).astype(dtype)})[0] for xi in x])


def _rel(ours: np.ndarray, ref: np.ndarray) -> float:
    ref = ref.astype(np.float64).reshape(ours.shape)
    return float(np.max(np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))))


def test_every_shared_model_matches_onnxruntime(benchmarks_dir: Path) -> None:
    models = shared_models(benchmarks_dir)
    assert len(models) >= 12
    rng = np.random.default_rng(0)
    report = {}
    for onnx_path, vnnlib in models:
        graph = load_onnx(onnx_path)
        shape = graph.inputs[0].shape
        lower, upper = read_box(vnnlib, int(np.prod(shape)))
        x = (lower + (upper - lower) * rng.random((100, lower.size))).astype(np.float32)
        ours = evaluate(graph, torch.from_numpy(x.astype(np.float64)).reshape(100, *shape)).numpy()
        err32 = _rel(ours, _ort(str(onnx_path), x, shape))
        report[onnx_path.name] = err32
        if err32 <= TOL:
            continue
        model64 = float64_model(onnx.load(str(onnx_path))).SerializeToString()
        ref64 = _ort(model64, x.astype(np.float64), shape)
        assert _rel(ours, ref64) <= 1e-9, f"{onnx_path.name}: float64 reference differs"
        ort_own = _rel(_ort(str(onnx_path), x, shape).astype(np.float64), ref64)
        assert err32 <= 1.01 * ort_own + TOL, f"{onnx_path.name}: {err32:.2e} vs {ort_own:.2e}"
    assert all(np.isfinite(v) for v in report.values())


@pytest.mark.parametrize(
    "rel",
    ["ml4acopf_2023/onnx/300_ieee_ml4acopf.onnx", "vit_2023/onnx/ibp_3_3_8.onnx"],
)
def test_batch_evaluation_is_consistent(benchmarks_dir: Path, rel: str) -> None:
    graph = load_onnx(benchmarks_dir / rel)
    x = torch.randn(4, *graph.inputs[0].shape, dtype=torch.float64) * 0.1
    batched = evaluate(graph, x)
    single = torch.cat([evaluate(graph, x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single, rtol=1e-12, atol=1e-12)
    assert all(d >= 0 for n in graph.nodes for d in n.shape)


def test_vit_graph_is_canonical(benchmarks_dir: Path) -> None:
    graph = load_onnx(benchmarks_dir / "vit_2023/onnx/pgd_2_3_16.onnx")
    ops = graph.op_counts()
    assert "BatchNormalization" not in ops and "Shape" not in ops
    assert ops["MatMul"] == 4 and ops["Softmax"] == 2
    assert graph.inputs[0].shape == (1, 3, 32, 32) and graph.outputs[0].shape == (1, 10)
