"""Every counterexample shipped in ../shared/benchmarks reads back and onnxruntime
confirms it: running the ONNX model on its X gives outputs that violate the spec
(VNN-COMP tolerance: X within 1e-4 of a box, some disjunct with C·y <= d + 1e-4)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from tests.shared_data import parametrize_shared
from verifier.counterexample_check import OrtChecker
from vnnlib import load_vnnlib, read_counterexample


def _cases(root: Path) -> list[tuple[Path, Path, Path]]:
    out = []
    for ce in sorted(root.glob("*/counterexamples/*.counterexample")):
        bench = ce.parent.parent
        onnx_stem, spec_stem = ce.stem.split("__")[:2]
        with open(bench / "instances.csv", newline="") as f:
            for row in csv.reader(f):
                if row and Path(row[0]).stem == onnx_stem and Path(row[1]).stem == spec_stem:
                    out.append((ce, bench / row[0], bench / row[1]))
                    break
    return out


@parametrize_shared(("ce", "model", "spec"), _cases, ids=lambda c: c[0].stem)
def test_shipped_counterexample_is_confirmed_by_onnxruntime(benchmarks_dir, ce, model, spec):
    x, _ = read_counterexample(ce)
    checker = OrtChecker(model)
    y = checker.run(x.astype(np.float32)).astype(np.float64).reshape(-1)
    s = load_vnnlib(spec)
    assert s.find_violated_case(x, y, atol=1e-4) is not None, f"{ce.name} does not violate"


def test_some_counterexamples_found(benchmarks_dir: Path) -> None:
    assert len(_cases(benchmarks_dir)) >= 20
