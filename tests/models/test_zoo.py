"""Tests of models.zoo: deterministic builds, ONNX exports, shipped files and specs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.zoo import (
    ZOO,
    UnknownNetworkError,
    build,
    data_dir,
    export,
    export_all,
    make_spec,
    residual_spec,
    robustness_spec,
    zoo_model_path,
    zoo_spec_path,
)
from models.zoo.export import INPUT_NAME, OPSET, OUTPUT_NAME, main, op_types
from models.zoo.networks import acopf_nominal_state, power_injections
from models.zoo.specs import format_number

NAMES = list(ZOO)
ROBUSTNESS = [n for n, e in ZOO.items() if e.spec_kind == "robustness"]
ATOL = 1e-5

_BOUND = re.compile(r"\(assert \((<=|>=) X_(\d+) ([^)\s]+)\)\)")
_DECL = re.compile(r"\(declare-const ([XY])_(\d+) Real\)")
_ROBUST_CASE = re.compile(r"\(and \(>= Y_(\d+) Y_(\d+)\)\)")
_RESIDUAL_CASE = re.compile(r"\(and \((>=|<=) Y_(\d+) ([^)\s]+)\)\)")


# --------------------------------------------------------------------------- helpers
def _session(path: Path) -> ort.InferenceSession:
    """A CPU onnxruntime session for ``path``."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """The session's output for ``x`` (cast to float32)."""
    return session.run([OUTPUT_NAME], {INPUT_NAME: x.astype(np.float32)})[0]


