"""The small AST the parser produces: linear terms, atomic constraints, ``and``/``or``.

Sign convention, stated once for the whole package: every atomic constraint is kept in
the form ``sum(coef * var) <= rhs``. The VNN-LIB text describes the *violation* (the
unsafe set), so these constraints describe when the property is violated.

Strict comparisons ``<``/``>`` are read as ``<=``/``>=``. That only adds the boundary
to the violation set, which is sound for verification (a proof of the closed property
implies the strict one); a counterexample exactly on the boundary could be spurious but
has measure zero and is re-checked elsewhere.

Terms are kept cheap while parsing: a term is a ``float`` (constant), a ``str`` (a
declared variable name) or a ``Lin`` (general affine combination).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple


class Lin(NamedTuple):
    """An affine term ``sum(coeffs[name] * name) + const``."""

    coeffs: dict[str, float]
    const: float


Term = float | str | Lin


class InputBound(NamedTuple):
    """``X_index <= value`` if ``upper`` else ``X_index >= value``."""

    index: int
    upper: bool
    value: float


class OutputRow(NamedTuple):
    """``sum(coef * Y_j for j, coef in coeffs) <= rhs``."""

    coeffs: tuple[tuple[int, float], ...]
    rhs: float


class Truth(NamedTuple):
    """A constraint without variables, already decided."""

    value: bool


class And(NamedTuple):
    """Conjunction (an empty one is true)."""

    children: tuple[BoolExpr, ...]


class Or(NamedTuple):
    """Disjunction (an empty one is false)."""

    children: tuple[BoolExpr, ...]


BoolExpr = InputBound | OutputRow | Truth | And | Or
BOOL_TYPES = (InputBound, OutputRow, Truth, And, Or)
TERM_TYPES = (float, str, Lin)


class LinearityError(ValueError):
    """A term is not linear, or a constraint is not a box/output polytope constraint.

    Attributes:
        arg: index of the offending argument of the current expression, or -1 when the
            expression as a whole is at fault.
    """

    def __init__(self, what: str, arg: int = -1) -> None:
        super().__init__(what)
        self.arg = arg


def as_lin(term: Term) -> Lin:
    """Return ``term`` as a ``Lin``."""
    if isinstance(term, Lin):
        return term
    if isinstance(term, str):
        return Lin({term: 1.0}, 0.0)
    return Lin({}, term)


def lin_sum(terms: list[Term], signs: list[float]) -> Lin:
    """Return ``sum(sign * term)``."""
    coeffs: dict[str, float] = {}
    const = 0.0
    for term, sign in zip(terms, signs, strict=True):
        kind = type(term)
        if kind is str:
            coeffs[term] = coeffs.get(term, 0.0) + sign
        elif kind is float:
            const += sign * term
        else:
            for name, coef in term.coeffs.items():
                coeffs[name] = coeffs.get(name, 0.0) + sign * coef
            const += sign * term.const
    return Lin(coeffs, const)


def lin_product(terms: list[Term]) -> Term:
    """Return the product of ``terms``; at most one of them may contain variables.

    Raises:
        LinearityError: two factors contain variables (``arg`` is the second one).
    """
    scale = 1.0
    var_term: Term | None = None
    for i, term in enumerate(terms):
        if type(term) is float:
            scale *= term
        elif type(term) is Lin and not term.coeffs:
            scale *= term.const
        elif var_term is None:
            var_term = term
        else:
            raise LinearityError("non-linear term: product of two non-constant factors", i)
    if var_term is None:
        return scale
    if type(var_term) is str:
        return Lin({var_term: scale}, 0.0)
    return Lin({k: scale * v for k, v in var_term.coeffs.items()}, scale * var_term.const)


def leq(a: Term, b: Term, variables: dict[str, tuple[bool, int]]) -> BoolExpr:
    """Return the atomic constraint ``a <= b``.

    Args:
        a: left-hand term.
        b: right-hand term.
        variables: declared name -> (is_input, index).

    Raises:
        LinearityError: the constraint mixes inputs and outputs, or constrains more than
            one input variable.
    """
    if type(a) is str and type(b) is float:
        is_input, index = variables[a]
        return InputBound(index, True, b) if is_input else OutputRow(((index, 1.0),), b)
    if type(a) is float and type(b) is str:
        is_input, index = variables[b]
        return InputBound(index, False, a) if is_input else OutputRow(((index, -1.0),), -a)
    if type(a) is str and type(b) is str:
        a_input, i = variables[a]
        b_input, j = variables[b]
        if not a_input and not b_input and i != j:
            return OutputRow(((i, 1.0), (j, -1.0)), 0.0)
    diff = lin_sum([a, b], [1.0, -1.0])
    return classify(diff.coeffs, -diff.const, variables)


def classify(
    coeffs: dict[str, float], rhs: float, variables: dict[str, tuple[bool, int]]
) -> BoolExpr:
    """Turn ``sum(coeffs[name] * name) <= rhs`` into an atomic constraint.

    A bound ``a * X_i <= rhs`` with ``a`` not ``+-1`` is divided out and rounded outwards
    by one ulp when the division is inexact, so the box is never narrower than the exact set.

    Raises:
        LinearityError: mixed input/output variables, or several input variables.
    """
    inputs: list[tuple[int, float]] = []
    outputs: list[tuple[int, float]] = []
    for name, coef in coeffs.items():
        if coef != 0.0:
            is_input, index = variables[name]
            (inputs if is_input else outputs).append((index, coef))
    if inputs and outputs:
        raise LinearityError("mixed input/output constraint not supported")
    if outputs:
        return OutputRow(tuple(outputs), rhs)
    if not inputs:
        return Truth(0.0 <= rhs)
    if len(inputs) > 1:
        raise LinearityError(
            "input constraints must bound a single variable (X_i <= c or X_i >= c); "
            f"this one involves {len(inputs)} inputs"
        )
    index, coef = inputs[0]
    value = rhs / coef
    if not math.isfinite(value):
        raise LinearityError(f"input bound {rhs!r} / {coef!r} is not a finite number")
    if abs(coef) != 1.0 and Fraction(value) * Fraction(coef) != Fraction(rhs):
        value = math.nextafter(value, math.inf if coef > 0 else -math.inf)
    return InputBound(index, coef > 0, value)
