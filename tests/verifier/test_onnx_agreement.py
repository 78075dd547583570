"""verifier.onnx_agreement: our import of a model against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models import ModelLoadError
from verifier.onnx_agreement import CheckReport, check_model, float64_model

RNG = np.random.default_rng(5)


def _save(tmp_path: Path, nodes, inits, shape, name="m.onnx") -> Path:
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(onnx.shape_inference.infer_shapes(model), path)
    return path


def _mlp(tmp_path: Path, batch: int | str = "N") -> Path:
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Sigmoid", ["h"], ["s"]),
        helper.make_node("Mul", ["s", "h"], ["p"]),
        helper.make_node("MatMul", ["p", "W2"], ["y"]),
    ]
    inits = {
        "W1": RNG.standard_normal((8, 4)).astype(np.float32),
        "b1": RNG.standard_normal(8).astype(np.float32),
        "W2": RNG.standard_normal((8, 3)).astype(np.float32),
    }
    return _save(tmp_path, nodes, inits, [batch, 4], f"mlp_{batch}.onnx")


@pytest.mark.parametrize("batch", ["N", 1])
def test_report_fields(tmp_path: Path, batch: int | str) -> None:
    path = _mlp(tmp_path, batch)
    box = (np.full(4, -1.0), np.full(4, 2.0))
    report = check_model(path, box=box, n_points=20, seed=3)
    assert isinstance(report, CheckReport)
    assert report.model == str(path) and report.passed and report.points == 20
    assert report.input_name == "x" and report.input_shape == (1, 4)
    assert report.output_name == "y" and report.output_shape == (1, 3)
    assert report.op_counts == {"Linear": 2, "Mul": 1, "Sigmoid": 1}
    assert report.nonlinear_ops == ("Mul", "Sigmoid")
    assert 0.0 <= report.max_rel_err <= report.tolerance == 1e-5
    assert report.max_abs_err >= report.max_rel_err * 0.0
    assert report.max_rel_err_float32 is None and report.max_rel_err_float64_reference is None
    assert "ok" in report.summary()
    with pytest.raises(AttributeError):
        report.passed = False  # type: ignore[misc]


def test_zero_tolerance_reports_float32_rounding(tmp_path: Path) -> None:
    report = check_model(_mlp(tmp_path), n_points=10, tolerance=0.0)
    assert not report.passed and report.max_rel_err > 0.0
    assert report.max_rel_err_float32 is not None
    assert report.max_rel_err_float64_reference is not None
    assert report.max_rel_err_float64_reference < 1e-12
    assert "MISMATCH" in report.summary()


def test_box_validation_and_load_errors(tmp_path: Path) -> None:
    path = _mlp(tmp_path)
    with pytest.raises(ValueError, match="box has"):
        check_model(path, box=(np.zeros(3), np.ones(3)))
    with pytest.raises(ValueError, match="exceeds"):
        check_model(path, box=(np.ones(4), np.zeros(4)))
    with pytest.raises(ModelLoadError, match="missing.onnx"):
        check_model(tmp_path / "missing.onnx")


def test_points_stay_in_box(tmp_path: Path) -> None:
    nodes = [helper.make_node("Log", ["x"], ["y"])]
    path = _save(tmp_path, nodes, {}, [1, 5])
    report = check_model(path, box=(np.full(5, 0.5), np.full(5, 3.0)), n_points=30)
    assert report.passed and np.isfinite(report.max_abs_err)


def test_float64_model_is_double(tmp_path: Path) -> None:
    model64 = float64_model(onnx.load(str(_mlp(tmp_path))))
    assert model64.graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE
    assert all(t.data_type == TensorProto.DOUBLE for t in model64.graph.initializer)


def test_shared_models_in_spec_boxes(benchmarks_dir: Path) -> None:
    vit = benchmarks_dir / "vit_2023/onnx/pgd_2_3_16.onnx"
    report = check_model(vit, n_points=8)
    assert report.passed and report.nonlinear_ops == ("MatMul", "Relu", "Softmax")
    acopf = benchmarks_dir / "ml4acopf_2023/onnx/300_ieee_ml4acopf.onnx"
    lower = np.full(402, 0.9)
    report = check_model(acopf, box=(lower, lower + 0.05), n_points=20, tolerance=1e-7)
    if not report.passed:
        assert report.max_rel_err_float64_reference is not None
        assert report.max_rel_err_float64_reference < 1e-9
