"""Counterexample check with the VNN-COMP scorer's rules (REFERENCE §4), independent of the engine.

A results file's witness is accepted when:

1. it parses as ``(X_i v)`` / ``(Y_j w)`` pairs and X has the model's input size;
2. onnxruntime on X (reshaped to the input shape, C order) gives ``y`` with
   ``||y - Y||_inf / ||Y||_inf <= 1e-3`` (RTOL);
3. X lies in one of the spec's input boxes within ``1e-4``, and for that box some case's
   rows ``C @ Y <= d + 1e-4`` all hold.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

import vnnlib

__all__ = ["ATOL", "RTOL", "WitnessCheck", "check_witness"]

RTOL = 1e-3
ATOL = 1e-4


@dataclass(frozen=True, slots=True)
class WitnessCheck:
    """Outcome: ``valid`` and a one-line ``reason``."""

    valid: bool
    reason: str


def _run_onnx(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    data: str | bytes = str(onnx_path)
    if onnx_path.suffix == ".gz":
        data = gzip.decompress(onnx_path.read_bytes())
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    info = sess.get_inputs()[0]
    shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in info.shape)
    dtype = np.float64 if info.type == "tensor(double)" else np.float32
    if int(np.prod(shape)) != x.size:
        raise ValueError(f"wrong_shape: X has {x.size} values, the input {shape}")
    out = sess.run(None, {info.name: x.astype(dtype).reshape(shape)})[0]
    return np.asarray(out, dtype=np.float64).reshape(-1)


def check_witness(onnx_path: str | Path, spec_path: str | Path, text: str) -> WitnessCheck:
    """Check a ``sat`` witness (the results-file text after the first line)."""
    try:
        x, y = vnnlib.parse_counterexample(text, "<witness>")
    except vnnlib.VnnlibError as exc:
        return WitnessCheck(False, f"unparsable witness: {exc}")
    try:
        y_ort = _run_onnx(Path(onnx_path), x)
    except ValueError as exc:
        return WitnessCheck(False, str(exc))
    if y_ort.size != y.size:
        return WitnessCheck(False, f"Y has {y.size} values, the model {y_ort.size}")
    scale = max(float(np.max(np.abs(y))), 1e-30)
    rel = float(np.max(np.abs(y_ort - y))) / scale
    if rel > RTOL:
        return WitnessCheck(False, f"onnxruntime output differs from Y (rel {rel:.2e})")
    spec = vnnlib.load_vnnlib(spec_path, n_inputs=x.size, n_outputs=y.size)
    for case in spec.cases:
        in_box = np.all(x >= case.lower - ATOL) and np.all(x <= case.upper + ATOL)
        if in_box and np.all(np.asarray(case.C) @ y <= np.asarray(case.d) + ATOL):
            return WitnessCheck(True, f"violates the spec (rel output error {rel:.1e})")
    return WitnessCheck(False, "X outside every box or no case violated")
