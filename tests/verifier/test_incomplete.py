"""Incomplete verification stage: refutation logic, float32 margin, known answers."""

from __future__ import annotations

import numpy as np
import pytest

from models import load_onnx
from models.zoo import zoo_model_path, zoo_spec_path
from verifier import Status, verify
from verifier.attack import group_cases
from verifier.incomplete import refuted_cases, rounding_margin, stack_rows
from vnnlib import load_vnnlib


def test_any_row_refutes_its_case() -> None:
    rows = stack_rows(((np.eye(2), np.zeros(2)), (np.eye(2)[:1], np.ones(1))))
    # case 0 has rows 0-1, case 1 has row 2
    assert refuted_cases(np.array([-1.0, 0.5, 0.5]), rows, 2).tolist() == [True, False]
    assert refuted_cases(np.array([-1.0, -1.0, 2.0]), rows, 2).tolist() == [False, True]


def test_margin_blocks_thin_refutations() -> None:
    rows = stack_rows(((np.eye(1), np.zeros(1)),))
    assert refuted_cases(np.array([1e-7]), rows, 1).all()
    assert not refuted_cases(np.array([1e-7]), rows, 1, np.array([1e-6])).any()


def test_rounding_margin_is_small_positive_and_finite() -> None:
    graph = load_onnx(zoo_model_path("acopf"))
    group = group_cases(load_vnnlib(zoo_spec_path("acopf")).cases)[0]
    m = rounding_margin(graph, group.lower, group.upper, stack_rows(group.constraints))
    assert np.all(np.isfinite(m)) and np.all(m > 0) and np.all(m < 1e-3)


@pytest.mark.parametrize("name", ["mlp_sigmoid", "mlp_sin", "mlp_gelu", "lstm", "acopf"])
def test_zoo_specs_are_proved(name: str) -> None:
    res = verify(zoo_model_path(name), zoo_spec_path(name), timeout=60, attack__rounds=1)
    assert res.status is Status.UNSAT, res.reason


def test_no_proof_when_property_is_violated(tmp_path) -> None:
    """A spec violated at the box centre must never be proved (sat or unknown only)."""
    spec = load_vnnlib(zoo_spec_path("mlp_tanh"))
    case = spec.cases[0]
    lines = [f"(declare-const X_{i} Real)" for i in range(spec.n_inputs)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(spec.n_outputs)]
    centre = (case.lower + case.upper) / 2
    for i, c in enumerate(centre):
        lo, hi = float(c) - 0.5, float(c) + 0.5
        lines += [f"(assert (>= X_{i} {lo!r}))", f"(assert (<= X_{i} {hi!r}))"]
    lines.append("(assert (<= Y_0 1000.0))")  # always true: violated everywhere
    path = tmp_path / "violated.vnnlib"
    path.write_text("\n".join(lines) + "\n")
    res = verify(zoo_model_path("mlp_tanh"), path, timeout=60)
    assert res.status is Status.SAT
    # Without the falsifier, the search's own candidates find it.
    res = verify(zoo_model_path("mlp_tanh"), path, timeout=60, attack__enabled=False)
    assert res.status is Status.SAT and res.stop == "counterexample"
    assert res.stats["bab_candidates_checked"] >= 1
    # Bounds alone can only say unknown.
    res = verify(
        zoo_model_path("mlp_tanh"), path, timeout=60, attack__enabled=False, bounds__bab=False
    )
    assert res.status is Status.UNKNOWN and res.stop == "incomplete"
