"""Every error path of the parser/normaliser, with its line and column."""

from __future__ import annotations

import pickle

import pytest

from vnnlib import VnnlibError, parse_vnnlib

HEAD = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"  # lines 1-2
BOX = "(assert (>= X_0 0))\n(assert (<= X_0 1))\n"  # lines 3-4 when used after HEAD

CASES = [
    # (name, text, line, col, message fragment)
    ("unbalanced", HEAD + "(assert (<= X_0 1)))\n", 3, 20, "unbalanced ')'"),
    ("close at start", ")", 1, 1, "unbalanced ')'"),
    ("eof", HEAD + "(assert (and (<= X_0 1)\n", 4, 1, "unexpected end of input"),
    ("unknown operator", HEAD + "(assert (foo X_0 1))\n", 3, 10, "unknown operator 'foo'"),
    ("not is unknown", HEAD + "(assert (not (<= X_0 1)))\n", 3, 10, "unknown operator 'not'"),
    ("undeclared fused", HEAD + "(assert (<= X_5 1))\n", 3, 13, "undeclared variable 'X_5'"),
    ("undeclared nested", HEAD + "(assert (or (<= (+ Y_0 Y_7) 1)))\n", 3, 24, "'Y_7'"),
    ("use before declaration", "(assert (<= X_0 1))\n(declare-const X_0 Real)", 1, 13, "X_0"),
    ("duplicate", HEAD + "(declare-const  Y_0 Real)\n", 3, 17, "duplicate declaration"),
    ("non-real", "(declare-const X_0 Int)\n", 1, 20, "must have type Real, found 'Int'"),
    ("bad name", "(declare-const Z_0 Real)\n", 1, 16, "unsupported variable name 'Z_0'"),
    ("leading zero", "(declare-const X_01 Real)\n", 1, 16, "unsupported variable name"),
    ("bad number", HEAD + "(assert (<= X_0 1.2.3))\n", 3, 17, "bad number '1.2.3'"),
    ("bad exponent", HEAD + "(assert (and (<= Y_0 1e)))\n", 3, 22, "bad number '1e'"),
    ("number overflow", HEAD + "(assert (<= Y_0 1e999))\n", 3, 17, "out of range"),
    ("gap", "(declare-const X_0 Real)\n(declare-const X_2 Real)\n", 2, 16, "X_1 is not"),
    ("output gap", "(declare-const Y_1 Real)\n", 1, 16, "Y_0 is not"),
    (
        "non-linear",
        HEAD + "(declare-const X_1 Real)\n(assert (<= (* X_0 X_1) 1))",
        4,
        20,
        "non-linear",
    ),
    ("non-linear out", HEAD + "(assert (<= (* Y_0 (+ Y_0 1)) 1))", 3, 20, "non-linear"),
    ("mixed", HEAD + "(assert (or (<= X_0 Y_0)))\n", 3, 14, "mixed input/output constraint"),
    ("mixed sum", HEAD + "(assert (>= (+ X_0 Y_0) 1))\n", 3, 10, "mixed input/output"),
    (
        "two inputs",
        HEAD + "(declare-const X_1 Real)\n(assert (<= X_0 X_1))",
        4,
        10,
        "single variable",
    ),
    ("empty file", "", 1, 1, "empty spec"),
    ("only comments", "; nothing here\n\n", 1, 1, "empty spec"),
    ("unbounded below", HEAD + "(assert (<= X_0 1))\n", 1, 16, "X_0 has no finite lower bound"),
    ("unbounded above", HEAD + "(assert (>= X_0 1))\n", 1, 16, "X_0 has no finite upper bound"),
    (
        "unbounded in one disjunct",
        HEAD + "(assert (>= X_0 0))(assert (or (<= X_0 1) (<= Y_0 1)))",
        1,
        16,
        "in disjunct 1 of 2",
    ),
    ("atom at top level", HEAD + "X_0\n", 3, 1, "expected '(' at top level"),
    ("expression at top level", HEAD + "(<= X_0 1)\n", 3, 1, "expected a command"),
    ("and at top level", HEAD + "(and)\n", 3, 1, "expected a command at top level, found 'and'"),
    (
        "nested assert",
        HEAD + "(assert (and (assert (<= X_0 1))))",
        3,
        14,
        "only allowed at top level",
    ),
    ("nested declare", HEAD + "(assert (and (declare-const X_1 Real)))", 3, 14, "top level"),
    ("empty list", HEAD + "(assert ())\n", 3, 9, "empty expression '()'"),
    ("term as constraint", HEAD + "(assert (and X_0))\n", 3, 14, "expects constraints"),
    ("constraint as term", HEAD + "(assert (<= (and) 1))\n", 3, 13, "expects terms"),
    ("number as operator", HEAD + "(assert (1 2))\n", 3, 10, "expected an operator"),
    ("too few arguments", HEAD + "(assert (<= X_0))\n", 3, 9, "at least 2"),
    ("assert two things", HEAD + "(assert (<= X_0 1) (<= X_0 2))", 3, 20, "exactly one"),
    ("assert nothing", HEAD + "(assert)", 3, 1, "at least 1"),
    ("operator as term", HEAD + "(assert (<= X_0 +))\n", 3, 17, "found operator '+'"),
    ("malformed declare", "(declare-const X_0)\n", 1, 1, "malformed declaration"),
    ("malformed declare-fun", "(declare-fun X_0 Real)\n", 1, 1, "declare-fun NAME () Real"),
]


@pytest.mark.parametrize("name, text, line, col, fragment", CASES, ids=[c[0] for c in CASES])
def test_error_is_located(name: str, text: str, line: int, col: int, fragment: str) -> None:
    with pytest.raises(VnnlibError) as info:
        parse_vnnlib(text, source="spec.vnnlib")
    err = info.value
    assert fragment in str(err)
    assert (err.source, err.line, err.col) == ("spec.vnnlib", line, col), str(err)
    assert str(err).startswith(f"spec.vnnlib:{line}:{col}: ")
    assert isinstance(err, ValueError)


def test_dnf_blow_up_is_refused() -> None:
    pairs = "".join(f"(assert (or (<= Y_0 {i}) (>= Y_0 {i})))\n" for i in range(12))
    text = HEAD + BOX + pairs  # 2**12 = 4096 cases
    assert len(parse_vnnlib(text, max_cases=4096).cases) == 4096
    with pytest.raises(VnnlibError, match="more than 1000 cases") as info:
        parse_vnnlib(text, max_cases=1000)
    assert info.value.line == 5 + 9  # the 10th disjunction crosses 1000 (2**10 = 1024)


def test_dnf_blow_up_inside_one_assertion() -> None:
    inner = " ".join(f"(or (<= Y_0 {i}) (>= Y_0 {i}))" for i in range(11))
    with pytest.raises(VnnlibError, match="more than 1000 cases") as info:
        parse_vnnlib(HEAD + BOX + f"(assert (and {inner}))", max_cases=1000)
    assert (info.value.line, info.value.col) == (5, 1)


def test_error_pickles_with_its_location() -> None:
    err = VnnlibError("a.vnnlib", 3, 4, "boom")
    again = pickle.loads(pickle.dumps(err))
    assert (again.source, again.line, again.col, str(again)) == ("a.vnnlib", 3, 4, str(err))
