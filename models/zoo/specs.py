"""VNN-LIB text generators for the zoo's specifications.

Conventions (VNN-COMP style):

* Inputs are declared ``X_0 .. X_{n-1}`` in row-major (C) order of the network's
  input tensor, outputs ``Y_0 .. Y_{m-1}`` likewise.
* The input box is one ``(assert (<= X_i hi))`` and one ``(assert (>= X_i lo))`` per input.
* The output assertion describes the *violation*: the property holds iff no point of
  the box satisfies it (a verifier answers ``unsat`` / "holds").
* Numbers are written positionally (never in exponent notation), rounded to
  ``DECIMALS`` digits after the point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DECIMALS = 12
"""Digits after the decimal point kept when writing numbers."""


def format_number(value: float) -> str:
    """Format ``value`` as a positional decimal with at most ``DECIMALS`` decimals.

    Raises:
        ValueError: ``value`` is not finite.
    """
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"VNN-LIB numbers must be finite, got {v}")
    text = np.format_float_positional(v, precision=DECIMALS, unique=True, trim="-")
    return "0" if text == "-0" else text


def declarations(n_inputs: int, n_outputs: int) -> list[str]:
    """``declare-const`` lines for ``X_0..X_{n_inputs-1}`` and ``Y_0..Y_{n_outputs-1}``."""
    lines = [f"(declare-const X_{i} Real)" for i in range(n_inputs)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_outputs)]
    return lines


def input_box(lower: np.ndarray, upper: np.ndarray) -> list[str]:
    """Assertions bounding each ``X_i`` to ``[lower_i, upper_i]`` (arrays are flattened)."""
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    if lo.shape != hi.shape:
        raise ValueError(f"box bounds differ in size: {lo.size} vs {hi.size}")
    if np.any(lo > hi):
        raise ValueError(f"empty input box at X_{int(np.argmax(lo > hi))}")
    lines: list[str] = []
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        lines.append(f"(assert (<= X_{i} {format_number(b)}))")
        lines.append(f"(assert (>= X_{i} {format_number(a)}))")
    return lines


def disjunction(cases: Sequence[str]) -> list[str]:
    """``(assert (or (and c1) (and c2) ...))`` over single-comparison cases, one per line."""
    if not cases:
        raise ValueError("a disjunction needs at least one case")
    return ["(assert (or", *(f"    (and {c})" for c in cases), "))"]


def _comment_lines(comment: str | None) -> list[str]:
    """``comment`` as ``;`` comment lines (none when ``comment`` is empty)."""
    return [f"; {line}".rstrip() for line in comment.splitlines()] if comment else []


def robustness_spec(
    x0: np.ndarray,
    label: int,
    n_classes: int,
    eps: float,
    *,
    lo: float | np.ndarray | None = None,
    hi: float | np.ndarray | None = None,
    comment: str | None = None,
) -> str:
    """Local Linf robustness of a classifier around ``x0``.

    The input box is ``[x0 - eps, x0 + eps]`` (elementwise), clipped to ``[lo, hi]``
    where given. The property is violated if any other class's output is at least the
    label's: one disjunct ``(>= Y_j Y_label)`` per class ``j != label``.

    Args:
        x0: the centre point, any shape (flattened row-major to ``X_0..``).
        label: index of the class that must stay the maximum.
        n_classes: number of outputs ``Y_0..Y_{n_classes-1}``.
        eps: the Linf radius (non-negative).
        lo: optional lower clip (scalar or array broadcastable to ``x0``).
        hi: optional upper clip (scalar or array broadcastable to ``x0``).
        comment: optional text written as ``;`` comment lines at the top.

    Returns:
        The VNN-LIB text, newline terminated.
    """
    if n_classes < 2:
        raise ValueError(f"robustness needs at least 2 classes, got {n_classes}")
    if not 0 <= label < n_classes:
        raise ValueError(f"label {label} is not in [0, {n_classes})")
    if eps < 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    center = np.asarray(x0, dtype=np.float64).reshape(-1)
    lower, upper = center - eps, center + eps
    if lo is not None:
        lower = np.maximum(lower, np.broadcast_to(np.asarray(lo, np.float64), center.shape))
    if hi is not None:
        upper = np.minimum(upper, np.broadcast_to(np.asarray(hi, np.float64), center.shape))
    cases = [f"(>= Y_{j} Y_{label})" for j in range(n_classes) if j != label]
    lines = [
        *_comment_lines(comment),
        *declarations(center.size, n_classes),
        "",
        *input_box(lower, upper),
        "",
        f"; violation: some class other than {label} scores at least as high",
        *disjunction(cases),
    ]
    return "\n".join(lines) + "\n"


def residual_spec(
    x_lower: np.ndarray,
    x_upper: np.ndarray,
    tol: float | Sequence[float] | np.ndarray,
    *,
    n_outputs: int | None = None,
    comment: str | None = None,
) -> str:
    """Every output (a residual) stays strictly inside ``(-tol_i, tol_i)`` on a box.

    The violation is the disjunction, over outputs ``i``, of ``(>= Y_i tol_i)`` and
    ``(<= Y_i -tol_i)``.

    Args:
        x_lower: lower corner of the input box, any shape (flattened row-major).
        x_upper: upper corner, same size.
        tol: positive tolerance, a scalar for all outputs or one per output.
        n_outputs: number of outputs; required when ``tol`` is a scalar, otherwise it
            must equal ``len(tol)`` if given.
        comment: optional text written as ``;`` comment lines at the top.

    Returns:
        The VNN-LIB text, newline terminated.
    """
    tols = np.asarray(tol, dtype=np.float64)
    if tols.ndim == 0:
        if n_outputs is None:
            raise ValueError("n_outputs is required with a scalar tolerance")
        tols = np.full(n_outputs, float(tols))
    tols = tols.reshape(-1)
    if n_outputs is not None and tols.size != n_outputs:
        raise ValueError(f"{tols.size} tolerances for {n_outputs} outputs")
    if not np.all(np.isfinite(tols)) or np.any(tols <= 0):
        raise ValueError("tolerances must be positive and finite")
    lower = np.asarray(x_lower, dtype=np.float64).reshape(-1)
    cases: list[str] = []
    for i, t in enumerate(tols):
        cases.append(f"(>= Y_{i} {format_number(t)})")
        cases.append(f"(<= Y_{i} {format_number(-t)})")
    lines = [
        *_comment_lines(comment),
        *declarations(lower.size, tols.size),
        "",
        *input_box(lower, x_upper),
        "",
        "; violation: some residual leaves its tolerance band",
        *disjunction(cases),
    ]
    return "\n".join(lines) + "\n"
