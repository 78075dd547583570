"""Evaluation: the FORWARD table, batching, dtypes, gradients; structured ops vs onnxruntime.

The differential cases here cover convolutions, pooling, normalisation, Softmax,
reductions, Resize/Upsample and the unrolled LSTM (the elementwise and shape
ops are in ``test_onnx_import.py``).
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

from models import FORWARD, SUPPORTED_OPS, constant_tensors, evaluate, evaluate_all, load_onnx
from models.graph import Graph, Node, ValueInfo, freeze_attrs

RNG = np.random.default_rng(99)
TOL = 1e-5


def _w(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _f(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


@dataclass
class Case:
    nodes: list[onnx.NodeProto]
    shape: list[int | str]
    inits: dict[str, np.ndarray] = field(default_factory=dict)
    opset: int = 17
    outputs: tuple[str, ...] = ("y",)


def make_model(case: Case) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, case.shape)]
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in case.outputs]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in case.inits.items()]
    graph = helper.make_graph(case.nodes, "case", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def compare_with_ort(tmp_path: Path, case: Case, tol: float = TOL) -> Graph:
    path = tmp_path / "case.onnx"
    onnx.save(make_model(case), path)
    graph = load_onnx(path)
    x = RNG.standard_normal((3, *graph.inputs[0].shape)).astype(np.float32)
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


IMG = [1, 2, 7, 6]
W2 = {"W": _w(4, 2, 3, 3), "b": _w(4)}
WT = {"W": _w(2, 3, 3, 3), "b": _w(3)}
BN = {"s": _w(4), "bb": _w(4), "m": _w(4), "v": np.abs(_w(4)) + 0.5}

NN = {
    "conv_pads_strides": Case(
        [N("Conv", ["x", "W", "b"], pads=[1, 1, 1, 1], strides=[2, 1])], IMG, W2
    ),
    "conv_asym_pads": Case([N("Conv", ["x", "W"], pads=[0, 1, 2, 0])], IMG, W2),
    "conv_dilation": Case([N("Conv", ["x", "W", "b"], dilations=[2, 1])], IMG, W2),
    "conv_group": Case([N("Conv", ["x", "W"], group=2)], [1, 4, 5, 5], {"W": _w(6, 2, 3, 3)}),
    "conv_same_upper": Case(
        [N("Conv", ["x", "W"], auto_pad="SAME_UPPER", strides=[2, 2])], IMG, W2
    ),
    "conv_same_lower": Case(
        [N("Conv", ["x", "W"], auto_pad="SAME_LOWER", strides=[2, 2])], IMG, W2
    ),
    "conv_valid": Case([N("Conv", ["x", "W"], auto_pad="VALID")], IMG, W2),
    "conv1d": Case(
        [N("Conv", ["x", "W", "b"], pads=[1, 2])], [1, 2, 7], {"W": _w(3, 2, 3), "b": _w(3)}
    ),
    "conv3d": Case(
        [N("Conv", ["x", "W"], strides=[1, 2, 1])], [1, 2, 4, 5, 3], {"W": _w(2, 2, 2, 2, 2)}
    ),
    "convT_stride_pads": Case(
        [N("ConvTranspose", ["x", "W", "b"], strides=[2, 2], pads=[1, 0, 1, 1])], [1, 2, 4, 3], WT
    ),
    "convT_output_padding": Case(
        [N("ConvTranspose", ["x", "W"], strides=[2, 3], output_padding=[1, 2])], [1, 2, 3, 3], WT
    ),
    "convT_output_shape": Case(
        [N("ConvTranspose", ["x", "W", "b"], strides=[2, 2], output_shape=[8, 7])], [1, 2, 3, 3], WT
    ),
    "convT_same_upper": Case(
        [N("ConvTranspose", ["x", "W"], strides=[2, 2], auto_pad="SAME_UPPER")], [1, 2, 3, 4], WT
    ),
    "convT_group_dilation": Case(
        [N("ConvTranspose", ["x", "W"], group=2, dilations=[2, 1])],
        [1, 4, 3, 3],
        {"W": _w(4, 2, 2, 2)},
    ),
    "convT_1d": Case([N("ConvTranspose", ["x", "W"], strides=[2])], [1, 2, 4], {"W": _w(2, 3, 3)}),
    "maxpool": Case([N("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], IMG),
    "maxpool_pads": Case(
        [N("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], IMG
    ),
    "maxpool_asym_pads": Case([N("MaxPool", ["x"], kernel_shape=[2, 3], pads=[0, 2, 1, 0])], IMG),
    "maxpool_ceil": Case(
        [N("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], IMG
    ),
    "maxpool_ceil_pads": Case(
        [N("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)],
        [1, 2, 6, 6],
    ),
    "maxpool_ceil_last_window_in_pad": Case(
        [N("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)],
        [1, 1, 5, 5],
    ),
    "avgpool_ceil_last_window_in_pad": Case(
        [
            N(
                "AveragePool",
                ["x"],
                kernel_shape=[2, 2],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                ceil_mode=1,
            )
        ],
        [1, 1, 5, 5],
    ),
    "maxpool_dilation": Case([N("MaxPool", ["x"], kernel_shape=[2, 2], dilations=[2, 2])], IMG),
    "maxpool_same": Case(
        [N("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")], IMG
    ),
    "maxpool_1d": Case([N("MaxPool", ["x"], kernel_shape=[3], strides=[2])], [1, 2, 7]),
    "avgpool": Case([N("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], IMG),
    "avgpool_pads_exclude": Case(
        [N("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], IMG
    ),
    "avgpool_pads_include": Case(
        [N("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 0, 1, 2], count_include_pad=1)], IMG
    ),
    "avgpool_ceil": Case(
        [N("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], IMG
    ),
    "avgpool_ceil_pads_include": Case(
        [
            N(
                "AveragePool",
                ["x"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                ceil_mode=1,
                count_include_pad=1,
            )
        ],
        [1, 2, 6, 6],
    ),
    "avgpool_same": Case(
        [N("AveragePool", ["x"], kernel_shape=[3, 2], auto_pad="SAME_LOWER")], IMG
    ),
    "global_avgpool": Case([N("GlobalAveragePool", ["x"])], IMG),
    "bn_after_conv": Case(
        [N("Conv", ["x", "W", "b"], "c"), N("BatchNormalization", ["c", "s", "bb", "m", "v"])],
        IMG,
        {**W2, **BN},
    ),
    "bn_standalone": Case(
        [N("BatchNormalization", ["x", "s", "bb", "m", "v"], epsilon=1e-3)], [1, 4, 3, 2], BN
    ),
    "bn_after_gemm": Case(
        [N("Gemm", ["x", "G"], "g", transB=1), N("BatchNormalization", ["g", "s", "bb", "m", "v"])],
        [1, 5],
        {"G": _w(4, 5), **BN},
    ),
    "bn_2d": Case([N("BatchNormalization", ["x", "s", "bb", "m", "v"])], [1, 4], BN),
    "layernorm": Case(
        [N("LayerNormalization", ["x", "g", "bb"])], [1, 3, 4], {"g": _w(4), "bb": _w(4)}
    ),
    "layernorm_axis1": Case(
        [N("LayerNormalization", ["x", "g"], axis=1, epsilon=1e-3)], [1, 3, 4], {"g": _w(3, 4)}
    ),
    "softmax_legacy_flatten": Case([N("Softmax", ["x"], axis=1)], [1, 3, 4], opset=11),
    "softmax_legacy_default": Case([N("Softmax", ["x"])], [2, 3, 2], opset=9),
    "softmax_13_axis1": Case([N("Softmax", ["x"], axis=1)], [1, 3, 4], opset=13),
    "softmax_13_default": Case([N("Softmax", ["x"])], [1, 3, 4], opset=13),
    "reducemean_attr": Case([N("ReduceMean", ["x"], axes=[1], keepdims=0)], [2, 3, 4], opset=13),
    "reducemean_input": Case(
        [N("ReduceMean", ["x", "a"])], [2, 3, 4], {"a": _i64(-1, 0)}, opset=18
    ),
    "reducesum_input": Case(
        [N("ReduceSum", ["x", "a"], keepdims=0)], [2, 3, 4], {"a": _i64(1)}, opset=13
    ),
    "reducesum_all": Case([N("ReduceSum", ["x"], keepdims=0)], [2, 3], opset=13),
    "reducesum_noop": Case(
        [N("ReduceSum", ["x"], noop_with_empty_axes=1), N("Relu", ["y"], "z")],
        [2, 3],
        opset=13,
        outputs=("z",),
    ),
}

R4 = [1, 2, 3, 4]
RESIZE = {
    "nearest_scales": Case([N("Resize", ["x", "", "s"])], R4, {"s": _f(1, 1, 2, 3)}, opset=13),
    "nearest_sizes": Case([N("Resize", ["x", "", "", "z"])], R4, {"z": _i64(1, 2, 6, 8)}, opset=13),
    "nearest_fractional": Case(
        [N("Resize", ["x", "", "s"])], R4, {"s": _f(1, 1, 1.5, 1.7)}, opset=13
    ),
    "nearest_down": Case(
        [N("Resize", ["x", "", "s"], nearest_mode="ceil")], R4, {"s": _f(1, 1, 0.5, 0.5)}, opset=13
    ),
    "nearest_asym_floor": Case(
        [
            N(
                "Resize",
                ["x", "", "s"],
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        ],
        R4,
        {"s": _f(1, 1, 2.5, 2)},
        opset=13,
    ),
    "nearest_align_corners": Case(
        [N("Resize", ["x", "", "s"], coordinate_transformation_mode="align_corners")],
        R4,
        {"s": _f(1, 1, 2, 2)},
        opset=13,
    ),
    "linear_half_pixel": Case(
        [N("Resize", ["x", "", "s"], mode="linear")], R4, {"s": _f(1, 1, 2, 1.5)}, opset=13
    ),
    "linear_align_corners": Case(
        [
            N(
                "Resize",
                ["x", "", "s"],
                mode="linear",
                coordinate_transformation_mode="align_corners",
            )
        ],
        R4,
        {"s": _f(1, 1, 2, 2)},
        opset=13,
    ),
    "linear_asymmetric": Case(
        [N("Resize", ["x", "", "s"], mode="linear", coordinate_transformation_mode="asymmetric")],
        R4,
        {"s": _f(1, 1, 3, 2)},
        opset=13,
    ),
    "linear_pytorch_half_pixel": Case(
        [
            N(
                "Resize",
                ["x", "", "", "z"],
                mode="linear",
                coordinate_transformation_mode="pytorch_half_pixel",
            )
        ],
        R4,
        {"z": _i64(1, 2, 1, 7)},
        opset=13,
    ),
    "linear_down": Case(
        [N("Resize", ["x", "", "s"], mode="linear")], R4, {"s": _f(1, 1, 0.6, 0.5)}, opset=13
    ),
    "resize_opset10": Case([N("Resize", ["x", "s"])], R4, {"s": _f(1, 1, 2, 2)}, opset=10),
    "upsample_nearest": Case([N("Upsample", ["x", "s"])], R4, {"s": _f(1, 1, 2, 3)}, opset=9),
    "upsample_linear": Case(
        [N("Upsample", ["x", "s"], mode="linear")], R4, {"s": _f(1, 1, 2, 2)}, opset=9
    ),
}


@pytest.mark.parametrize("name", sorted(NN))
def test_structured_ops_match_onnxruntime(tmp_path: Path, name: str) -> None:
    compare_with_ort(tmp_path, NN[name])


@pytest.mark.parametrize("name", sorted(RESIZE))
def test_resize_matches_onnxruntime(tmp_path: Path, name: str) -> None:
    compare_with_ort(tmp_path, RESIZE[name])


def test_canonical_forms_of_structured_ops(tmp_path: Path) -> None:
    assert compare_with_ort(tmp_path, NN["bn_after_conv"]).op_counts() == {"Conv": 1}
    assert compare_with_ort(tmp_path, NN["bn_after_gemm"]).op_counts() == {"Linear": 1}
    assert compare_with_ort(tmp_path, NN["bn_standalone"]).op_counts() == {"Add": 1, "Mul": 1}
    legacy = compare_with_ort(tmp_path, NN["softmax_legacy_flatten"]).op_counts()
    assert legacy == {"Reshape": 2, "Softmax": 1}
    assert compare_with_ort(tmp_path, RESIZE["nearest_scales"]).op_counts() == {"Resize": 1}
    assert set(compare_with_ort(tmp_path, RESIZE["nearest_fractional"]).op_counts()) == {"Gather"}
    linear = compare_with_ort(tmp_path, RESIZE["linear_half_pixel"]).op_counts()
    assert set(linear) <= {"Linear", "Transpose"}


# ------------------------------------------------------------------- LSTM
def _lstm_case(
    hidden: int = 5,
    steps: int = 4,
    feats: int = 3,
    dirs: int = 1,
    outputs: tuple[str, ...] = ("Y",),
    **kw,
) -> Case:
    inits = {"W": _w(dirs, 4 * hidden, feats) * 0.5, "R": _w(dirs, 4 * hidden, hidden) * 0.5}
    names = ["x", "W", "R", "", "", "", "", ""]
    if kw.pop("bias", True):
        inits["B"], names[3] = _w(dirs, 8 * hidden) * 0.3, "B"
    layout = kw.get("layout", 0)
    state_shape = (1, dirs, hidden) if layout else (dirs, 1, hidden)
    if kw.pop("init", False):
        inits["h0"], names[5] = _w(*state_shape), "h0"
        inits["c0"], names[6] = _w(*state_shape), "c0"
    if kw.pop("peephole", False):
        inits["P"], names[7] = _w(dirs, 3 * hidden), "P"
    if kw.pop("lens", False):
        inits["L"], names[4] = np.full(1, steps, dtype=np.int32), "L"
    while names[-1] == "":
        names.pop()
    outs = [o if o in outputs else "" for o in ("Y", "Y_h", "Y_c")]
    while outs[-1] == "":
        outs.pop()
    node = helper.make_node("LSTM", names, outs, hidden_size=hidden, **kw)
    shape = [1, steps, feats] if layout else [steps, 1, feats]
    return Case([node], shape, inits, opset=14, outputs=outputs)


LSTM = {
    "forward_Y": _lstm_case(),
    "forward_all_outputs": _lstm_case(outputs=("Y", "Y_h", "Y_c"), init=True),
    "no_bias_Yh_only": _lstm_case(bias=False, outputs=("Y_h",)),
    "reverse": _lstm_case(direction="reverse", outputs=("Y", "Y_c"), init=True),
    "bidirectional": _lstm_case(dirs=2, direction="bidirectional", outputs=("Y", "Y_h", "Y_c")),
    "peephole": _lstm_case(peephole=True, init=True, outputs=("Y", "Y_c")),
    "full_sequence_lens": _lstm_case(lens=True),
}


@pytest.mark.parametrize("name", sorted(LSTM))
def test_lstm_matches_onnxruntime(tmp_path: Path, name: str) -> None:
    g = compare_with_ort(tmp_path, LSTM[name])
    assert "LSTM" not in g.op_counts() and {"Sigmoid", "Tanh", "Mul"} <= set(g.op_counts())


def test_lstm_layout1_equals_transposed_layout0(tmp_path: Path) -> None:
    """onnxruntime has no layout=1 LSTM: compare with the layout-0 model plus transposes."""
    case = _lstm_case(layout=1, init=True, outputs=("Y", "Y_h"))
    ours = _graph(tmp_path, case)
    lstm = case.nodes[0]
    ref_nodes = [
        N("Transpose", ["x"], "xs", perm=[1, 0, 2]),
        N("Transpose", ["h0"], "h0s", perm=[1, 0, 2]),
        N("Transpose", ["c0"], "c0s", perm=[1, 0, 2]),
        helper.make_node(
            "LSTM", ["xs", "W", "R", "B", "", "h0s", "c0s"], ["Ys", "Yhs"], hidden_size=5
        ),
        N("Transpose", ["Ys"], "Y", perm=[2, 0, 1, 3]),
        N("Transpose", ["Yhs"], "Y_h", perm=[1, 0, 2]),
    ]
    assert lstm.input[5] == "h0"
    ref = Case(ref_nodes, case.shape, case.inits, opset=14, outputs=("Y", "Y_h"))
    path = tmp_path / "ref.onnx"
    onnx.save(make_model(ref), path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = RNG.standard_normal((2, *ours.inputs[0].shape)).astype(np.float32)
    for k, name in enumerate(("Y", "Y_h")):
        want = np.stack([sess.run(None, {"x": xi})[k] for xi in x])
        got = evaluate(ours, torch.from_numpy(x).double(), output=name).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_lstm_variable_initial_state_and_unused_outputs(tmp_path: Path) -> None:
    nodes = [
        N("Slice", ["x", "s", "e", "a"], "h0"),
        helper.make_node("LSTM", ["x", "W", "R", "", "", "h0"], ["", "Y_h"], hidden_size=3),
    ]
    inits = {"W": _w(1, 12, 3), "R": _w(1, 12, 3), "s": _i64(0), "e": _i64(1), "a": _i64(0)}
    g = compare_with_ort(tmp_path, Case(nodes, [4, 1, 3], inits, opset=14, outputs=("Y_h",)))
    assert "Concat" not in g.op_counts() and [o.name for o in g.outputs] == ["Y_h"]


# --------------------------------------------------------------- evaluate API
def _graph(tmp_path: Path, case: Case) -> Graph:
    path = tmp_path / "api.onnx"
    onnx.save(make_model(case), path)
    return load_onnx(path)


ML4ACOPF_LIKE = Case(
    [
        N("Transpose", ["x"], "t", perm=[1, 0]),
        N("MatMul", ["C", "t"], "m"),
        N("Transpose", ["m"], "mt", perm=[1, 0]),
        N("Sin", ["x"], "s"),
        N("Gather", ["s", "i"], "g", axis=1),
        N("Mul", ["mt", "g"]),
    ],
    [1, 4],
    {"C": _w(3, 4), "i": _i64(0, 2, 3)},
)


def test_batched_equals_per_sample(tmp_path: Path) -> None:
    g = _graph(tmp_path, ML4ACOPF_LIKE)
    x = torch.randn(6, 1, 4, dtype=torch.float64)
    batched = evaluate(g, x)
    single = torch.cat([evaluate(g, x[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-14)
    xs = x.numpy()[:, 0, :]
    c = ML4ACOPF_LIKE.inits["C"].astype(np.float64)
    expected = (c @ xs.T).T * np.sin(xs)[:, [0, 2, 3]]
    np.testing.assert_allclose(batched.numpy()[:, 0, :], expected, rtol=1e-12)


def test_dtypes_devices_and_constants(tmp_path: Path) -> None:
    g = _graph(tmp_path, ML4ACOPF_LIKE)
    x = torch.randn(2, 1, 4)
    assert evaluate(g, x).dtype == torch.float32
    assert evaluate(g, x.double()).dtype == torch.float64
    consts = constant_tensors(g, device="cpu", dtype=torch.float64)
    int_consts = [t for t in consts.values() if not t.is_floating_point()]
    assert int_consts and all(t.dtype == torch.int64 for t in int_consts)
    torch.testing.assert_close(evaluate(g, x.double(), constants=consts), evaluate(g, x.double()))
    if torch.cuda.is_available():
        xc = x.double().cuda()
        torch.testing.assert_close(evaluate(g, xc).cpu(), evaluate(g, x.double()))


def test_gradients_match_finite_differences(tmp_path: Path) -> None:
    g = _graph(tmp_path, ML4ACOPF_LIKE)
    x = torch.randn(3, 1, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: evaluate(g, t), (x,))


def test_evaluate_all_and_named_outputs(tmp_path: Path) -> None:
    g = _graph(tmp_path, ML4ACOPF_LIKE)
    x = torch.randn(2, 1, 4, dtype=torch.float64)
    values = evaluate_all(g, x)
    assert set(values) == {"x"} | {n.name for n in g.nodes}
    for node in g.nodes:
        assert tuple(values[node.name].shape) == (2, *node.shape)
        torch.testing.assert_close(evaluate(g, x, output=node.name), values[node.name])
    with pytest.raises(KeyError, match="no value named"):
        evaluate(g, x, output="missing")
    with pytest.raises(ValueError, match="one leading batch dim"):
        evaluate(g, torch.randn(1, 4))
    with pytest.raises(ValueError, match="floating-point"):
        evaluate(g, torch.ones(2, 1, 4, dtype=torch.int64))


def test_forward_table_covers_canonical_ops() -> None:
    assert set(SUPPORTED_OPS) <= set(FORWARD)


def test_forward_functions_are_differentiable_per_op() -> None:
    """vjp through a constant-weight op gives the transposed linear map (bounds reuse this)."""
    node = Node("y", "Linear", ("x", "W"), freeze_attrs({}), (3,))
    w = torch.randn(4, 3, dtype=torch.float64)
    x = torch.randn(2, 4, dtype=torch.float64)
    _, vjp = torch.func.vjp(lambda t: FORWARD["Linear"](node, [t, w]), x)
    cot = torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(vjp(cot)[0], cot @ w.T)


def test_constant_output_is_broadcast_over_batch() -> None:
    g = Graph(
        (ValueInfo("x", (2,)),),
        (ValueInfo("c", (2,)),),
        (),
        {"c": np.array([1.0, 2.0], dtype=np.float32)},
    ).validate()
    out = evaluate(g, torch.zeros(3, 2, dtype=torch.float64))
    assert out.shape == (3, 2) and out.dtype == torch.float64 and float(out[2, 1]) == 2.0
