"""SpecCase/Spec: membership, grouping, equality, immutability, validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vnnlib import Spec, SpecCase


def make_case(lo, hi, C, d) -> SpecCase:
    return SpecCase(
        np.array(lo, float), np.array(hi, float), np.array(C, float), np.array(d, float)
    )


def test_is_violated_checks_box_and_every_row_with_tolerance() -> None:
    case = make_case([0, 0], [1, 1], [[1, -1], [0, 1]], [0, 5])
    assert case.is_violated(np.array([0.5, 1.0]), np.array([1.0, 2.0]))
    assert not case.is_violated(np.array([0.5, 1.0]), np.array([3.0, 2.0]))  # row 0 fails
    assert not case.is_violated(np.array([1.1, 0.0]), np.array([1.0, 2.0]))  # outside box
    assert case.is_violated(np.array([1.00001, 0.0]), np.array([1.0, 2.0]), atol=1e-4)
    assert case.is_violated(np.array([0.5, 0.5]), np.array([1.00001, 1.0]), atol=1e-4)
    assert case.is_violated(np.array([[0.5], [0.5]]), np.array([[1.0, 2.0]]))  # any shape


def test_size_mismatch_is_a_value_error() -> None:
    case = make_case([0], [1], [[1.0]], [0])
    with pytest.raises(ValueError, match="x has 2 values"):
        case.is_violated(np.zeros(2), np.zeros(1))


def test_arrays_are_read_only_float64_copies() -> None:
    lo = np.array([0.0])
    case = SpecCase(lo, np.array([1]), np.array([[1]]), np.array([2]))
    lo[0] = 9.0
    assert case.lower[0] == 0.0 and case.upper.dtype == np.float64
    with pytest.raises(ValueError):
        case.lower[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.lower = lo  # type: ignore[misc]


def test_case_validation() -> None:
    with pytest.raises(ValueError, match="lower"):
        make_case([0, 0], [1], np.zeros((0, 1)), [])
    with pytest.raises(ValueError, match="rows"):
        make_case([0], [1], [[1.0]], [1, 2])
    with pytest.raises(ValueError, match="dimension"):
        make_case([0], [1], [1.0], [1])


def test_spec_groups_by_box_content_in_first_seen_order() -> None:
    a = make_case([0], [1], [[1, 0]], [0])
    b = make_case([2], [3], [[0, 1]], [0])
    c = make_case([0], [1], [[-1, 0]], [1])  # same box as a, different arrays
    spec = Spec((a, b, c), 1, 2, "<test>")
    groups = spec.groups()
    assert [g[0].tolist() for g in groups] == [[0.0], [2.0]]
    assert [len(g[2]) for g in groups] == [2, 1]
    assert groups[0][2][1][0] is c.C


def test_find_violated_case_returns_first_index_or_none() -> None:
    a = make_case([0], [1], [[1.0]], [0])
    b = make_case([0], [1], np.zeros((0, 1)), [])
    spec = Spec((a, b), 1, 1, "<test>")
    assert spec.find_violated_case(np.array([0.5]), np.array([-1.0])) == 0
    assert spec.find_violated_case(np.array([0.5]), np.array([1.0])) == 1
    assert spec.find_violated_case(np.array([2.0]), np.array([1.0])) is None
    assert Spec((), 1, 1, "<t>").find_violated_case(np.array([0.5]), np.array([1.0])) is None


def test_equality_compares_array_contents() -> None:
    a = make_case([0], [1], [[1.0]], [0])
    assert a == make_case([0], [1], [[1.0]], [0])
    assert a != make_case([0], [1], [[1.0]], [0.5])
    assert Spec((a,), 1, 1, "s") == Spec((make_case([0], [1], [[1.0]], [0]),), 1, 1, "s")
    assert Spec((a,), 1, 1, "s") != Spec((a, a), 1, 1, "s")
    assert Spec((a,), 1, 1, "s") != Spec((a,), 1, 1, "other")


def test_spec_checks_case_shapes() -> None:
    with pytest.raises(ValueError, match="case 0"):
        Spec((make_case([0], [1], [[1.0]], [0]),), 2, 1, "s")
