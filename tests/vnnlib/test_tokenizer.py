"""Tokenizer: token kinds and offsets, fused statements, lazy line/column mapping."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vnnlib.tokenizer import (
    BOUND_VALUE,
    CLOSE,
    FLAT_REST,
    NUMBER,
    OPEN,
    SYMBOL,
    TOKEN_RE,
    Locator,
    iter_tokens,
)


def test_plain_tokens_with_offsets() -> None:
    text = "(assert ; c\n (<= X_0 -1.5e3))  "
    tokens = [(t.kind, t.text, t.offset) for t in iter_tokens(text)]
    assert tokens == [
        (OPEN, "(", 0),
        (SYMBOL, "assert", 1),
        (OPEN, "(", 13),
        (SYMBOL, "<=", 14),
        (SYMBOL, "X_0", 17),
        (NUMBER, "-1.5e3", 21),
        (CLOSE, ")", 27),
        (CLOSE, ")", 28),
    ]


def test_numbers_and_number_like_symbols() -> None:
    kinds = {t.text: t.kind for t in iter_tokens("1 -2. .5 +3e-2 1e 1.2.3 - + 2x X_1")}
    assert [k for k, v in kinds.items() if v == NUMBER] == ["1", "-2.", ".5", "+3e-2"]
    assert [k for k, v in kinds.items() if v == SYMBOL] == ["1e", "1.2.3", "-", "+", "2x", "X_1"]


def test_fused_statements_are_single_matches() -> None:
    text = "(declare-const X_0 Real)\n(assert (<= X_0 1))\n(assert (>= Y_0 Y_1))\n(or (< a b))"
    text += "(* -1 ; comment\n Y_0)"
    kinds = [m.lastindex for m in TOKEN_RE.finditer(text) if m.lastindex]
    assert kinds[:2] == [FLAT_REST, BOUND_VALUE]  # declaration, bound
    assert kinds[2:10] == [OPEN, SYMBOL, FLAT_REST, CLOSE] * 2  # assert/or around a flat list
    assert kinds[10:] == [OPEN, SYMBOL, NUMBER, SYMBOL, CLOSE]  # a comment defeats fusing


def test_locator_maps_offsets_lazily() -> None:
    text = "ab\ncd\n\nef"
    loc = Locator(text, "f")
    assert [loc.line_col(i) for i in (0, 1, 2, 3, 6, 7, 9)] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
        (3, 1),
        (4, 1),
        (4, 3),
    ]
    err = loc.error(2, "x")  # whitespace at the offset is skipped: "\n" -> line 2 col 1
    assert (err.line, err.col, str(err)) == (2, 1, "f:2:1: x")


ALPHABET = st.sampled_from(
    [
        "(",
        ")",
        " ",
        "\n",
        "\t",
        "; c\n",
        "assert",
        "declare-const",
        "Real",
        "<=",
        ">=",
        "<",
        "X_0",
        "Y_1",
        "1",
        "-2.5e-3",
        "1e",
        "and",
        "or",
        "+",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(ALPHABET, max_size=40))
def test_fused_scanner_covers_exactly_the_plain_tokens(pieces: list[str]) -> None:
    """Splitting every fused match into plain tokens gives the plain token stream."""
    text = " ".join(pieces) if len(pieces) % 2 else "".join(pieces)
    expected = [(t.kind, t.text, t.offset) for t in iter_tokens(text)]
    got = []
    for m in TOKEN_RE.finditer(text):
        got += [(t.kind, t.text, t.offset + m.start()) for t in iter_tokens(m.group())]
    assert got == expected
