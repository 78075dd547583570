"""Parsing and normalising inline VNN-LIB texts: the semantics of each construct."""

from __future__ import annotations

import numpy as np
import pytest

from vnnlib import Spec, parse_vnnlib


def declare(n_in: int, n_out: int) -> str:
    xs = "".join(f"(declare-const X_{i} Real)\n" for i in range(n_in))
    return xs + "".join(f"(declare-const Y_{j} Real)\n" for j in range(n_out))


def unit_box(n_in: int) -> str:
    return "".join(f"(assert (>= X_{i} 0))\n(assert (<= X_{i} 1))\n" for i in range(n_in))


def only_case(spec: Spec):
    assert len(spec.cases) == 1
    return spec.cases[0]


def test_simple_box_and_output_row() -> None:
    spec = parse_vnnlib(declare(2, 2) + unit_box(2) + "(assert (<= Y_0 Y_1))\n")
    case = only_case(spec)
    assert (spec.n_inputs, spec.n_outputs) == (2, 2)
    np.testing.assert_array_equal(case.lower, [0.0, 0.0])
    np.testing.assert_array_equal(case.upper, [1.0, 1.0])
    np.testing.assert_array_equal(case.C, [[1.0, -1.0]])
    np.testing.assert_array_equal(case.d, [0.0])
    assert all(a.dtype == np.float64 for a in (case.lower, case.upper, case.C, case.d))


def test_constants_on_the_left_and_strict_comparisons() -> None:
    text = declare(1, 1) + "(assert (< -0.5 X_0))\n(assert (> 2 X_0))\n(assert (> 3 Y_0))\n"
    case = only_case(parse_vnnlib(text))
    np.testing.assert_array_equal(case.lower, [-0.5])
    np.testing.assert_array_equal(case.upper, [2.0])
    np.testing.assert_array_equal(case.C, [[1.0]])  # Y_0 < 3 read as Y_0 <= 3
    np.testing.assert_array_equal(case.d, [3.0])


def test_comments_whitespace_and_scientific_notation() -> None:
    text = (
        "; header comment\n(declare-const X_0 Real) ; trailing\n"
        "(declare-const\n\tY_0 ; split over lines\n Real)\n"
        "(assert (>= X_0 1e-3))(assert (<= X_0 +2.5E+2))\n"
        "(assert ( <=  Y_0 ; comment inside\n -2.5e-1 ))\n"
        "(assert (<= Y_0 .5))(assert (>= Y_0 -7.))"
    )
    case = only_case(parse_vnnlib(text))
    np.testing.assert_array_equal(case.lower, [1e-3])
    np.testing.assert_array_equal(case.upper, [250.0])
    np.testing.assert_array_equal(case.C, [[1.0], [1.0], [-1.0]])
    np.testing.assert_array_equal(case.d, [-0.25, 0.5, 7.0])


def test_linear_terms_over_several_outputs() -> None:
    text = (
        declare(1, 3)
        + unit_box(1)
        + (
            "(assert (<= (+ Y_0 (* -1 Y_1)) 0.5))\n"
            "(assert (>= (- Y_2 (* Y_0 2) 1) (- 3)))\n"  # Y_2 - 2 Y_0 - 1 >= -3
            "(assert (<= (* 0.5 2 Y_1) (+ Y_2 Y_2 1)))\n"  # Y_1 <= 2 Y_2 + 1
        )
    )
    case = only_case(parse_vnnlib(text))
    np.testing.assert_array_equal(case.C, [[1, -1, 0], [2, 0, -1], [0, 1, -2]])
    np.testing.assert_array_equal(case.d, [0.5, 2.0, 1.0])


def test_scaled_input_bounds_are_divided_out_and_rounded_outwards() -> None:
    text = declare(2, 1) + "(assert (<= (* 2 X_0) 1))(assert (<= (* -4 X_0) 2))\n"
    text += "(assert (<= (* 3 X_1) 1))(assert (>= (* 3 X_1) -1))\n"
    case = only_case(parse_vnnlib(text))
    assert case.lower[0] == -0.5 and case.upper[0] == 0.5  # exact divisions stay exact
    assert case.upper[1] >= 1 / 3 and case.upper[1] == np.nextafter(1 / 3, 1)
    assert case.lower[1] <= -1 / 3 and case.lower[1] == np.nextafter(-1 / 3, -1)


