"""ONNX import: per-op differential tests against onnxruntime, folding, error paths.

Every case builds a tiny ONNX model with ``onnx.helper``, loads it with
``models.load_onnx``, evaluates it (float64, batch of 4) and compares with
onnxruntime (float32, one sample at a time) within 1e-5 relative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from models import (
    SUPPORTED_ONNX_OPS,
    ModelLoadError,
    UnsupportedOpError,
    evaluate,
    load_onnx,
)

RNG = np.random.default_rng(1234)
TOL = 1e-5


def _w(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _f(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


@dataclass
class Case:
    """One ONNX model: nodes reading ``x`` (shape ``shape``) and writing ``outputs``."""

    nodes: list[onnx.NodeProto]
    shape: list[int | str]
    inits: dict[str, np.ndarray] = field(default_factory=dict)
    opset: int = 17
    outputs: tuple[str, ...] = ("y",)
    positive: bool = False
    out_shape: list[int | str] | None = None


def make_model(case: Case) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, case.shape)]
    outputs = [
        helper.make_tensor_value_info(o, TensorProto.FLOAT, case.out_shape) for o in case.outputs
    ]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in case.inits.items()]
    graph = helper.make_graph(case.nodes, "case", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def compare_with_ort(tmp_path: Path, case: Case, *, fold: bool = True, tol: float = TOL):
    """Load ``case``, evaluate it and onnxruntime on 4 random samples, compare all outputs."""
    path = tmp_path / "case.onnx"
    onnx.save(make_model(case), path)
    graph = load_onnx(path, fold_constants=fold)
    shape = graph.inputs[0].shape
    x = RNG.standard_normal((4, *shape)).astype(np.float32)
    if case.positive:
        x = np.abs(x) + 0.2
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    refs = [sess.run(None, {"x": xi}) for xi in x]
    x64 = torch.from_numpy(x).double()
    for k, out in enumerate(graph.outputs):
        want = np.stack([r[k] for r in refs]).astype(np.float64)
        got = evaluate(graph, x64, output=out.name).numpy()
        assert got.shape == want.shape, (out.name, got.shape, want.shape)
        err = np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)), initial=0.0)
        assert err <= tol, f"output {out.name}: max rel err {err:.3e}"
    return graph


def N(op: str, inputs: list[str], output: str = "y", **attrs) -> onnx.NodeProto:  # noqa: N802
    return helper.make_node(op, inputs, [output], **attrs)


# ----------------------------------------------------------------- arithmetic
ARITH = {
    "gemm_transB": Case(
        [N("Gemm", ["x", "W", "b"], transB=1)], [1, 5], {"W": _w(3, 5), "b": _w(3)}
    ),
    "gemm_alpha_beta_rowbias": Case(
        [N("Gemm", ["x", "W", "b"], alpha=0.5, beta=2.0)], [2, 5], {"W": _w(5, 3), "b": _w(1, 3)}
    ),
    "gemm_matrix_bias": Case([N("Gemm", ["x", "W", "b"])], [2, 5], {"W": _w(5, 3), "b": _w(2, 3)}),
    "gemm_scalar_bias": Case([N("Gemm", ["x", "W", "b"])], [2, 5], {"W": _w(5, 3), "b": _w(1)}),
    "gemm_transA_nobias": Case([N("Gemm", ["x", "W"], transA=1)], [5, 2], {"W": _w(5, 3)}),
    "gemm_variable_b": Case(
        [N("Relu", ["x"], "r"), N("Gemm", ["x", "r", "c"], transB=1, alpha=2.0)],
        [3, 3],
        {"c": _w(3)},
    ),
    "matmul_add_bias": Case(
        [N("MatMul", ["x", "W"], "m"), N("Add", ["b", "m"])], [1, 2, 4], {"W": _w(4, 3), "b": _w(3)}
    ),
    "matmul_const_3d": Case([N("MatMul", ["x", "W"])], [3, 4], {"W": _w(2, 4, 3)}),
    "matmul_const_left": Case([N("MatMul", ["W", "x"])], [4, 2], {"W": _w(3, 4)}),
    "matmul_two_vars": Case(
        [N("Transpose", ["x"], "t", perm=[0, 2, 1]), N("MatMul", ["x", "t"])], [2, 3, 4]
    ),
    "matmul_1d_var": Case([N("MatMul", ["x", "W"])], [4], {"W": _w(4, 3)}),
    "matmul_1d_const_right": Case([N("MatMul", ["x", "v"])], [2, 4], {"v": _w(4)}),
    "matmul_const_left_1d_var": Case([N("MatMul", ["W", "x"])], [4], {"W": _w(3, 4)}),
    "add_broadcast_higher_const": Case([N("Add", ["x", "c"])], [3], {"c": _w(2, 3)}),
    "add_two_vars_ranks": Case(
        [
            N("Relu", ["x"], "r"),
            N("ReduceSum", ["x"], "s", axes=[0], keepdims=0),
            N("Add", ["r", "s"]),
        ],
        [2, 3],
        opset=11,
    ),
    "sub_const": Case([N("Sub", ["x", "c"])], [2, 3], {"c": _w(3)}),
    "sub_from_const": Case([N("Sub", ["c", "x"])], [2, 3], {"c": _w(2, 1)}),
    "sub_vars": Case([N("Relu", ["x"], "r"), N("Sub", ["x", "r"])], [2, 3]),
    "mul_const": Case([N("Mul", ["c", "x"])], [2, 3], {"c": _w(1, 3)}),
    "mul_vars": Case([N("Sin", ["x"], "s"), N("Mul", ["x", "s"])], [2, 3]),
    "div_const": Case([N("Div", ["x", "c"])], [2, 3], {"c": np.abs(_w(3)) + 0.5}),
    "div_vars": Case([N("Exp", ["x"], "e"), N("Div", ["x", "e"])], [2, 3]),
    "div_one_by_var": Case(
        [N("Div", ["one", "x"])], [2, 3], {"one": np.ones((), np.float32)}, positive=True
    ),
    "div_const_by_var": Case([N("Div", ["c", "x"])], [2, 3], {"c": _w(3)}, positive=True),
    "pow_2": Case([N("Pow", ["x", "e"])], [2, 3], {"e": np.array(2.0, np.float32)}),
    "pow_3": Case([N("Pow", ["x", "e"])], [2, 3], {"e": np.array([3.0], np.float32)}),
    "pow_half": Case(
        [N("Pow", ["x", "e"])], [2, 3], {"e": np.array(0.5, np.float32)}, positive=True
    ),
    "pow_const_base": Case([N("Pow", ["c", "x"])], [2, 3], {"c": np.array(2.5, np.float32)}),
    "clip_attrs": Case([N("Clip", ["x"], min=-0.5, max=0.7)], [2, 3], opset=6),
    "clip_inputs": Case(
        [N("Clip", ["x", "lo", "hi"])],
        [2, 3],
        {"lo": np.array(-0.3, np.float32), "hi": np.array(0.4, np.float32)},
        opset=13,
    ),
    "clip_min_only": Case([N("Clip", ["x", "lo"])], [2, 3], {"lo": np.array(0.1, np.float32)}),
    "clip_max_only": Case([N("Clip", ["x", "", "hi"])], [2, 3], {"hi": np.array(0.1, np.float32)}),
    "leaky_relu": Case([N("LeakyRelu", ["x"], alpha=0.2)], [2, 3]),
    "leaky_relu_default": Case([N("LeakyRelu", ["x"])], [2, 3]),
    "gelu_exact": Case([N("Gelu", ["x"])], [2, 3], opset=20),
    "gelu_tanh": Case([N("Gelu", ["x"], approximate="tanh")], [2, 3], opset=20),
}

for _op in ("Neg", "Relu", "Sigmoid", "Tanh", "Sin", "Cos", "Erf", "Exp", "Sign", "Floor"):
    ARITH[_op.lower()] = Case([N(_op, ["x"])], [2, 3])
for _op in ("Log", "Reciprocal", "Sqrt"):
    ARITH[_op.lower()] = Case([N(_op, ["x"])], [2, 3], positive=True)


@pytest.mark.parametrize("name", sorted(ARITH))
def test_arithmetic_ops_match_onnxruntime(tmp_path: Path, name: str) -> None:
    compare_with_ort(tmp_path, ARITH[name])


def test_gemm_and_matmul_become_linear(tmp_path: Path) -> None:
    g = compare_with_ort(tmp_path, ARITH["matmul_add_bias"])
    assert g.op_counts() == {"Linear": 1}
    assert len(g.nodes[0].inputs) == 3
    w = g.constants[g.nodes[0].inputs[1]]
    assert w.shape == (4, 3)
    g = compare_with_ort(tmp_path, ARITH["gemm_transB"])
    assert g.op_counts() == {"Linear": 1} and g.constants[g.nodes[0].inputs[1]].shape == (5, 3)
    g = compare_with_ort(tmp_path, ARITH["matmul_const_left"])
    assert g.op_counts() == {"MatMul": 1}


def test_sub_and_div_canonical_forms(tmp_path: Path) -> None:
    assert set(compare_with_ort(tmp_path, ARITH["sub_vars"]).op_counts()) == {"Add", "Neg", "Relu"}
    assert compare_with_ort(tmp_path, ARITH["sub_const"]).op_counts() == {"Add": 1}
    assert compare_with_ort(tmp_path, ARITH["div_const"]).op_counts() == {"Mul": 1}
    div = compare_with_ort(tmp_path, ARITH["div_vars"]).op_counts()
    assert div == {"Exp": 1, "Mul": 1, "Reciprocal": 1}
    assert compare_with_ort(tmp_path, ARITH["div_one_by_var"]).op_counts() == {"Reciprocal": 1}
    pow_node = compare_with_ort(tmp_path, ARITH["pow_3"]).nodes[0]
    assert pow_node.op == "Pow" and pow_node.attrs["exponent"] == 3.0
    clip = compare_with_ort(tmp_path, ARITH["clip_min_only"]).nodes[0]
    assert clip.attrs["min"] == pytest.approx(0.1) and clip.attrs["max"] == float("inf")


# ------------------------------------------------------------------ shape ops
SHAPE = {
    "flatten_axis1": Case([N("Flatten", ["x"], axis=1)], [1, 2, 3, 2]),
    "flatten_axis0": Case([N("Flatten", ["x"], axis=0)], [1, 2, 3]),
    "flatten_axis_neg": Case([N("Flatten", ["x"], axis=-1)], [1, 2, 3]),
    "reshape_zero_minus1": Case([N("Reshape", ["x", "s"])], [1, 2, 6], {"s": _i64(0, -1, 3)}),
    "reshape_symbolic_batch": Case([N("Reshape", ["x", "s"])], ["N", 6], {"s": _i64(-1, 2, 3)}),
    "transpose_default": Case([N("Transpose", ["x"])], [2, 3, 4]),
    "transpose_axis0": Case([N("Transpose", ["x"], perm=[1, 0])], [1, 5]),
    "concat_var_const": Case([N("Concat", ["x", "c"], axis=-1)], [1, 2], {"c": _w(1, 3)}),
    "concat_vars_axis0": Case([N("Neg", ["x"], "n"), N("Concat", ["x", "n"], axis=0)], [1, 3]),
    "slice_opset9": Case([N("Slice", ["x"], starts=[1], ends=[3], axes=[1])], [1, 4], opset=9),
    "slice_steps": Case(
        [N("Slice", ["x", "s", "e", "a", "p"])],
        [2, 7],
        {"s": _i64(1), "e": _i64(2**62), "a": _i64(-1), "p": _i64(2)},
        opset=13,
    ),
    "slice_negative_step": Case(
        [N("Slice", ["x", "s", "e", "a", "p"])],
        [2, 6],
        {"s": _i64(-1), "e": _i64(-(2**62)), "a": _i64(1), "p": _i64(-2)},
        opset=13,
    ),
    "slice_negative_bounds": Case(
        [N("Slice", ["x", "s", "e"])], [3, 6], {"s": _i64(-2, 1), "e": _i64(-1, 5)}, opset=13
    ),
    "gather_scalar": Case([N("Gather", ["x", "i"], axis=1)], [2, 5], {"i": np.array(-2, np.int64)}),
    "gather_matrix": Case(
        [N("Gather", ["x", "i"], axis=1)], [2, 5], {"i": _i64(4, 0, 2, 2).reshape(2, 2)}
    ),
    "gather_axis0": Case([N("Gather", ["x", "i"], axis=0)], [3, 2], {"i": _i64(2, 0)}),
    "split_attr": Case(
        [helper.make_node("Split", ["x"], ["a", "b"], axis=1, split=[1, 3])],
        [2, 4],
        opset=11,
        outputs=("a", "b"),
    ),
    "split_input": Case(
        [helper.make_node("Split", ["x", "s"], ["a", "b"], axis=1)],
        [2, 5],
        {"s": _i64(3, 2)},
        opset=13,
        outputs=("a", "b"),
    ),
    "split_equal": Case(
        [helper.make_node("Split", ["x"], ["a", "b", "c"], axis=-1)],
        [1, 6],
        outputs=("a", "b", "c"),
    ),
    "split_num_outputs": Case(
        [helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2)],
        [1, 5],
        opset=18,
        outputs=("a", "b"),
    ),
    "squeeze_attr": Case([N("Squeeze", ["x"], axes=[0, 2])], [1, 3, 1], opset=11),
    "squeeze_input": Case([N("Squeeze", ["x", "a"])], [1, 3, 1], {"a": _i64(-1)}, opset=13),
    "squeeze_all": Case([N("Squeeze", ["x"])], [1, 3, 1], opset=13),
    "unsqueeze_attr": Case([N("Unsqueeze", ["x"], axes=[0, 3])], [2, 3], opset=11),
    "unsqueeze_input": Case([N("Unsqueeze", ["x", "a"])], [2, 3], {"a": _i64(-1, 1)}, opset=13),
    "identity_dropout": Case(
        [N("Identity", ["x"], "i"), N("Dropout", ["i"], "d", ratio=0.3), N("Relu", ["d"])],
        [2, 3],
        opset=7,
    ),
    "dropout_opset13": Case(
        [N("Dropout", ["x", "r"], "d"), N("Relu", ["d"])], [2, 3], {"r": np.array(0.2, np.float32)}
    ),
    "cast_float": Case([N("Cast", ["x"], "c", to=TensorProto.FLOAT), N("Relu", ["c"])], [2, 3]),
    "pad_inputs": Case(
        [N("Pad", ["x", "p", "v"])],
        [1, 2, 3],
        {"p": _i64(0, 1, 2, 0, 0, 1), "v": np.array(0.5, np.float32)},
        opset=13,
    ),
    "pad_negative": Case(
        [N("Pad", ["x", "p"])], [1, 4, 3], {"p": _i64(0, -1, 1, 0, 1, -1)}, opset=13
    ),
    "pad_attrs": Case([N("Pad", ["x"], pads=[0, 1, 0, 2], value=-1.0)], [1, 3], opset=2),
    "pad_axes": Case(
        [N("Pad", ["x", "p", "", "a"])], [1, 2, 3], {"p": _i64(1, 2), "a": _i64(-1)}, opset=18
    ),
    "expand": Case([N("Expand", ["x", "s"])], [1, 1, 3], {"s": _i64(2, 4, 1, 3)}),
    "expand_noop": Case(
        [
            N("Expand", ["x", "s"]),
        ],
        [2, 3],
        {"s": _i64(1, 3)},
    ),
}


@pytest.mark.parametrize("name", sorted(SHAPE))
def test_shape_ops_match_onnxruntime(tmp_path: Path, name: str) -> None:
    compare_with_ort(tmp_path, SHAPE[name])


def test_flatten_squeeze_unsqueeze_become_reshape(tmp_path: Path) -> None:
    for name in ("flatten_axis1", "squeeze_input", "unsqueeze_attr"):
        assert compare_with_ort(tmp_path, SHAPE[name]).op_counts() == {"Reshape": 1}
    split = compare_with_ort(tmp_path, SHAPE["split_input"])
    assert split.op_counts() == {"Slice": 2}
    assert [o.name for o in split.outputs] == ["a", "b"]
    assert compare_with_ort(tmp_path, SHAPE["identity_dropout"]).op_counts() == {"Relu": 1}


# ------------------------------------------------------------ constant folding
def _shape_chain_nodes() -> list[onnx.NodeProto]:
    """The vit-style ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` chain."""
    return [
        N("Shape", ["x"], "shape"),
        N("Gather", ["shape", "zero"], "batch", axis=0),
        N("Unsqueeze", ["batch"], "b1", axes=[0]),
        N("Concat", ["b1", "rest"], "target", axis=0),
        N("Reshape", ["x", "target"], "r"),
        N("Transpose", ["r"], "t", perm=[0, 2, 1]),
        N("ConstantOfShape", ["two"], "ones", value=numpy_helper.from_array(_i64(1))),
        N("Mul", ["ones", "minus1"], "m1"),
        N("Equal", ["pattern", "m1"], "eq"),
        N("Where", ["eq", "ones", "pattern"], "where"),
        N("Expand", ["cst", "where"], "expanded"),
        N("Cast", ["expanded"], "casted", to=TensorProto.FLOAT),
        N("Add", ["t", "casted"]),
    ]


def test_shape_subgraphs_are_folded(tmp_path: Path) -> None:
    case = Case(
        _shape_chain_nodes(),
        ["batch_size", 6],
        {
            "zero": np.array(0, np.int64),
            "rest": _i64(2, 3),
            "two": _i64(2),
            "minus1": np.array(-1, np.int64),
            "pattern": _i64(1, -1),
            "cst": _w(2),
        },
        opset=11,
        out_shape=["batch_size", 3, 2],
    )
    g = compare_with_ort(tmp_path, case)
    assert g.inputs[0].shape == (1, 6)
    assert g.op_counts() == {"Add": 1, "Reshape": 1, "Transpose": 1}


def test_constant_only_computation_is_folded(tmp_path: Path) -> None:
    nodes = [
        N("Transpose", ["W"], "wt", perm=[1, 0]),
        N("Mul", ["wt", "two"], "w2"),
        N("Constant", [], "c", value=numpy_helper.from_array(_w(3))),
        N("Neg", ["c"], "nc"),
        N("MatMul", ["x", "w2"], "m"),
        N("Add", ["m", "nc"]),
    ]
    case = Case(nodes, [1, 4], {"W": _w(3, 4), "two": np.array(2.0, np.float32)})
    assert compare_with_ort(tmp_path, case).op_counts() == {"Linear": 1}


def test_graph_output_names_are_kept(tmp_path: Path) -> None:
    case = Case([N("Relu", ["x"], "r"), N("Identity", ["r"], "y")], [1, 3])
    g = compare_with_ort(tmp_path, case)
    assert [o.name for o in g.outputs] == ["y"] and g.nodes[-1].name == "y"
    case = Case([N("Identity", ["x"], "y")], [1, 3])
    assert [o.name for o in compare_with_ort(tmp_path, case).outputs] == ["y"]


# ------------------------------------------------------------------ errors
def _save(tmp_path: Path, case: Case, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    onnx.save(make_model(case), path)
    return path


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError, match="nope.onnx.*does not exist"):
        load_onnx(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty.onnx.*not a valid ONNX model"):
        load_onnx(path)


def test_truncated_file(tmp_path: Path) -> None:
    full = _save(tmp_path, ARITH["gemm_transB"], "full.onnx").read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ModelLoadError, match="truncated.onnx.*not a valid ONNX model"):
        load_onnx(path)


def test_garbage_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"this is not a protobuf at all")
    with pytest.raises(ModelLoadError, match="garbage.onnx.*not a valid ONNX model"):
        load_onnx(path)
    with pytest.raises(ModelLoadError, match="not a regular file"):
        load_onnx(tmp_path)


def test_checker_failure(tmp_path: Path) -> None:
    model = make_model(Case([N("Relu", ["x"])], [1, 3]))
    model.graph.node[0].input[0] = "undefined"
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelLoadError, match="bad.onnx.*checker"):
        load_onnx(path)


def test_unknown_op_lists_node_op_and_supported_ops(tmp_path: Path) -> None:
    node = helper.make_node("Hardmax", ["x"], ["y"], name="my_node")
    path = _save(tmp_path, Case([node], [1, 3]))
    with pytest.raises(UnsupportedOpError) as info:
        load_onnx(path)
    msg = str(info.value)
    assert str(path) in msg and "'my_node'" in msg and "Hardmax" in msg
    assert "Supported ONNX ops:" in msg and "Relu" in msg and "LSTM" in msg
    assert info.value.op_type == "Hardmax" and info.value.node == "my_node"
    assert isinstance(info.value, ModelLoadError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        (Case([N("Pad", ["x", "p"], mode="reflect")], [1, 4], {"p": _i64(0, 1, 0, 1)}), "reflect"),
        (
            Case([N("Cast", ["x"], "c", to=TensorProto.INT64), N("Cast", ["c"], to=1)], [1, 3]),
            "INT64",
        ),
        (
            Case(
                [
                    helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2]),
                    N("Cast", ["i"], "f", to=TensorProto.FLOAT),
                    N("Add", ["p", "f"]),
                ],
                [1, 1, 4],
            ),
            "output 1",
        ),
        (Case([N("Pow", ["x", "x"])], [1, 3]), "exponent"),
        (
            Case([N("AveragePool", ["x"], kernel_shape=[2], dilations=[2])], [1, 1, 5], opset=19),
            "dilations",
        ),
        (Case([N("Resize", ["x", "", "s"], mode="cubic")], [1, 1, 3], {"s": _f(1, 1, 2)}), "cubic"),
    ],
    ids=["pad_reflect", "cast_int", "maxpool_indices", "pow_var", "avgpool_dil", "resize_cubic"],
)
def test_unsupported_features(tmp_path: Path, case: Case, needle: str) -> None:
    path = _save(tmp_path, case)
    with pytest.raises(UnsupportedOpError, match=needle) as info:
        load_onnx(path)
    assert str(path) in str(info.value)


def test_dynamic_non_batch_dimension(tmp_path: Path) -> None:
    path = _save(tmp_path, Case([N("Relu", ["x"])], ["N", "L"]))
    with pytest.raises(ModelLoadError, match="m.onnx.*dynamic dimension 'L' at axis 1"):
        load_onnx(path)


def test_supported_list_contains_required_ops() -> None:
    required = {
        "Gemm",
        "MatMul",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Neg",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Sin",
        "Cos",
        "Erf",
        "Gelu",
        "Exp",
        "Log",
        "Reciprocal",
        "Sqrt",
        "Pow",
        "Softmax",
        "ReduceMean",
        "ReduceSum",
        "BatchNormalization",
        "LayerNormalization",
        "Conv",
        "ConvTranspose",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "Flatten",
        "Reshape",
        "Transpose",
        "Concat",
        "Slice",
        "Gather",
        "Split",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "Dropout",
        "Constant",
        "Shape",
        "Cast",
        "Clip",
        "Sign",
        "Floor",
        "Pad",
        "Resize",
        "Upsample",
        "LSTM",
    }
    assert required <= set(SUPPORTED_ONNX_OPS)