def _torch(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """The torch module's output for ``x`` (cast to float32)."""
    with torch.no_grad():
        return model(torch.from_numpy(x.astype(np.float32))).numpy()


def _inputs(name: str, k: int = 4) -> list[np.ndarray]:
    """``k`` seeded inputs in the network's region of interest."""
    entry = ZOO[name]
    rng = np.random.default_rng(123)
    if entry.spec_kind == "residual":
        state = acopf_nominal_state(entry.input_shape[-1] // 2, seed=entry.seed)
        return [(state + rng.uniform(-0.05, 0.05, state.shape)).reshape(entry.input_shape)] * k
    lo, hi = entry.input_range
    return [rng.uniform(lo, hi, entry.input_shape) for _ in range(k)]


def _parse_box(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper input bounds of a spec written by models.zoo.specs."""
    lower: dict[int, float] = {}
    upper: dict[int, float] = {}
    for rel, idx, value in _BOUND.findall(text):
        (upper if rel == "<=" else lower)[int(idx)] = float(value)
    n = len(upper)
    assert sorted(lower) == sorted(upper) == list(range(n))
    return np.array([lower[i] for i in range(n)]), np.array([upper[i] for i in range(n)])


def _non_constant(model: onnx.ModelProto) -> set[str]:
    """Names of values that are neither initializers nor Constant-node outputs."""
    constant = {i.name for i in model.graph.initializer}
    constant |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    values = {i.name for i in model.graph.input}
    values |= {o for n in model.graph.node for o in n.output}
    return values - constant


def _bilinear(model: onnx.ModelProto, op: str) -> list[onnx.NodeProto]:
    """Nodes of type ``op`` whose first two inputs are both non-constant."""
    live = _non_constant(model)
    return [n for n in model.graph.node if n.op_type == op and set(n.input[:2]) <= live]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every zoo network exported once (with its spec) into a temporary directory."""
    paths = export_all(tmp_path_factory.mktemp("zoo"))
    return {p.stem: p for p in paths}


@pytest.fixture(scope="module")
def protos(exported: dict[str, Path]) -> dict[str, onnx.ModelProto]:
    """The session's exports loaded as ONNX protos."""
    return {name: onnx.load(path) for name, path in exported.items()}


# --------------------------------------------------------------------------- building
@pytest.mark.parametrize("name", NAMES)
def test_build_is_deterministic_and_leaves_global_rng(name: str) -> None:
    state = torch.get_rng_state()
    first, second = build(name), build(name)
    assert torch.equal(state, torch.get_rng_state())
    assert not first.training
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_unknown_name_lists_available() -> None:
    with pytest.raises(UnknownNetworkError, match="mlp_relu"):
        build("resnet152")
    with pytest.raises(KeyError):
        zoo_model_path("nope")


def test_paths_point_into_packaged_data_dir() -> None:
    assert data_dir() == Path(__file__).resolve().parents[2] / "models" / "zoo_data"
    assert zoo_model_path("lstm") == data_dir() / "lstm.onnx"
    assert zoo_spec_path("vit") == data_dir() / "vit.vnnlib"


def test_power_flow_module_matches_numpy_reference() -> None:
    model = build("acopf")
    g = (model.g_off + torch.diag(model.g_diag)).double().numpy()
    b = (model.b_off + torch.diag(model.b_diag)).double().numpy()
    rng = np.random.default_rng(5)
    states = rng.uniform([0.9] * 4 + [-0.3] * 4, [1.1] * 4 + [0.3] * 4, (16, 8))
    got = _torch(model, states)
    for s, y in zip(states, got, strict=True):
        p, q = power_injections(s[:4], s[4:], g, b)
        ref = np.concatenate([p - model.p_d.numpy(), q - model.q_d.numpy()])
        np.testing.assert_allclose(y, ref, atol=1e-4)
    nominal = acopf_nominal_state(4, seed=ZOO["acopf"].seed)
    assert np.abs(_torch(model, nominal[None])).max() < 1e-4


# --------------------------------------------------------------------------- exports
@pytest.mark.parametrize("name", NAMES)
def test_export_is_valid_and_matches_torch(
    name: str, exported: dict[str, Path], protos: dict[str, onnx.ModelProto]
) -> None:
    entry, proto = ZOO[name], protos[name]
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == [INPUT_NAME]
    assert [o.name for o in proto.graph.output] == [OUTPUT_NAME]
    assert {o.domain: o.version for o in proto.opset_import}[""] == OPSET
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert tuple(dims) == entry.input_shape
    assert exported[name].stat().st_size < 200_000
    assert not any(n.metadata_props for n in proto.graph.node)
    session, model = _session(exported[name]), build(name)
    for x in _inputs(name):
        y = _run(session, x)
        assert y.shape == (1, entry.n_outputs)
        np.testing.assert_allclose(y, _torch(model, x), atol=ATOL, rtol=ATOL)


def test_reexport_is_byte_identical(exported: dict[str, Path], tmp_path: Path) -> None:
    again = export("lstm", tmp_path, with_spec=False)
    assert again.read_bytes() == exported["lstm"].read_bytes()
    assert not (tmp_path / "lstm.vnnlib").exists()


def test_lstm_exports_lstm_op(protos: dict[str, onnx.ModelProto]) -> None:
    assert "LSTM" in op_types(protos["lstm"])


def test_vit_has_softmax_and_matmul_of_two_variables(protos: dict[str, onnx.ModelProto]) -> None:
    proto = protos["vit"]
    assert {"Softmax", "LayerNormalization", "Erf"} <= set(op_types(proto))
    assert len(_bilinear(proto, "MatMul")) >= 2  # Q K^T and attention @ V


def test_acopf_has_trig_and_products_of_variables(protos: dict[str, onnx.ModelProto]) -> None:
    proto = protos["acopf"]
    assert {"Sin", "Cos", "Pow"} <= set(op_types(proto))
    assert _bilinear(proto, "Mul")


def test_gelu_exports_erf_pattern(protos: dict[str, onnx.ModelProto]) -> None:
    assert "Erf" in op_types(protos["mlp_gelu"])
    assert "Gelu" not in op_types(protos["mlp_gelu"])


# --------------------------------------------------------------------------- shipped files
@pytest.mark.parametrize("name", NAMES)
def test_shipped_model_matches_fresh_export(name: str, exported: dict[str, Path]) -> None:
    shipped = zoo_model_path(name)
    assert shipped.is_file(), f"{shipped} missing: run python -m models.zoo"
    fresh_session, shipped_session = _session(exported[name]), _session(shipped)
    for x in _inputs(name):
        np.testing.assert_allclose(
            _run(shipped_session, x), _run(fresh_session, x), atol=ATOL, rtol=ATOL
        )


@pytest.mark.parametrize("name", NAMES)
def test_shipped_spec_matches_fresh_spec(name: str, exported: dict[str, Path]) -> None:
    shipped = zoo_spec_path(name)
    assert shipped.is_file(), f"{shipped} missing: run python -m models.zoo"
    fresh = exported[name].with_suffix(".vnnlib").read_text()
    assert shipped.read_text() == fresh == make_spec(name)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_spec_declares_inputs_and_outputs(name: str) -> None:
    entry, text = ZOO[name], zoo_spec_path(name).read_text()
    decl = _DECL.findall(text)
    xs = [int(i) for kind, i in decl if kind == "X"]
    ys = [int(i) for kind, i in decl if kind == "Y"]
    assert xs == list(range(math.prod(entry.input_shape)))
    assert ys == list(range(entry.n_outputs))
    lower, upper = _parse_box(text)
    assert lower.size == len(xs) and np.all(lower <= upper)
    assert np.all(upper - lower <= 2 * entry.eps + 1e-9)
    assert not re.search(r"\d[eE][-+]?\d", text)  # positional numbers only


@pytest.mark.parametrize("name", ROBUSTNESS)
def test_shipped_spec_center_is_predicted_as_label(name: str) -> None:
    entry, text = ZOO[name], zoo_spec_path(name).read_text()
    cases = _ROBUST_CASE.findall(text)
    labels = {int(label) for _, label in cases}
    assert len(labels) == 1 and len(cases) == entry.n_outputs - 1
    (label,) = labels
    assert sorted(int(j) for j, _ in cases) == [j for j in range(entry.n_outputs) if j != label]
    lower, upper = _parse_box(text)
    lo, hi = entry.input_range
    assert np.all(lower >= lo) and np.all(upper <= hi)
    center = ((lower + upper) / 2).reshape(entry.input_shape)
    y = _run(_session(zoo_model_path(name)), center)
    assert int(np.argmax(y)) == label


def test_shipped_acopf_spec_holds_at_center() -> None:
    entry, text = ZOO["acopf"], zoo_spec_path("acopf").read_text()
    cases = _RESIDUAL_CASE.findall(text)
    assert len(cases) == 2 * entry.n_outputs
    tol = {int(i): float(v) for rel, i, v in cases if rel == ">="}
    assert all(float(v) == -tol[int(i)] for rel, i, v in cases if rel == "<=")
    lower, upper = _parse_box(text)
    y = _run(_session(zoo_model_path("acopf")), ((lower + upper) / 2)[None])[0]
    assert np.all(np.abs(y) < np.array([tol[i] for i in range(entry.n_outputs)]))


def test_cli_exports_selected_network(
    exported: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path), "--only", "mlp_relu"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp_relu.onnx", "mlp_relu.vnnlib"]
    # a second export in the same session is byte-identical (no paths, times or versions)
    assert (tmp_path / "mlp_relu.onnx").read_bytes() == exported["mlp_relu"].read_bytes()
    assert "mlp_relu" in capsys.readouterr().out


# --------------------------------------------------------------------------- spec text
def test_robustness_spec_clips_and_lists_other_classes() -> None:
    text = robustness_spec(np.array([0.0, 0.5, 1.0]), 2, 3, 0.1, lo=0.0, hi=1.0, comment="c")
    assert text.startswith("; c\n")
    lower, upper = _parse_box(text)
    np.testing.assert_allclose(lower, [0.0, 0.4, 0.9])
    np.testing.assert_allclose(upper, [0.1, 0.6, 1.0])
    assert _ROBUST_CASE.findall(text) == [("0", "2"), ("1", "2")]
    assert text.count("(assert (or") == 1


@pytest.mark.parametrize(
    ("label", "n_classes", "eps"), [(3, 3, 0.1), (-1, 3, 0.1), (0, 1, 0.1), (0, 3, -0.1)]
)
def test_robustness_spec_rejects_bad_arguments(label: int, n_classes: int, eps: float) -> None:
    with pytest.raises(ValueError):
        robustness_spec(np.zeros(2), label, n_classes, eps)


def test_residual_spec_tolerances() -> None:
    text = residual_spec(np.zeros(2), np.ones(2), 0.5, n_outputs=3)
    cases = _RESIDUAL_CASE.findall(text)
    assert len(cases) == 6 and ("<=", "2", "-0.5") in cases
    assert len(_DECL.findall(text)) == 5
    with pytest.raises(ValueError):
        residual_spec(np.zeros(2), np.ones(2), 0.5)
    with pytest.raises(ValueError):
        residual_spec(np.zeros(2), np.ones(2), [0.5, 0.1], n_outputs=3)
    with pytest.raises(ValueError):
        residual_spec(np.zeros(2), np.ones(2), [0.5, 0.0])
    with pytest.raises(ValueError):
        residual_spec(np.ones(2), np.zeros(2), 0.5, n_outputs=1)


def test_format_number_is_positional() -> None:
    assert format_number(1e-7) == "0.0000001"
    assert format_number(-0.0) == "0"
    assert format_number(0.1 + 0.2) == "0.3"
    assert format_number(12345678.5) == "12345678.5"
    with pytest.raises(ValueError):
        format_number(math.inf)


@settings(max_examples=50, deadline=None)
@given(
    x0=st.lists(st.floats(-10, 10), min_size=1, max_size=6),
    eps=st.floats(0, 1),
)
def test_robustness_box_contains_center(x0: list[float], eps: float) -> None:
    center = np.array(x0)
    lower, upper = _parse_box(robustness_spec(center, 0, 2, eps))
    assert np.all(lower <= center + 1e-11) and np.all(center - 1e-11 <= upper)
    np.testing.assert_allclose(upper - lower, 2 * eps, atol=1e-11)
