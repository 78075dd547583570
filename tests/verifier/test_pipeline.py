"""verify(): stages, sat/unknown/timeout semantics, bad input -> InputError, benchmarks."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from branching import BabConfig
from tests.verifier.linear_model import spec_text, write_model
from verifier import InputError, Status, VerifyConfig, verify
from verifier.deadline import Deadline
from verifier.pipeline import DEFAULT_STAGES, Stage, StageContext, load_problem
from verifier.result import Result

# Slack on top of a time budget when a test checks that the budget is honoured: generous
# (a loaded CI machine), yet far below what the work would take if the deadline were ignored.
DEADLINE_SLACK_S = 10.0


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_model(tmp_path / "lin.onnx")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_planted_violation_is_sat_and_confirmed(model: Path, tmp_path: Path) -> None:
    spec = write(tmp_path / "p.vnnlib", spec_text())
    res = verify(model, spec, VerifyConfig(timeout=30))
    assert res.status is Status.SAT, res.reason
    ce = res.counterexample
    assert ce is not None and ce.case_index == 0
    assert np.all(ce.x >= 0) and np.all(ce.x <= 1)
    assert ce.y[0] <= ce.y[1]  # onnxruntime's outputs violate the property
    assert "onnxruntime" in res.reason
    assert {"load_s", "attack_s", "total_s"} <= set(res.stats)
    assert res.to_vnncomp().startswith("sat\n(")


def test_float64_engine_still_confirms_in_float32(model: Path, tmp_path: Path) -> None:
    spec = write(tmp_path / "p.vnnlib", spec_text(hi=0.96 + 1e-9))  # box edge not a float32
    res = verify(model, spec, runtime__dtype="float64", attack__random_points=0)
    assert res.status is Status.SAT, res.reason
    x = res.counterexample.x
    assert np.all(x <= 0.96 + 1e-9) and np.array_equal(x, x.astype(np.float32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_planted_violation_on_cuda(model: Path, tmp_path: Path) -> None:
    spec = write(tmp_path / "p.vnnlib", spec_text())
    res = verify(model, spec, VerifyConfig(timeout=60), runtime__device="cuda")
    assert res.status is Status.SAT, res.reason


def test_safe_box_is_unknown_not_timeout(model: Path, tmp_path: Path) -> None:
    spec = write(tmp_path / "p.vnnlib", spec_text(hi=0.5))
    res = verify(model, spec, VerifyConfig(timeout=30), attack__steps=5, bounds__enabled=False)
    assert res.status is Status.UNKNOWN
    assert "falsifier found no counterexample" in res.reason


def test_timeout_when_attack_outlasts_budget(model: Path, tmp_path: Path) -> None:
    spec = write(tmp_path / "p.vnnlib", spec_text(hi=0.5))
    cfg = VerifyConfig(timeout=0.5).with_overrides(attack__steps=10**7, attack__time_fraction=1.0)
    start = time.monotonic()
    res = verify(model, spec, cfg)
    assert res.status is Status.TIMEOUT and "time budget" in res.reason
    # the deadline is honoured (the property under test; generous slack, not a speed check)
    assert time.monotonic() - start < 0.5 + DEADLINE_SLACK_S


def test_expired_deadline_before_stages_is_timeout(model: Path, tmp_path: Path) -> None:
    spec = write(tmp_path / "p.vnnlib", spec_text())
    res = verify(model, spec, deadline=Deadline.after(0.0))
    assert res.status is Status.TIMEOUT


def test_stages_are_pluggable(model: Path, tmp_path: Path) -> None:
    spec = write(tmp_path / "p.vnnlib", spec_text(hi=0.5))
    seen: list[str] = []

    def bounds(ctx: StageContext) -> Result | None:
        seen.append(ctx.problem.model_path.name)
        return Result(Status.UNSAT, reason="stand-in bounds stage")

    stages = (*DEFAULT_STAGES[:2], Stage("bounds", bounds))
    res = verify(model, spec, stages=stages, attack__steps=2)
    assert res.status is Status.UNSAT and seen == ["lin.onnx"]
    assert "bounds_s" in res.stats and "attack_s" in res.stats


def test_load_problem_groups_cases(model: Path, tmp_path: Path) -> None:
    spec = write(tmp_path / "p.vnnlib", spec_text(out="(or (<= Y_0 Y_1) (<= Y_1 -5.0))"))
    problem = load_problem(model, spec)
    assert problem.input_shape == (1, 2)
    assert len(problem.groups) == 1 and problem.groups[0].case_indices == (0, 1)


BAD_SPECS = {
    "undeclared variable": spec_text(out="(<= Y_0 Y_7)"),
    "too few inputs": spec_text(n_in=1),
    "too many outputs": spec_text(n_out=3),
    "syntax": "(declare-const X_0 Real",
}


@pytest.mark.parametrize("kind", sorted(BAD_SPECS))
def test_bad_spec_is_input_error(model: Path, tmp_path: Path, kind: str) -> None:
    spec = write(tmp_path / "bad.vnnlib", BAD_SPECS[kind])
    with pytest.raises(InputError) as info:
        verify(model, spec)
    assert "bad.vnnlib" in str(info.value) and "\n" not in str(info.value)


def bad_models(tmp_path: Path) -> dict[str, Path]:
    good = write_model(tmp_path / "good.onnx").read_bytes()
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good[: len(good) // 2])
    return {
        "missing": tmp_path / "missing.onnx",
        "empty": empty,
        "truncated": truncated,
        "unknown op": write_model(tmp_path / "unknown_op.onnx", op="BitShift"),
        "directory": tmp_path,
    }


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "unknown op", "directory"])
def test_bad_model_is_input_error(tmp_path: Path, kind: str) -> None:
    spec = write(tmp_path / "p.vnnlib", spec_text())
    path = bad_models(tmp_path)[kind]
    with pytest.raises(InputError) as info:
        verify(path, spec)
    assert path.name in str(info.value)


def test_missing_spec_is_input_error(model: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.vnnlib"):
        verify(model, tmp_path / "nope.vnnlib")


# ------------------------------------------------------------------ real benchmarks


def expected_rows(bench: Path) -> list[dict[str, str]]:
    with open(bench / "expected.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_mnist_fc_prop_2_is_sat(benchmarks_dir: Path) -> None:
    bench = benchmarks_dir / "mnist_fc_2022"
    row = next(
        r
        for r in expected_rows(bench)
        if r["onnx"].endswith("mnist-net_256x2.onnx") and r["vnnlib"].endswith("prop_2_0.03.vnnlib")
    )
    assert row["expected"] == "sat"
    res = verify(bench / row["onnx"], bench / row["vnnlib"], VerifyConfig(timeout=60))
    assert res.status is Status.SAT, res.reason
    ce = res.counterexample
    assert ce is not None and ce.x.shape == (784,) and ce.y.shape == (10,)


def test_progress_reports_totals_over_every_case(benchmarks_dir: Path) -> None:
    """The live line (and the watchdog's answer, which keeps the last report) sees the
    search totals over every case so far, not the running case's alone: mnist_fc 256x2
    prop_6 leaves several of its 9 cases to branch-and-bound (without stabilising, which
    settles it with no search)."""
    from verifier.pipeline import verify_loaded

    folder = benchmarks_dir / "mnist_fc_2022"
    onnx, spec = folder / "onnx/mnist-net_256x2.onnx", folder / "vnnlib/prop_6_0.03.vnnlib"
    seen: list[tuple[int, int]] = []

    def progress(stats) -> None:
        seen.append((stats.rounds, stats.domains_bounded))

    result = verify_loaded(
        lambda: load_problem(onnx, spec),
        VerifyConfig(timeout=120, bab=BabConfig(stabilize=False)),
        deadline=Deadline.after(120),
        progress=progress,
    )
    assert result.status is Status.UNSAT
    assert seen and all(b >= a for a, b in zip(seen, seen[1:]))  # never reset per case
    assert seen[-1] == (result.stats["bab_rounds"], result.stats["bab_domains"])
