"""Independent confirmation of counterexamples with onnxruntime.

A ``sat`` answer is only given for a point that onnxruntime, running the *original* ONNX
file, confirms. The check is strictly sound, with no tolerance anywhere:

* the point is clipped to the case's box and cast to the model's input dtype (float32 for
  almost all models), rounding inwards, so the values actually fed to onnxruntime lie in
  the box exactly (checked again in float64 after the cast);
* the violation ``C @ y <= d`` is checked on onnxruntime's outputs (converted exactly to
  float64, products and sums in float64) for every row, without a tolerance.

The VNN-COMP checker accepts ``C @ y <= d + 1e-4`` and boxes widened by ``1e-4``, so every
counterexample confirmed here also passes there; a point that only violates within the
tolerance is reported as not confirmed. The reported ``y`` is onnxruntime's output.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from verifier.result import Counterexample

__all__ = ["OrtCheckError", "OrtChecker", "representable_box"]

log = logging.getLogger(__name__)

_ORT_ERROR_NAMES = (
    "EPFail",
    "Fail",
    "InvalidArgument",
    "InvalidGraph",
    "InvalidProtobuf",
    "NoModel",
    "NoSuchFile",
    "NotFound",
    "NotImplemented",
    "RuntimeException",
)
ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(_ort_state, name) for name in _ORT_ERROR_NAMES if hasattr(_ort_state, name)
)

_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class SpecCaseLike(Protocol):
    """A spec case: box ``lower, upper [n_in]``; violation iff ``C [m, n_out] @ y <= d [m]``."""

    lower: np.ndarray
    upper: np.ndarray
    C: np.ndarray
    d: np.ndarray


class OrtCheckError(RuntimeError):
    """onnxruntime could not load or run the model."""


def representable_box(
    lower: np.ndarray, upper: np.ndarray, dtype: type[np.floating]
) -> tuple[np.ndarray, np.ndarray]:
    """The box ``[lower, upper]`` (float64) rounded *inwards* to values of ``dtype``.

    Every ``dtype`` value ``v`` with ``lo <= v <= hi`` satisfies ``lower <= v <= upper``
    exactly. Where no ``dtype`` value lies in ``[lower, upper]``, ``lo > hi``.
    """
    lower = np.asarray(lower, dtype=np.float64).reshape(-1)
    upper = np.asarray(upper, dtype=np.float64).reshape(-1)
    lo = lower.astype(dtype)
    hi = upper.astype(dtype)
    lo = np.where(lo.astype(np.float64) < lower, np.nextafter(lo, dtype(np.inf)), lo)
    hi = np.where(hi.astype(np.float64) > upper, np.nextafter(hi, dtype(-np.inf)), hi)
    return lo.astype(dtype), hi.astype(dtype)


def _open_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    data: str | bytes = str(path)
    if path.suffix == ".gz":
        data = gzip.decompress(path.read_bytes())
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except ORT_ERRORS as exc:
        raise OrtCheckError(f"{path}: onnxruntime cannot load the model: {exc}") from exc


class OrtChecker:
    """Runs one ONNX file with onnxruntime (session created on first use) and checks points."""

    def __init__(self, model_path: str | Path) -> None:
        self.model_path = Path(model_path)
        self._session: ort.InferenceSession | None = None

    @property
    def session(self) -> ort.InferenceSession:
        """The onnxruntime session (created lazily; raises OrtCheckError)."""
        if self._session is None:
            self._session = _open_session(self.model_path)
        return self._session

    def input_spec(self) -> tuple[str, tuple[int, ...], type[np.floating]]:
        """(name, shape with symbolic dims set to 1, numpy dtype) of the model's only input."""
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise OrtCheckError(f"{self.model_path}: expected one input, found {len(inputs)}")
        info = inputs[0]
        if info.type not in _INPUT_TYPES:
            raise OrtCheckError(f"{self.model_path}: unsupported input type {info.type}")
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in info.shape)
        return info.name, shape, _INPUT_TYPES[info.type]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Model output (first output, flattened, float64) on flat input ``x`` (already cast)."""
        name, shape, dtype = self.input_spec()
        feed = np.asarray(x, dtype=dtype).reshape(shape)
        try:
            out = self.session.run(None, {name: feed})[0]
        except ORT_ERRORS as exc:
            raise OrtCheckError(f"{self.model_path}: onnxruntime failed: {exc}") from exc
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def to_model_input(
        self, x: np.ndarray, lower: np.ndarray, upper: np.ndarray
    ) -> np.ndarray | None:
        """``x`` clipped into the box in the model's input dtype, or None if impossible."""
        _, _, dtype = self.input_spec()
        lo, hi = representable_box(lower, upper, dtype)
        if np.any(lo > hi):
            return None
        x64 = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), lower, upper)
        xt = np.clip(x64.astype(dtype), lo, hi)
        back = xt.astype(np.float64)
        if not (np.all(back >= lower) and np.all(back <= upper)):
            return None
        return xt

    def confirm(
        self,
        x: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        constraints: Sequence[tuple[int, np.ndarray, np.ndarray]],
    ) -> Counterexample | None:
        """Confirm that ``x`` violates one of the cases sharing the box ``[lower, upper]``.

        Args:
            x: flat candidate input ``[n_in]`` (any float dtype; clipped to the box).
            lower, upper: the box ``[n_in]``.
            constraints: ``(case_index, C [m, n_out], d [m])`` per case, tried in order.

        Returns:
            The Counterexample (exact input values fed to onnxruntime, onnxruntime's outputs,
            the first case whose rows ``C @ y <= d`` all hold without tolerance), or None.

        Raises:
            OrtCheckError: onnxruntime cannot load or run the model.
            ValueError: ``x`` or a case does not match the model's sizes.
        """
        lower = np.asarray(lower, dtype=np.float64).reshape(-1)
        upper = np.asarray(upper, dtype=np.float64).reshape(-1)
        if np.size(x) != lower.size:
            raise ValueError(f"point has {np.size(x)} values, the box has {lower.size}")
        xt = self.to_model_input(x, lower, upper)
        if xt is None:
            log.info("candidate rejected: no point of the box is representable")
            return None
        y = self.run(xt)
        if not np.all(np.isfinite(y)):
            log.info("candidate rejected: onnxruntime output is not finite")
            return None
        for case_index, c, d in constraints:
            c = np.asarray(c, dtype=np.float64)
            d = np.asarray(d, dtype=np.float64).reshape(-1)
            if c.ndim != 2 or c.shape != (d.size, y.size):
                raise ValueError(
                    f"case {case_index}: C has shape {c.shape}, expected ({d.size}, {y.size})"
                )
            if np.all(c @ y <= d):
                return Counterexample(x=xt.astype(np.float64), y=y, case_index=case_index)
        log.info("candidate rejected by onnxruntime")
        return None

    def confirm_case(
        self, x: np.ndarray, case_index: int, case: SpecCaseLike
    ) -> Counterexample | None:
        """:meth:`confirm` for a single spec case (``lower, upper, C, d``)."""
        return self.confirm(x, case.lower, case.upper, [(case_index, case.C, case.d)])
