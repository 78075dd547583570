"""Counterexample text: format/parse round trip, tolerant reading, errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vnnlib import VnnlibError, format_counterexample, parse_counterexample, read_counterexample

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def test_format_layout() -> None:
    text = format_counterexample(np.array([[0.1, -2.0]]), np.array([1e-7]))
    assert text == "(\n(X_0 0.1)\n(X_1 -2.0)\n(Y_0 1e-07)\n)"


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float64, st.integers(1, 20), elements=finite),
    y=arrays(np.float64, st.integers(0, 10), elements=finite),
)
def test_round_trip_is_exact(x: np.ndarray, y: np.ndarray) -> None:
    px, py = parse_counterexample(format_counterexample(x, y))
    assert px.dtype == np.float64 and py.dtype == np.float64
    assert px.tobytes() == x.tobytes() and py.tobytes() == y.tobytes()  # bitwise, incl. -0.0


def test_non_finite_values_cannot_be_formatted() -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        format_counterexample(np.array([np.nan]), np.array([0.0]))


def test_tolerant_layouts() -> None:
    text = "sat\n\n( (X_1  -3.5)\n\n (X_0 1e-3)\n  (Y_0   2) ; comment\n(Y_1 -.5))\n\n"
    x, y = parse_counterexample(text)
    assert x.tolist() == [1e-3, -3.5] and y.tolist() == [2.0, -0.5]
    x, y = parse_counterexample("((X_0 1.0))")
    assert x.tolist() == [1.0] and y.shape == (0,)


ERRORS = [
    ("unsat\n", 1, 1, "result is 'unsat'"),
    ("", 1, 1, "unexpected end of input"),
    ("sat\n(\n(X_0 1.0)\n", 4, 1, "unexpected end of input"),
    ("(\n(X_0 1.0)\n(Z_0 2.0)\n)", 3, 2, "expected a variable name"),
    ("(\n(X_0 abc)\n)", 2, 6, "expected a number"),
    ("(\n(X_0 1.0 2.0)\n)", 2, 10, "')' closing the entry"),
    ("(\n(X_0 1.0)\n(X_0 2.0)\n)", 3, 2, "duplicate entry for X_0 (first on line 2)"),
    ("(\n(X_0 1.0)\n(X_2 2.0)\n)", 3, 2, "X_2 is given but X_1 is not"),
    ("(\n(Y_0 1.0)\n)", 3, 1, "no X_i entries"),
    ("(\n(X_0 1.0)\n) extra", 3, 3, "unexpected text after"),
    ("(\n(X_0 1e999)\n)", 2, 6, "out of range"),
    ("X_0 1.0", 1, 1, "expected '(' starting the counterexample"),
]


@pytest.mark.parametrize("text, line, col, fragment", ERRORS)
def test_errors_are_located(text: str, line: int, col: int, fragment: str) -> None:
    with pytest.raises(VnnlibError) as info:
        parse_counterexample(text, source="ce.txt")
    assert fragment in str(info.value)
    assert (info.value.line, info.value.col) == (line, col), str(info.value)


def test_read_counterexample_plain_gzip_and_missing(tmp_path) -> None:
    text = format_counterexample(np.array([0.25, 0.5]), np.array([-1.0]))
    (tmp_path / "a.counterexample").write_text("sat\n" + text)
    (tmp_path / "b.counterexample.gz").write_bytes(gzip.compress(text.encode()))
    for name in ("a.counterexample", "b.counterexample.gz"):
        x, y = read_counterexample(tmp_path / name)
        assert x.tolist() == [0.25, 0.5] and y.tolist() == [-1.0]
    with pytest.raises(VnnlibError, match="file not found") as info:
        read_counterexample(tmp_path / "missing.counterexample")
    assert info.value.source.endswith("missing.counterexample") and info.value.line is None