def test_or_of_ands_gives_one_case_per_disjunct_sharing_the_box() -> None:
    text = declare(1, 3) + unit_box(1)
    text += "(assert (or (and (>= Y_0 Y_2)) (and (>= Y_1 Y_2) (<= Y_1 4))))\n"
    spec = parse_vnnlib(text)
    assert len(spec.cases) == 2
    np.testing.assert_array_equal(spec.cases[0].C, [[-1, 0, 1]])
    np.testing.assert_array_equal(spec.cases[1].C, [[0, -1, 1], [0, 1, 0]])
    np.testing.assert_array_equal(spec.cases[1].d, [0, 4])
    assert spec.cases[0].lower is spec.cases[1].lower  # one box array for both
    (group,) = spec.groups()
    assert len(group[2]) == 2


def test_and_inside_or_inside_and_and_or_of_ors() -> None:
    text = (
        declare(1, 2)
        + unit_box(1)
        + (
            "(assert (and (or (and (<= Y_0 1) (or (<= Y_1 2) (<= Y_1 3))) (<= Y_0 -1))"
            " (or (or (>= Y_0 5)) (or (>= Y_1 6) (>= Y_1 7)))))\n"
        )
    )
    spec = parse_vnnlib(text)
    # (Y0<=1 & (Y1<=2 | Y1<=3) | Y0<=-1) & (Y0>=5 | Y1>=6 | Y1>=7): 3 x 3 cases
    assert len(spec.cases) == 9
    rows = [(case.C.tolist(), case.d.tolist()) for case in spec.cases]
    assert rows[0] == ([[1, 0], [0, 1], [-1, 0]], [1, 2, -5])
    assert rows[-1] == ([[1, 0], [0, -1]], [-1, -7])


def test_input_constraints_in_a_disjunction_give_several_boxes() -> None:
    text = declare(2, 1) + "(assert (>= X_1 0))(assert (<= X_1 1))\n"
    text += "(assert (or (and (>= X_0 0) (<= X_0 1) (<= Y_0 0))"
    text += " (and (>= X_0 2) (<= X_0 3) (<= Y_0 0)) (and (>= X_0 0) (<= X_0 1) (>= Y_0 9))))\n"
    spec = parse_vnnlib(text)
    assert len(spec.cases) == 3
    groups = spec.groups()
    assert [g[0].tolist() for g in groups] == [[0, 0], [2, 0]]
    assert [len(g[2]) for g in groups] == [2, 1]  # first and third case share a box
    assert spec.find_violated_case(np.array([2.5, 0.5]), np.array([-1.0])) == 1
    assert spec.find_violated_case(np.array([0.5, 0.5]), np.array([10.0])) == 2
    assert spec.find_violated_case(np.array([1.5, 0.5]), np.array([-1.0])) is None


def test_box_as_a_disjunction_distributes_over_the_output_disjunction() -> None:
    text = declare(1, 2) + "(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 5) (<= X_0 6))))"
    text += "(assert (or (<= Y_0 0) (<= Y_1 0)))"
    spec = parse_vnnlib(text)
    assert len(spec.cases) == 4
    assert [len(g[2]) for g in spec.groups()] == [2, 2]


def test_no_output_constraint_means_every_output_violates() -> None:
    case = only_case(parse_vnnlib(declare(1, 2) + unit_box(1)))
    assert case.C.shape == (0, 2) and case.d.shape == (0,)
    assert case.is_violated(np.array([0.5]), np.array([1e9, -1e9]))


def test_contradictory_boxes_are_dropped_with_a_warning(caplog) -> None:
    text = declare(1, 1) + "(assert (or (and (>= X_0 2) (<= X_0 1)) (and (>= X_0 0) (<= X_0 1))))"
    with caplog.at_level("WARNING", logger="vnnlib"):
        spec = parse_vnnlib(text)
    assert len(spec.cases) == 1 and spec.cases[0].lower[0] == 0.0
    assert "dropped 1 of 2" in caplog.text
    assert "X_0 has lower bound 2.0 above upper bound 1.0" in caplog.text


