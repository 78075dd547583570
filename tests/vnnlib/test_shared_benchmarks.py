"""Every shared VNN-COMP spec parses sanely; every shipped counterexample violates its spec."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from vnnlib import Spec, SpecCache, load_vnnlib, read_counterexample

_CACHE = SpecCache(capacity=512)
_DECL = re.compile(r"^\s*\(declare-const ([XY])_\d+ Real\)", re.MULTILINE)
_TOP_BOUND = re.compile(r"^\(assert \((<=|>=) X_(\d+) (\S+)\)\)", re.MULTILINE)


def _load(path: Path) -> Spec:
    return load_vnnlib(path, cache=_CACHE)


def _spec_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/**/*") if p.name.endswith((".vnnlib", ".vnnlib.gz")))


def test_all_shared_specs_parse_with_sane_shapes(benchmarks_dir: Path) -> None:
    files = _spec_files(benchmarks_dir)
    assert len(files) > 100
    for path in files:
        spec = _load(path)
        text = path.read_text()
        declared = _DECL.findall(text)
        assert spec.n_inputs == declared.count("X") > 0, path
        assert spec.n_outputs == declared.count("Y") > 0, path
        assert spec.cases, path
        for case in spec.cases:
            assert np.all(np.isfinite(case.lower)) and np.all(np.isfinite(case.upper)), path
            assert np.all(case.lower <= case.upper), path
            assert case.C.shape[1] == spec.n_outputs and np.any(case.C != 0, axis=1).all(), path
        _check_top_level_bounds(spec, text, path)


def _check_top_level_bounds(spec: Spec, text: str, path: Path) -> None:
    """Boxes agree with an independent regex read of top-level ``(assert (op X_i c))``."""
    lower = np.full(spec.n_inputs, -np.inf)
    upper = np.full(spec.n_inputs, np.inf)
    for op, index, value in _TOP_BOUND.findall(text):
        i, v = int(index), float(value)
        if op == "<=":
            upper[i] = min(upper[i], v)
        else:
            lower[i] = max(lower[i], v)
    for case in spec.cases:
        assert np.all(case.lower >= lower) and np.all(case.upper <= upper), path
    if np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)):
        assert len(spec.groups()) == 1, path
        np.testing.assert_array_equal(spec.cases[0].lower, lower, err_msg=str(path))
        np.testing.assert_array_equal(spec.cases[0].upper, upper, err_msg=str(path))


def test_known_spec_structure(benchmarks_dir: Path) -> None:
    """Hand-checked facts about a few shared specs."""
    acas = _load(benchmarks_dir / "acasxu_2023/vnnlib/prop_2.vnnlib")
    (case,) = acas.cases  # Y_0 maximal: Y_j <= Y_0 for j = 1..4
    assert case.C.shape == (4, 5) and case.C[:, 0].tolist() == [-1.0] * 4
    assert case.lower.tolist() == [0.6, -0.5, -0.5, 0.45, -0.5]
    vit = _load(benchmarks_dir / "vit_2023/vnnlib/ibp_3_3_8_1140.vnnlib")
    assert (vit.n_inputs, vit.n_outputs, len(vit.cases), len(vit.groups())) == (3072, 10, 9, 1)
    opf = _load(benchmarks_dir / "ml4acopf_2023/vnnlib/300_ieee_prop4.vnnlib")
    assert len(opf.cases) == 600 and len(opf.groups()) == 1


def _counterexamples(root: Path) -> list[Path]:
    return sorted(root.glob("*/counterexamples/*.counterexample"))


def _spec_for(ce: Path) -> Path:
    """The vnnlib file of ``<onnx stem>__<vnnlib stem>__<tool>.counterexample``."""
    prefix = ce.name[: -len(".counterexample")].rsplit("__", 1)[0]
    folder = ce.parent.parent
    with open(folder / "instances.csv", newline="") as handle:
        for row in csv.reader(handle):
            onnx, spec = row[0], row[1]
            if f"{Path(onnx).stem}__{Path(spec).stem}" == prefix:
                return folder / spec
    raise AssertionError(f"no instances.csv row matches {ce.name}")


def test_every_shipped_counterexample_violates_its_spec(benchmarks_dir: Path) -> None:
    files = _counterexamples(benchmarks_dir)
    assert len(files) >= 30
    partial = []
    for ce in files:
        spec = _load(_spec_for(ce))
        x, y = read_counterexample(ce)
        assert x.size == spec.n_inputs, ce
        if y.size != spec.n_outputs:
            # Some tools wrote only part of the output (e.g. Y_0 alone); the input must
            # still lie in a box. Re-running the model is checked elsewhere.
            partial.append(ce.name)
            assert any(case.input_contains(x, atol=1e-4) for case in spec.cases), ce
            continue
        assert spec.find_violated_case(x, y, atol=1e-4) is not None, ce
    assert len(partial) <= 2, partial


def test_a_perturbed_counterexample_is_rejected(benchmarks_dir: Path) -> None:
    """The check above can fail: moving x far out of the box is detected."""
    ce = _counterexamples(benchmarks_dir)[0]
    spec = _load(_spec_for(ce))
    x, y = read_counterexample(ce)
    assert spec.find_violated_case(x + 10.0, y, atol=1e-4) is None


@pytest.mark.parametrize("folder", ["acasxu_2023", "mnist_fc_2022"])
def test_model_sizes_accepted(benchmarks_dir: Path, folder: str) -> None:
    spec_path = next(iter(_spec_files(benchmarks_dir / folder)))
    spec = _load(spec_path)
    assert load_vnnlib(spec_path, n_inputs=spec.n_inputs, cache=_CACHE) == spec
