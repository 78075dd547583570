"""Falsifier (random sampling + PGD) and onnxruntime confirmation, on tiny stand-in models."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from verifier.attack import AttackProgress, CaseGroup, find_candidate, group_cases, iter_candidates
from verifier.config import AttackConfig
from verifier.counterexample_check import OrtChecker, OrtCheckError, representable_box
from verifier.deadline import Deadline

CPU = torch.device("cpu")
# Slack on top of a time budget when a test checks that the budget is honoured: generous
# (a loaded CI machine), yet far below what the work would take if the deadline were ignored.
DEADLINE_SLACK_S = 10.0

# y = W x + b with y0 - y1 = 1.9 - x0 - x1: on [0, 1]^2, Y_0 <= Y_1 only near the corner (1, 1).
W = np.array([[-1.0, 0.0], [0.0, 1.0]])
B = np.array([1.9, 0.0])


def linear(x: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(W, dtype=x.dtype)
    return x @ w.T + torch.as_tensor(B, dtype=x.dtype)


def corner_case(lower=(0.0, 0.0), upper=(1.0, 1.0)) -> SimpleNamespace:
    """Violation iff Y_0 - Y_1 <= 0."""
    return SimpleNamespace(
        lower=np.array(lower), upper=np.array(upper), C=np.array([[1.0, -1.0]]), d=np.zeros(1)
    )


def write_linear_onnx(path: Path, in_shape=(1, 2)) -> Path:
    """MatMul + Add model computing ``W x + b`` on an input of shape ``in_shape``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["flat"])] if in_shape != (1, 2) else []
    src = "flat" if nodes else "x"
    nodes += [
        helper.make_node("MatMul", [src, "Wt"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(W.T.astype(np.float32), "Wt"),
        numpy_helper.from_array(B.astype(np.float32), "b"),
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "shape"),
    ]
    graph = helper.make_graph(nodes, "linear", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def run(forward, cases, cfg: AttackConfig, seconds: float | None = None, progress=None):
    return find_candidate(
        forward,
        group_cases(cases),
        cfg,
        Deadline.after(seconds),
        device=CPU,
        dtype=torch.float32,
        progress=progress,
    )


def test_group_cases_keeps_indices_and_shares_boxes() -> None:
    a, b = corner_case(), corner_case(lower=(0.5, 0.0))
    groups = group_cases([a, b, corner_case()])
    assert [g.case_indices for g in groups] == [(0, 2), (1,)]
    assert isinstance(groups[0], CaseGroup) and len(groups[0].constraints) == 2


def test_random_phase_finds_corner_violation() -> None:
    cfg = AttackConfig(random_points=64, rounds=0)
    cand = run(linear, [corner_case()], cfg)
    assert cand is not None and cand.case_index == 0 and cand.margin <= 0
    assert np.all(cand.x >= 0) and np.all(cand.x <= 1)
    assert cand.x.sum() >= 1.9 - 1e-6


def test_pgd_alone_finds_corner_violation() -> None:
    # Only the centre is sampled; PGD has to walk to the corner.
    cfg = AttackConfig(random_points=0, restarts=2, steps=30, rounds=1)
    progress = AttackProgress()
    cand = run(linear, [corner_case()], cfg, progress=progress)
    assert cand is not None and cand.margin <= 0
    assert progress.forward_passes > 1


def test_disjunct_cases_searched_together_reports_right_index() -> None:
    never = SimpleNamespace(
        lower=np.zeros(2), upper=np.ones(2), C=np.array([[-1.0, 0.0]]), d=np.array([-10.0])
    )
    cand = run(linear, [never, corner_case()], AttackConfig(random_points=0, restarts=2))
    assert cand is not None and cand.case_index == 1


def test_no_violation_returns_none() -> None:
    safe = corner_case(upper=(0.5, 0.5))
    progress = AttackProgress()
    assert run(linear, [safe], AttackConfig(steps=5), progress=progress) is None
    assert progress.best_margin > 0 and progress.groups_done == 1


def test_candidates_improve_monotonically() -> None:
    cands = list(
        iter_candidates(
            linear,
            group_cases([corner_case()]),
            AttackConfig(random_points=8, restarts=2, steps=10),
            Deadline.never(),
            device=CPU,
            dtype=torch.float64,
        )
    )
    margins = [c.margin for c in cands]
    assert margins and all(b < a for a, b in zip(margins, margins[1:], strict=False))


def test_empty_output_constraints_violated_anywhere() -> None:
    case = SimpleNamespace(lower=np.zeros(2), upper=np.ones(2), C=np.zeros((0, 2)), d=np.zeros(0))
    cand = run(linear, [case], AttackConfig(random_points=0))
    assert cand is not None and cand.case_index == 0


def test_deadline_stops_slow_attack() -> None:
    def slow(x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.05)
        return linear(x)

    safe = corner_case(upper=(0.5, 0.5))
    start = time.monotonic()
    cfg = AttackConfig(random_points=1000, restarts=1, steps=1000)
    assert run(slow, [safe], cfg, seconds=0.3) is None
    # 1000 steps at 0.05 s each would take 50 s: stopping well before shows the 0.3 s
    # deadline is honoured (the property under test; generous slack, not a speed check)
    assert time.monotonic() - start < 0.3 + DEADLINE_SLACK_S


def test_representable_box_rounds_inwards() -> None:
    lower, upper = np.array([0.1, -0.3]), np.array([0.1 + 1e-9, 0.7])
    lo, hi = representable_box(lower, upper, np.float32)
    assert lo.dtype == np.float32
    assert np.all(lo.astype(np.float64) >= lower) and np.all(hi.astype(np.float64) <= upper)
    # [0.1, 0.1 + 1e-9] holds no float32 value: reported as empty
    assert lo[0] > hi[0] and lo[1] <= hi[1]


def test_ort_confirms_real_and_rejects_fake(tmp_path: Path) -> None:
    checker = OrtChecker(write_linear_onnx(tmp_path / "lin.onnx", in_shape=(1, 1, 2)))
    case = corner_case()
    ce = checker.confirm_case(np.array([1.0, 1.0]), 0, case)
    assert ce is not None and ce.case_index == 0
    np.testing.assert_allclose(ce.y, [0.9, 1.0], rtol=1e-6)  # onnxruntime's outputs
    assert ce.x.tolist() == [1.0, 1.0]
    # A fake candidate (margin claimed <= 0, but the model says otherwise) is rejected.
    assert checker.confirm_case(np.array([0.2, 0.3]), 0, case) is None
    # Points outside the box are clipped into it before the check.
    assert checker.confirm_case(np.array([5.0, 5.0]), 0, case) is not None


def test_ort_confirmation_has_no_tolerance(tmp_path: Path) -> None:
    checker = OrtChecker(write_linear_onnx(tmp_path / "lin.onnx"))
    # Y_0 - Y_1 = 1.9 - x0 - x1 is about +1e-3 at x = (0.95, 0.949): not a violation.
    assert checker.confirm_case(np.array([0.95, 0.949]), 0, corner_case()) is None


def test_ort_confirm_tries_other_cases_of_the_box(tmp_path: Path) -> None:
    checker = OrtChecker(write_linear_onnx(tmp_path / "lin.onnx"))
    never = corner_case()
    never.d = np.array([-10.0])
    ce = checker.confirm(
        np.ones(2), np.zeros(2), np.ones(2), [(4, never.C, never.d), (7, np.eye(2), np.ones(2))]
    )
    assert ce is not None and ce.case_index == 7


def test_ort_broken_model_raises_check_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(OrtCheckError, match="bad.onnx"):
        OrtChecker(bad).confirm_case(np.ones(2), 0, corner_case())
