"""Rewrite passes: each keeps outputs identical (up to rounding) and does its rewrite.

Graphs are built directly in our IR with ``GraphBuilder`` (shapes traced), except
for the GELU patterns, which are exported-style ONNX models checked against
onnxruntime as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from models import evaluate, load_onnx
from models.builder import GraphBuilder
from models.graph import Graph
from models.passes import (
    DEFAULT_PASSES,
    eliminate_dead_nodes,
    fold_affine_into_next_linear,
    fold_bias,
    fold_scale_into_weights,
    fuse_gelu,
    matmul_transposed_to_linear,
    merge_reshapes,
    remove_identity_ops,
    run_passes,
    sink_transposes,
)

RNG = np.random.default_rng(7)


def _w(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def assert_same_outputs(before: Graph, after: Graph, rtol: float = 1e-12) -> None:
    x = torch.randn(5, *before.inputs[0].shape, dtype=torch.float64)
    for out_b, out_a in zip(before.outputs, after.outputs, strict=True):
        yb = evaluate(before, x, output=out_b.name)
        ya = evaluate(after, x, output=out_a.name)
        assert ya.shape == yb.shape
        err = ((ya - yb).abs() / yb.abs().clamp(min=1.0)).max().item()
        assert err <= rtol, f"{out_b.name}: {err:.3e}"


def _apply(graph: Graph, p: Callable[[Graph], Graph]) -> Graph:
    after = p(graph).validate()
    assert_same_outputs(graph, after)
    return after


# ------------------------------------------------------------ folding passes
def test_fold_bias_into_linear_and_conv() -> None:
    b = GraphBuilder("t")
    x = b.add_input("x", (1, 2, 5, 5))
    c = b.add_node("Conv", [x, b.add_constant(_w(3, 2, 3, 3), name="W")], {"pads": (1, 1, 1, 1)})
    c = b.add_node("Add", [c, b.add_constant(_w(3, 1, 1), name="cb")], name="conv_b")
    f = b.add_node("Reshape", [c], {"shape": (1, 75)})
    y = b.add_node("Linear", [f, b.add_constant(_w(75, 4), name="L")])
    y = b.add_node("Add", [b.add_constant(_w(1, 4), name="lb"), y], name="out")
    g = _apply(b.build([y]), fold_bias)
    assert g.op_counts() == {"Conv": 1, "Linear": 1, "Reshape": 1}
    assert [n.name for n in g.nodes if n.op != "Reshape"] == ["conv_b", "out"]


def test_fold_bias_skips_non_channel_constants() -> None:
    b = GraphBuilder("t")
    x = b.add_input("x", (2, 4))
    y = b.add_node("Linear", [x, b.add_constant(_w(4, 3), name="W")])
    y = b.add_node("Add", [y, b.add_constant(_w(2, 3), name="rows")])
    g = _apply(b.build([y]), fold_bias)
    assert g.op_counts() == {"Add": 1, "Linear": 1}


@pytest.mark.parametrize("op", ["Linear", "Conv", "ConvTranspose"])
def test_fold_scale_into_weights(op: str) -> None:
    b = GraphBuilder("t")
    if op == "Linear":
        x = b.add_input("x", (1, 5))
        y = b.add_node("Linear", [x, b.add_constant(_w(5, 4)), b.add_constant(_w(4))])
        scale = _w(4)
    elif op == "Conv":
        x = b.add_input("x", (1, 4, 4, 4))
        y = b.add_node("Conv", [x, b.add_constant(_w(6, 2, 3, 3))], {"group": 2})
        scale = _w(1, 6, 1, 1)
    else:
        x = b.add_input("x", (1, 4, 3, 3))
        attrs = {"group": 2, "strides": (2, 2)}
        y = b.add_node(
            "ConvTranspose", [x, b.add_constant(_w(4, 3, 2, 2)), b.add_constant(_w(6))], attrs
        )
        scale = _w(6, 1, 1)
    y = b.add_node("Mul", [y, b.add_constant(scale)])
    y = b.add_node("Add", [y, b.add_constant(_w(*scale.shape))])
    g = _apply(_apply(b.build([y]), fold_scale_into_weights), fold_bias)
    assert g.op_counts() == {op: 1}


def test_fold_affine_into_all_reading_linears() -> None:
    b = GraphBuilder("t")
    x = b.add_input("x", (1, 3, 4))
    m = b.add_node("Mul", [x, b.add_constant(_w(4))])
    a = b.add_node("Add", [m, b.add_constant(_w(1, 1, 4))])
    q = b.add_node("Linear", [a, b.add_constant(_w(4, 2)), b.add_constant(_w(2))])
    k = b.add_node("Linear", [a, b.add_constant(_w(4, 5))])
    y = b.add_node("Concat", [q, k], {"axis": 2})
    g = _apply(b.build([y]), fold_affine_into_next_linear)
    assert g.op_counts() == {"Concat": 1, "Linear": 2}


def test_fold_affine_keeps_values_read_elsewhere() -> None:
    b = GraphBuilder("t")
    x = b.add_input("x", (1, 4))
    a = b.add_node("Add", [x, b.add_constant(_w(4))])
    q = b.add_node("Linear", [a, b.add_constant(_w(4, 4))])
    y = b.add_node("Add", [q, a])
    g = _apply(b.build([y]), fold_affine_into_next_linear)
    assert g.op_counts() == {"Add": 2, "Linear": 1}


def test_remove_identities_and_merge_reshapes() -> None:
    b = GraphBuilder("t")
    x = b.add_input("x", (1, 2, 3))
    z = b.add_node("Add", [x, b.add_constant(np.zeros(3, np.float32))])
    o = b.add_node("Mul", [b.add_constant(np.ones((1, 1), np.float32)), z])
    r = b.add_node("Reshape", [o], {"shape": (1, 6)})
    r = b.add_node("Reshape", [r], {"shape": (6,)})
    r = b.add_node("Reshape", [r], {"shape": (6,)})
    y = b.add_node("Relu", [r])
    g = _apply(_apply(b.build([y]), remove_identity_ops), merge_reshapes)
    assert g.op_counts() == {"Relu": 1, "Reshape": 1}
    assert g.nodes[0].inputs == ("x",)


def test_transpose_passes() -> None:
    b = GraphBuilder("t")
    x = b.add_input("x", (1, 5, 4))
    t = b.add_node("Transpose", [x], {"perm": (0, 2, 1)})
    t = b.add_node("Mul", [t, b.add_constant(_w(4, 1))])
    t = b.add_node("Add", [b.add_constant(_w(4, 1)), t])
    t = b.add_node("Transpose", [t], {"perm": (0, 2, 1)})
    tt = b.add_node("Transpose", [t], {"perm": (0, 2, 1)})
    mm = b.add_node("MatMul", [b.add_constant(_w(3, 4)), tt])
    y = b.add_node("Transpose", [mm], {"perm": (0, 2, 1)})
    g = _apply(_apply(b.build([y]), sink_transposes), matmul_transposed_to_linear)
    g = _apply(g, fold_affine_into_next_linear)
    assert g.op_counts() == {"Linear": 1}


def test_dead_nodes_are_dropped() -> None:
    b = GraphBuilder("t")
    x = b.add_input("x", (3,))
    b.add_node("Sin", [x])
    y = b.add_node("Relu", [x])
    g = b.build([y])
    g = g.replace(nodes=(*g.nodes[:0], *b.nodes), constants={"unused": np.ones(1)})
    after = _apply(g, eliminate_dead_nodes)
    assert after.op_counts() == {"Relu": 1} and not after.constants


def test_default_passes_are_idempotent(tmp_path: Path) -> None:
    b = GraphBuilder("t")
    x = b.add_input("x", (1, 4))
    y = b.add_node("Linear", [x, b.add_constant(_w(4, 4))])
    y = b.add_node("Mul", [y, b.add_constant(_w(4))])
    y = b.add_node("Add", [y, b.add_constant(_w(4))])
    g = run_passes(b.build([y]), DEFAULT_PASSES)
    again = run_passes(g, DEFAULT_PASSES)
    assert again.op_counts() == g.op_counts() == {"Linear": 1}


# ------------------------------------------------------------------ GELU
SQRT2 = np.float32(math.sqrt(2.0))
C_TANH = np.float32(math.sqrt(2.0 / math.pi))


def _node(op: str, inputs: list[str], out: str) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [out])


def _erf_nodes(grouping: str, divide: bool, swap: bool) -> list[onnx.NodeProto]:
    scaled = _node("Div", ["x", "sqrt2"], "t") if divide else _node("Mul", ["inv_sqrt2", "x"], "t")
    core = [
        scaled,
        _node("Erf", ["t"], "e"),
        _node("Add", ["one", "e"] if swap else ["e", "one"], "a"),
    ]
    tails = {
        "xa_half": [
            _node("Mul", ["x", "a"] if swap else ["a", "x"], "m"),
            _node("Mul", ["m", "half"], "y"),
        ],
        "xhalf_a": [
            _node("Mul", ["half", "x"] if swap else ["x", "half"], "h"),
            _node("Mul", ["h", "a"], "y"),
        ],
        "ahalf_x": [
            _node("Mul", ["a", "half"], "h"),
            _node("Mul", ["x", "h"] if swap else ["h", "x"], "y"),
        ],
    }
    return core + tails[grouping]


def _tanh_nodes(cube: str) -> list[onnx.NodeProto]:
    if cube == "pow":
        pre = [_node("Pow", ["x", "three"], "p")]
    else:
        pre = [_node("Mul", ["x", "x"], "sq"), _node("Mul", ["sq", "x"], "p")]
    return pre + [
        _node("Mul", ["p", "k"], "q"),
        _node("Add", ["x", "q"], "r"),
        _node("Mul", ["c", "r"], "s"),
        _node("Tanh", ["s"], "th"),
        _node("Add", ["th", "one"], "a"),
        _node("Mul", ["x", "half"], "h"),
        _node("Mul", ["h", "a"], "y"),
    ]


GELU_CONSTS = {
    "sqrt2": SQRT2,
    "inv_sqrt2": np.float32(1.0) / SQRT2,
    "one": np.float32(1.0),
    "half": np.float32(0.5),
    "three": np.float32(3.0),
    "k": np.float32(0.044715),
    "c": C_TANH,
}


def _gelu_graph(tmp_path: Path, nodes: list[onnx.NodeProto], outputs=("y",)) -> tuple[Graph, Path]:
    used = {i for n in nodes for i in n.input}
    inits = [numpy_helper.from_array(np.array(v), k) for k, v in GELU_CONSTS.items() if k in used]
    graph = helper.make_graph(
        nodes,
        "gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [2, 6]) for o in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "gelu.onnx"
    onnx.save(model, path)
    g = load_onnx(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = (RNG.standard_normal((3, 2, 6)) * 3).astype(np.float32)
    for k, out in enumerate(g.outputs):
        want = np.stack([sess.run(None, {"x": xi})[k] for xi in x])
        got = evaluate(g, torch.from_numpy(x).double(), output=out.name).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    return g, path


@pytest.mark.parametrize("grouping", ["xa_half", "xhalf_a", "ahalf_x"])
@pytest.mark.parametrize("divide", [True, False])
@pytest.mark.parametrize("swap", [False, True])
def test_erf_gelu_patterns_fuse(tmp_path: Path, grouping: str, divide: bool, swap: bool) -> None:
    g, _ = _gelu_graph(tmp_path, _erf_nodes(grouping, divide, swap))
    assert g.op_counts() == {"Gelu": 1}
    assert g.nodes[0].attrs["approximate"] == "none" and g.nodes[0].name == "y"


@pytest.mark.parametrize("cube", ["pow", "mul"])
def test_tanh_gelu_patterns_fuse(tmp_path: Path, cube: str) -> None:
    g, _ = _gelu_graph(tmp_path, _tanh_nodes(cube))
    assert g.op_counts() == {"Gelu": 1} and g.nodes[0].attrs["approximate"] == "tanh"


def test_gelu_not_fused_when_intermediate_is_used(tmp_path: Path) -> None:
    nodes = _erf_nodes("xa_half", divide=True, swap=False) + [_node("Relu", ["e"], "z")]
    g, path = _gelu_graph(tmp_path, nodes, outputs=("y", "z"))
    assert "Gelu" not in g.op_counts() and "Erf" in g.op_counts()
    unfused = load_onnx(path, fold_constants=False)
    assert_same_outputs(unfused, g)


def test_gelu_wrong_constant_not_fused(tmp_path: Path) -> None:
    GELU_CONSTS["half"] = np.float32(0.4)
    try:
        g, _ = _gelu_graph(tmp_path, _erf_nodes("xa_half", divide=True, swap=False))
    finally:
        GELU_CONSTS["half"] = np.float32(0.5)
    assert "Gelu" not in g.op_counts()


def test_fuse_gelu_pass_on_ir_graph(tmp_path: Path) -> None:
    _, path = _gelu_graph(tmp_path, _tanh_nodes("mul"))
    raw = load_onnx(path, fold_constants=False)
    assert "Tanh" in raw.op_counts()
    fused = fuse_gelu(raw).validate()
    assert fused.op_counts() == {"Gelu": 1}
    assert_same_outputs(raw, fused, rtol=1e-6)  # the pattern's float32 constants differ


# ---------------------------------------------------------- shared models
@pytest.mark.parametrize(
    "rel",
    [
        "vit_2023/onnx/pgd_2_3_16.onnx",
        "ml4acopf_2023/onnx/14_ieee_ml4acopf.onnx",
        "eran_2021/nets/ffnnSIGMOID__Point_6x200.onnx",
    ],
)
def test_default_passes_keep_shared_model_outputs(benchmarks_dir: Path, rel: str) -> None:
    raw = load_onnx(benchmarks_dir / rel, fold_constants=False)
    optimized = load_onnx(benchmarks_dir / rel)
    assert len(optimized) < len(raw)
    assert_same_outputs(raw, optimized)
