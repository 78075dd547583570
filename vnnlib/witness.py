"""Counterexamples in the VNN-COMP result-file format.

A counterexample is one parenthesised list with one ``(NAME VALUE)`` entry per line: all
flattened input values ``X_0 ...`` (C order), then all output values ``Y_0 ...``::

    (
    (X_0 0.5)
    (X_1 -0.25)
    (Y_0 1.0)
    )

Values are written with ``repr`` of the float64, the shortest text that reads back to
the identical number, so formatting then parsing is exact.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vnnlib.files import read_text
from vnnlib.tokenizer import CLOSE, NUMBER, OPEN, SYMBOL, Locator, Token, iter_tokens

_NAME_RE = re.compile(r"([XY])_(0|[1-9][0-9]*)")
_RESULTS = frozenset({"unsat", "timeout", "unknown", "error", "holds", "violated"})


def format_counterexample(x: np.ndarray, y: np.ndarray) -> str:
    """Render ``(x, y)`` (any shapes; flattened in C order) as a counterexample.

    Returns:
        ``"(\\n(X_0 v)\\n...\\n(Y_0 w)\\n)"``, without a trailing newline.

    Raises:
        ValueError: a value is NaN or infinite.
    """
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    for name, values in (("x", xs), ("y", ys)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} contains a NaN or infinite value")
    lines = ["("]
    lines += [f"(X_{i} {v!r})" for i, v in enumerate(xs.tolist())]
    lines += [f"(Y_{j} {v!r})" for j, v in enumerate(ys.tolist())]
    lines.append(")")
    return "\n".join(lines)


def parse_counterexample(text: str, source: str = "<string>") -> tuple[np.ndarray, np.ndarray]:
    """Read a counterexample (optionally preceded by a ``sat`` result line).

    Layout is free: entries may share lines, spacing and blank lines do not matter, and
    ``;`` comments are skipped. Entries may come in any order, but the indices of X (and
    of Y) must be exactly ``0..n-1``. A counterexample without Y entries gives an empty y.

    Returns:
        ``(x, y)`` as float64 vectors.

    Raises:
        VnnlibError: the text is not a counterexample (located by line and column).
    """
    loc = Locator(text, source)
    tokens = list(iter_tokens(text))
    pos = 0
    if tokens and tokens[0].kind == SYMBOL:
        word = tokens[0].text
        if word.lower() in _RESULTS:
            raise loc.error(tokens[0].offset, f"result is {word!r}: there is no counterexample")
        if word.lower() == "sat":
            pos = 1
    end = len(text)
    values: dict[str, dict[int, tuple[float, int]]] = {"X": {}, "Y": {}}
    _expect(tokens, pos, OPEN, loc, end, "'(' starting the counterexample")
    pos += 1
    while pos < len(tokens) and tokens[pos].kind == OPEN:
        _entry(tokens[pos : pos + 4], loc, end, values)
        pos += 4
    _expect(tokens, pos, CLOSE, loc, end, "'(' starting an entry or ')' ending the list")
    if pos + 1 < len(tokens):
        raise loc.error(tokens[pos + 1].offset, "unexpected text after the counterexample")
    if not values["X"]:
        raise loc.error(tokens[pos].offset, "the counterexample has no X_i entries")
    return _vector(values["X"], "X", loc), _vector(values["Y"], "Y", loc)


def _expect(tokens: list[Token], pos: int, kind: int, loc: Locator, end: int, what: str) -> None:
    """Raise unless ``tokens[pos]`` exists and has ``kind``."""
    if pos >= len(tokens):
        raise loc.error(end, f"unexpected end of input; expected {what}")
    if tokens[pos].kind != kind:
        raise loc.error(tokens[pos].offset, f"expected {what}, found {tokens[pos].text!r}")


def _entry(
    tokens: list[Token], loc: Locator, end: int, values: dict[str, dict[int, tuple[float, int]]]
) -> None:
    """One ``(NAME VALUE)`` entry (``tokens`` starts at its ``(``)."""
    _expect(tokens, 1, SYMBOL, loc, end, "a variable name X_i or Y_j")
    name = tokens[1]
    m = _NAME_RE.fullmatch(name.text)
    if m is None:
        raise loc.error(name.offset, f"expected a variable name X_i or Y_j, found {name.text!r}")
    _expect(tokens, 2, NUMBER, loc, end, f"a number after {name.text}")
    _expect(tokens, 3, CLOSE, loc, end, f"')' closing the entry of {name.text}")
    value = float(tokens[2].text)
    if not np.isfinite(value):
        raise loc.error(tokens[2].offset, f"value {tokens[2].text!r} is out of range")
    table = values[m.group(1)]
    index = int(m.group(2))
    if index in table:
        line, _ = loc.line_col(table[index][1])
        raise loc.error(name.offset, f"duplicate entry for {name.text} (first on line {line})")
    table[index] = (value, name.offset)


def _vector(table: dict[int, tuple[float, int]], letter: str, loc: Locator) -> np.ndarray:
    """The values ``0..n-1`` of one variable family, checking for gaps."""
    n = len(table)
    if table and max(table) != n - 1:
        missing = next(i for i in range(n) if i not in table)
        after = min(i for i in table if i > missing)
        raise loc.error(table[after][1], f"{letter}_{after} is given but {letter}_{missing} is not")
    return np.array([table[i][0] for i in range(n)], dtype=np.float64)


def read_counterexample(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``parse_counterexample`` of a file (plain or gzip-compressed).

    Raises:
        VnnlibError: the file is missing, unreadable or not a counterexample.
    """
    return parse_counterexample(read_text(path), str(path))