def test_all_boxes_empty_means_the_property_trivially_holds(caplog) -> None:
    text = declare(1, 1) + "(assert (>= X_0 2))(assert (<= X_0 1))(assert (<= Y_0 0))"
    with caplog.at_level("WARNING", logger="vnnlib"):
        spec = parse_vnnlib(text)
    assert spec.cases == () and spec.trivially_holds
    assert "holds trivially" in caplog.text


def test_constant_comparisons_are_decided() -> None:
    base = declare(1, 1) + unit_box(1)
    assert len(parse_vnnlib(base + "(assert (<= 1 2))").cases) == 1
    assert len(parse_vnnlib(base + "(assert (<= 3 2))").cases) == 0
    spec = parse_vnnlib(base + "(assert (or (<= 3 2) (<= Y_0 1)))")
    assert len(spec.cases) == 1 and spec.cases[0].C.shape == (1, 1)
    assert len(parse_vnnlib(base + "(assert (<= (- X_0 X_0) 1))").cases) == 1


def test_equality_chains_and_empty_connectives() -> None:
    text = declare(2, 2) + "(assert (= X_0 0.25))(assert (<= 0 X_1 1))(assert (= Y_0 Y_1))"
    case = only_case(parse_vnnlib(text))
    assert case.lower.tolist() == [0.25, 0.0] and case.upper.tolist() == [0.25, 1.0]
    assert case.C.tolist() == [[1, -1], [-1, 1]]
    assert len(parse_vnnlib(declare(1, 1) + unit_box(1) + "(assert (and))").cases) == 1
    assert len(parse_vnnlib(declare(1, 1) + unit_box(1) + "(assert (or))").cases) == 0


def test_smt_housekeeping_commands_and_declare_fun_are_accepted() -> None:
    text = "(set-logic QF_LRA)\n(declare-fun X_0 () Real)\n(declare-const Y_0 Real)\n"
    text += "(assert (<= X_0 1))(assert (>= X_0 0))(assert (<= Y_0 0))\n(check-sat)\n(exit)\n"
    spec = parse_vnnlib(text)
    assert (spec.n_inputs, spec.n_outputs, len(spec.cases)) == (1, 1, 1)


def test_declarations_may_come_in_any_order() -> None:
    text = "(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const X_0 Real)"
    text += "(assert (<= X_1 2))(assert (>= X_1 1))(assert (<= X_0 4))(assert (>= X_0 3))"
    case = only_case(parse_vnnlib(text))
    assert case.lower.tolist() == [3.0, 1.0]


def test_deep_nesting_and_long_flat_lists_do_not_recurse() -> None:
    depth = 5000
    text = declare(1, 1) + unit_box(1)
    text += "(assert " + "(and " * depth + "(<= Y_0 1)" + ")" * depth + ")\n"
    text += "(assert (or " + " ".join(f"(<= Y_0 {i})" for i in range(3000)) + "))\n"
    spec = parse_vnnlib(text)
    assert len(spec.cases) == 3000
    assert spec.cases[-1].d.tolist() == [1.0, 2999.0]


def test_fused_and_plain_scanning_agree() -> None:
    plain = declare(2, 2) + unit_box(2) + "(assert (or (and (<= Y_0 Y_1)) (and (>= Y_0 3))))"
    # A comment inside each statement forces the plain (non-fused) path.
    tangled = plain.replace("(assert (", "(assert ;x\n(").replace(
        "(declare-const", "(;x\n declare-const"
    )
    tangled = tangled.replace("(<= Y_0 Y_1)", "(<= ;c\n Y_0 Y_1)")
    assert tangled != plain
    assert parse_vnnlib(tangled) == parse_vnnlib(plain)


def test_crlf_line_endings() -> None:
    text = (declare(1, 1) + unit_box(1) + "(assert (<= Y_0 1))").replace("\n", "\r\n")
    assert len(parse_vnnlib(text).cases) == 1


@pytest.mark.parametrize(
    "op, expect_upper", [("<=", True), ("<", True), (">=", False), (">", False)]
)
def test_output_bound_directions(op: str, expect_upper: bool) -> None:
    case = only_case(parse_vnnlib(declare(1, 1) + unit_box(1) + f"(assert ({op} Y_0 2))"))
    assert case.C.tolist() == ([[1.0]] if expect_upper else [[-1.0]])
    assert case.d.tolist() == ([2.0] if expect_upper else [-2.0])
