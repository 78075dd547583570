"""Property test: random and/or specs rendered as text parse back to the same semantics.

Every number is a small dyadic rational (quarters), so the reference evaluation below and
the parser's ``C @ y <= d`` are both exact and boundary points compare equal on both
sides. Strict comparisons are evaluated as non-strict, as the package documents.
"""

from __future__ import annotations

import operator

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vnnlib import parse_vnnlib

QUARTERS = st.integers(-12, 12).map(lambda k: k / 4)
OPS = ["<=", ">=", "<", ">"]
EVAL = {"<=": operator.le, "<": operator.le, ">=": operator.ge, ">": operator.ge}


@st.composite
def output_side(draw, n_out: int) -> tuple[dict[int, float], float]:
    """A linear term over outputs: coefficients by index and a constant."""
    indices = draw(st.lists(st.integers(0, n_out - 1), max_size=3, unique=True))
    coeffs = {j: float(draw(st.sampled_from([1, -1, 2, -3, 0.5]))) for j in indices}
    const = draw(QUARTERS) if not coeffs or draw(st.booleans()) else 0.0
    return coeffs, const


@st.composite
def atoms(draw, n_in: int, n_out: int) -> tuple:
    if draw(st.integers(0, 3)) == 0:  # input bound, possibly scaled, possibly reversed
        i = draw(st.integers(0, n_in - 1))
        coef = float(draw(st.sampled_from([1, -1, 2, -4, 0.5])))
        lhs, rhs = ({("X", i): coef}, 0.0), ({}, draw(QUARTERS))
    else:
        (cl, kl), (cr, kr) = draw(output_side(n_out)), draw(output_side(n_out))
        lhs = ({("Y", j): c for j, c in cl.items()}, kl)
        rhs = ({("Y", j): c for j, c in cr.items()}, kr)
    if draw(st.booleans()):
        lhs, rhs = rhs, lhs
    return ("atom", lhs, draw(st.sampled_from(OPS)), rhs)


def trees(n_in: int, n_out: int):
    return st.recursive(
        atoms(n_in, n_out),
        lambda kids: st.tuples(
            st.sampled_from(["and", "or"]), st.lists(kids, min_size=1, max_size=3)
        ),
        max_leaves=8,
    )


@st.composite
def specs(draw):
    n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    box = []
    for _ in range(n_in):
        lo = draw(QUARTERS)
        box.append((lo, lo + draw(st.integers(0, 8)) / 4))
    asserts = draw(st.lists(trees(n_in, n_out), min_size=1, max_size=3))
    return n_in, n_out, box, asserts


def render_term(term: tuple[dict, float], draw) -> str:
    coeffs, const = term
    parts = []
    for (kind, j), c in coeffs.items():
        name = f"{kind}_{j}"
        if c == 1:
            parts.append(name)
        elif c == -1:
            parts.append(f"(- {name})")
        else:
            parts.append(f"(* {c!r} {name})" if draw(st.booleans()) else f"(* {name} {c!r})")
    if const or not parts:
        parts.append(repr(const))
    return parts[0] if len(parts) == 1 else "(+ " + " ".join(parts) + ")"


def render(node, draw) -> str:
    space = draw(st.sampled_from([" ", "\n  ", " ; note\n "]))
    if node[0] == "atom":
        _, lhs, op, rhs = node
        return f"({op}{space}{render_term(lhs, draw)} {render_term(rhs, draw)})"
    inner = space.join(render(kid, draw) for kid in node[1])
    return f"({node[0]}{space}{inner})"


def value(term: tuple[dict, float], x: np.ndarray, y: np.ndarray) -> float:
    coeffs, const = term
    return const + sum(c * (x if kind == "X" else y)[j] for (kind, j), c in coeffs.items())


def holds(node, x: np.ndarray, y: np.ndarray) -> bool:
    if node[0] == "atom":
        _, lhs, op, rhs = node
        return EVAL[op](value(lhs, x, y), value(rhs, x, y))
    results = (holds(kid, x, y) for kid in node[1])
    return all(results) if node[0] == "and" else any(results)


@settings(max_examples=100, deadline=None)
@given(problem=specs(), data=st.data())
def test_parsed_spec_has_the_same_violations_as_the_formula(problem, data) -> None:
    n_in, n_out, box, asserts = problem
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(n_in))
    text += "".join(f"(declare-const Y_{j} Real)\n" for j in range(n_out))
    for i, (lo, hi) in enumerate(box):
        text += f"(assert (>= X_{i} {lo!r}))\n(assert (>= {hi!r} X_{i}))\n"
    text += "".join(f"(assert {render(tree, data.draw)})\n" for tree in asserts)
    spec = parse_vnnlib(text)
    grid_y = st.integers(-8, 8).map(lambda k: k / 2)
    for _ in range(25):  # x mostly in the box, sometimes one quarter outside
        x = np.array(
            [lo + data.draw(st.integers(-1, int(4 * (hi - lo)) + 1)) / 4 for lo, hi in box]
        )
        y = np.array([data.draw(grid_y) for _ in range(n_out)])
        in_box = all(lo <= xi <= hi for xi, (lo, hi) in zip(x, box, strict=True))
        expected = in_box and all(holds(tree, x, y) for tree in asserts)
        assert (spec.find_violated_case(x, y) is not None) == expected, (text, x, y)
        STATS[expected] += 1


STATS = {True: 0, False: 0}


def test_property_test_saw_both_outcomes() -> None:
    """Guards against a generator that only ever produces unviolated points."""
    if STATS[True] + STATS[False] == 0:
        test_parsed_spec_has_the_same_violations_as_the_formula()
    assert STATS[True] > 50 and STATS[False] > 50, STATS
