"""Status words, Result invariants and the VNN-COMP results-file text."""

from __future__ import annotations

import json

import numpy as np
import pytest

import vnnlib
from verifier.result import Counterexample, Result, Status


def test_status_words() -> None:
    assert [s.word for s in Status] == ["sat", "unsat", "unknown", "timeout", "error"]
    assert Status("unsat") is Status.UNSAT


def test_counterexample_is_flat_float64_and_read_only() -> None:
    ce = Counterexample(x=np.array([[0.5, 1.0]], dtype=np.float32), y=[1, 2, 3], case_index=2)
    assert ce.x.shape == (2,) and ce.x.dtype == np.float64 and ce.y.shape == (3,)
    with pytest.raises(ValueError):
        ce.x[0] = 3.0


def test_result_requires_counterexample_exactly_for_sat() -> None:
    with pytest.raises(ValueError):
        Result(Status.SAT)
    ce = Counterexample(x=[0.0], y=[0.0], case_index=0)
    with pytest.raises(ValueError):
        Result(Status.UNKNOWN, counterexample=ce)


@pytest.mark.parametrize("status", [Status.UNSAT, Status.UNKNOWN, Status.TIMEOUT, Status.ERROR])
def test_results_file_without_counterexample_is_one_word(status: Status) -> None:
    assert Result(status, reason="x").to_vnncomp() == status.word + "\n"


def test_results_file_for_sat_round_trips() -> None:
    x = np.array([0.1, -2.5, 1e-7])
    y = np.array([3.25, -0.125])
    text = Result(Status.SAT, Counterexample(x, y, 0)).to_vnncomp()
    first, rest = text.split("\n", 1)
    assert first == "sat"
    assert "(X_0 " in rest and "(Y_1 " in rest
    px, py = vnnlib.parse_counterexample(rest)
    np.testing.assert_array_equal(np.asarray(px, dtype=np.float64).reshape(-1), x)
    np.testing.assert_array_equal(np.asarray(py, dtype=np.float64).reshape(-1), y)


def test_to_dict_is_json_ready() -> None:
    ce = Counterexample(x=[1.0, 2.0], y=[3.0], case_index=1)
    res = Result(
        Status.SAT, ce, reason="found", stats={"total_s": 1.5, "points": 3}, stop="counterexample"
    )
    data = json.loads(json.dumps(res.to_dict()))
    assert data == {
        "status": "sat",
        "stop": "counterexample",
        "reason": "found",
        "timings": {"total_s": 1.5},
        "stats": {"points": 3},
        "counterexample": {"x": [1.0, 2.0], "y": [3.0], "case_index": 1},
    }
    assert Result(Status.UNKNOWN).to_dict()["counterexample"] is None


def test_stats_are_read_only() -> None:
    res = Result(Status.UNKNOWN, stats={"a": 1.0})
    with pytest.raises(TypeError):
        res.stats["a"] = 2.0  # type: ignore[index]
