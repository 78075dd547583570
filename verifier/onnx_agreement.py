"""Model check: does our imported graph compute what onnxruntime computes?

:func:`check_model` loads an ONNX file with ``models.load_onnx``, evaluates our
graph and onnxruntime (running the *original* file) on the same points and
reports the worst errors together with a summary of the graph.

Which dtypes are compared: the points are drawn in float64 and rounded to the
model's input dtype (float32 for almost every model), so both sides see
identical inputs. Ours runs in float64, onnxruntime in the model's dtype; the
headline errors (``max_abs_err``, ``max_rel_err``, ``passed``) compare those two,
which is the honest comparison (our float64 is at least as accurate as the
float32 reference). When that comparison exceeds the tolerance, the report
also gives ours in float32 against onnxruntime, and ours in float64 against
onnxruntime running a float64 copy of the model (when onnxruntime has float64
kernels for all its ops): a tiny error there shows that the gap is the float32
rounding of the reference itself (for example cancellation in ml4acopf).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from models import Graph, evaluate, load_onnx
from models.ops import ELEMENTWISE_NONLINEAR

__all__ = ["CheckReport", "check_model", "float64_model", "nonlinear_ops"]

_ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(_ort_state, name)
    for name in ("Fail", "InvalidArgument", "InvalidGraph", "NotImplemented", "RuntimeException")
    if hasattr(_ort_state, name)
)
_STRUCTURED_NONLINEAR = frozenset({"Softmax", "LayerNormalization", "MaxPool"})
_NP_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


@dataclass(frozen=True)
class CheckReport:
    """Result of :func:`check_model`.

    Attributes:
        model: the ONNX file.
        input_name, input_shape: the graph input (batch fixed to 1).
        output_name, output_shape: the first graph output.
        op_counts: canonical op -> number of nodes in our graph.
        nonlinear_ops: nonlinear ops present (Mul/MatMul only when both operands vary).
        max_abs_err: max ``|ours - ort|`` (ours float64, onnxruntime in the model's dtype).
        max_rel_err: max ``|ours - ort| / max(1, |ort|)`` (same dtypes).
        points: number of points compared.
        tolerance: the threshold on ``max_rel_err``.
        passed: ``max_rel_err <= tolerance``, or, when onnxruntime's float32 result is
            itself further off, ours within tolerance of onnxruntime on the float64 copy.
        max_rel_err_float32: ours in float32 vs onnxruntime (only when not passed).
        max_rel_err_float64_reference: ours in float64 vs onnxruntime on a float64 copy
            of the model (only when not passed and onnxruntime can run that copy).
        load_seconds: time taken by ``load_onnx``.
    """

    model: str
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    op_counts: Mapping[str, int]
    nonlinear_ops: tuple[str, ...]
    max_abs_err: float
    max_rel_err: float
    points: int
    tolerance: float
    passed: bool
    max_rel_err_float32: float | None = None
    max_rel_err_float64_reference: float | None = None
    load_seconds: float = 0.0

    def summary(self) -> str:
        """One line: model, verdict and errors."""
        extra = ""
        if self.max_rel_err_float32 is not None:
            extra += f", ours-f32 rel {self.max_rel_err_float32:.2e}"
        if self.max_rel_err_float64_reference is not None:
            extra += f", vs f64 reference {self.max_rel_err_float64_reference:.2e}"
        verdict = "ok" if self.passed else "MISMATCH"
        return (
            f"{self.model}: {verdict} max rel {self.max_rel_err:.2e} abs {self.max_abs_err:.2e} "
            f"on {self.points} points{extra}"
        )


def nonlinear_ops(graph: Graph) -> tuple[str, ...]:
    """Sorted nonlinear ops of ``graph`` (Mul/MatMul only with two varying operands)."""
    found = set()
    for node in graph.nodes:
        if node.op in ELEMENTWISE_NONLINEAR or node.op in _STRUCTURED_NONLINEAR:
            found.add(node.op)
        elif node.op in ("Mul", "MatMul") and not any(graph.is_constant(i) for i in node.inputs):
            found.add(node.op)
    return tuple(sorted(found))


def _points(
    shape: Sequence[int], box: tuple[np.ndarray, np.ndarray] | None, n: int, seed: int
) -> np.ndarray:
    """``[n, *shape]`` float64 points: uniform in ``box`` or standard normal."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if box is None:
        return rng.standard_normal((n, *shape))
    lower = np.asarray(box[0], dtype=np.float64).reshape(-1)
    upper = np.asarray(box[1], dtype=np.float64).reshape(-1)
    if lower.size != size or upper.size != size:
        raise ValueError(f"box has {lower.size}/{upper.size} values, the input has {size}")
    if np.any(lower > upper):
        raise ValueError("box lower bound exceeds its upper bound")
    return (lower + (upper - lower) * rng.random((n, size))).reshape(n, *shape)


def _session(model: bytes | str) -> ort.InferenceSession:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def _input_dtype(sess: ort.InferenceSession) -> type[np.floating]:
    return _NP_DTYPES.get(sess.get_inputs()[0].type, np.float32)


def _ort_outputs(
    sess: ort.InferenceSession, points: np.ndarray, shape: Sequence[int]
) -> np.ndarray:
    """First output of onnxruntime on every point (batched when the batch is symbolic)."""
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    dtype = _input_dtype(sess)
    batch = inp.shape[0] if inp.shape else None
    if isinstance(batch, str) and out.shape and out.shape[0] == batch:
        x = points.astype(dtype).reshape(len(points), *tuple(shape)[1:])
        y = sess.run([out.name], {inp.name: x})[0]
        return y.reshape(len(points), 1, *y.shape[1:])
    return np.stack([sess.run([out.name], {inp.name: p.astype(dtype)})[0] for p in points])


def _errors(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    ref = ref.astype(np.float64).reshape(ours.shape)
    diff = np.abs(ours.astype(np.float64) - ref)
    return float(diff.max(initial=0.0)), float(
        (diff / np.maximum(1.0, np.abs(ref))).max(initial=0.0)
    )


def float64_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` computing in float64 (float tensors, casts and types converted)."""
    m = onnx.ModelProto.FromString(model.SerializeToString())
    g = m.graph
    for k, init in enumerate(g.initializer):
        if init.data_type == onnx.TensorProto.FLOAT:
            arr = numpy_helper.to_array(init).astype(np.float64)
            g.initializer[k].CopyFrom(numpy_helper.from_array(arr, init.name))
    for node in g.node:
        for attr in node.attribute:
            if (
                attr.type == onnx.AttributeProto.TENSOR
                and attr.t.data_type == onnx.TensorProto.FLOAT
            ):
                attr.t.CopyFrom(
                    numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float64))
                )
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == onnx.TensorProto.FLOAT:
                attr.i = onnx.TensorProto.DOUBLE
            elif node.op_type == "Constant" and attr.name in ("value_float", "value_floats"):
                value = np.asarray(onnx.helper.get_attribute_value(attr), dtype=np.float64)
                attr.CopyFrom(onnx.helper.make_attribute("value", numpy_helper.from_array(value)))
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    return m


def _reference64_error(path: Path, points: np.ndarray, ours: np.ndarray, shape) -> float | None:
    model64 = float64_model(onnx.load(str(path))).SerializeToString()
    try:
        ref = _ort_outputs(_session(model64), points, shape)
    except _ORT_ERRORS:
        return None
    return _errors(ours, ref)[1]


def check_model(
    onnx_path: str | Path,
    *,
    box: tuple[np.ndarray, np.ndarray] | None = None,
    n_points: int = 100,
    seed: int = 0,
    tolerance: float = 1e-5,
) -> CheckReport:
    """Compare our import of ``onnx_path`` with onnxruntime on ``n_points`` points.

    Args:
        onnx_path: the model file.
        box: optional ``(lower, upper)`` flat arrays (e.g. a vnnlib case's input box);
            points are uniform in it, else standard normal.
        n_points: number of points.
        seed: seed of the point sampler.
        tolerance: pass threshold on ``max_rel_err``.

    Returns:
        The report; ours runs in float64 and onnxruntime in the model's input dtype
        (see the module docstring for the extra comparisons made on failure).

    Raises:
        models.ModelLoadError: the model cannot be imported.
        ValueError: ``box`` does not match the input size.
    """
    path = Path(onnx_path)
    start = time.perf_counter()
    graph = load_onnx(path)
    load_seconds = time.perf_counter() - start
    shape = graph.inputs[0].shape
    sess = _session(str(path))
    points = _points(shape, box, n_points, seed).astype(_input_dtype(sess)).astype(np.float64)
    ref = _ort_outputs(sess, points, shape)
    ours = evaluate(graph, torch.from_numpy(points)).numpy()
    abs_err, rel_err = _errors(ours, ref)
    rel32 = ref64 = None
    if rel_err > tolerance:
        ours32 = evaluate(graph, torch.from_numpy(points).float()).numpy()
        rel32 = _errors(ours32, ref)[1]
        ref64 = _reference64_error(path, points, ours, shape)
    return CheckReport(
        model=str(path),
        input_name=graph.inputs[0].name,
        input_shape=shape,
        output_name=graph.outputs[0].name,
        output_shape=graph.outputs[0].shape,
        op_counts=graph.op_counts(),
        nonlinear_ops=nonlinear_ops(graph),
        max_abs_err=abs_err,
        max_rel_err=rel_err,
        points=n_points,
        tolerance=tolerance,
        # onnxruntime's own float32 rounding can exceed the tolerance (power-flow
        # residuals cancel large terms); then the float64 copy of the model decides.
        passed=rel_err <= tolerance or (ref64 is not None and ref64 <= tolerance),
        max_rel_err_float32=rel32,
        max_rel_err_float64_reference=ref64,
        load_seconds=load_seconds,
    )
