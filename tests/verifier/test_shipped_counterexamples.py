"""Every counterexample shipped in ../shared/benchmarks reads back and onnxruntime
confirms it: running the ONNX model on its X gives outputs that violate the spec
(VNN-COMP tolerance: X within 1e-4 of a box, some disjunct with C·y <= d + 1e-4)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from verifier.counterexample_check import OrtChecker
from vnnlib import load_vnnlib, read_counterexample

ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"


def _cases() -> list[tuple[Path, Path, Path]]:
    out = []
    for ce in sorted(ROOT.glob("*/counterexamples/*.counterexample")):
        bench = ce.parent.parent
        onnx_stem, spec_stem = ce.stem.split("__")[:2]
        for row in csv.reader(open(bench / "instances.csv")):
            if row and Path(row[0]).stem == onnx_stem and Path(row[1]).stem == spec_stem:
                out.append((ce, bench / row[0], bench / row[1]))
                break
    return out


CASES = _cases()


@pytest.mark.parametrize(("ce", "model", "spec"), CASES, ids=[c[0].stem for c in CASES])
def test_shipped_counterexample_is_confirmed_by_onnxruntime(benchmarks_dir, ce, model, spec):
    x, _ = read_counterexample(ce)
    checker = OrtChecker(model)
    y = checker.run(x.astype(np.float32)).astype(np.float64).reshape(-1)
    s = load_vnnlib(spec)
    assert s.find_violated_case(x, y, atol=1e-4) is not None, f"{ce.name} does not violate"


def test_some_counterexamples_found(benchmarks_dir) -> None:
    assert len(CASES) >= 20
