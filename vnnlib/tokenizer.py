"""S-expression tokens for VNN-LIB, with offsets that map to line/column lazily.

The scanner is one compiled regular expression used with ``finditer``; each match is one
token, or a run of whitespace/comments (a match without a capturing group). Every
character of the text belongs to some match, so nothing is skipped silently. The
expression has no nested quantifiers, so scanning is linear in the text length.

Three *fused* alternatives recognise the most frequent statements in one match:
``(declare-const NAME TYPE)``, ``(assert (OP A B))`` and ``(OP A B)`` where ``OP`` is a
comparison and ``A``/``B`` are atoms. They are purely an optimisation: a text they match
means the same as the same text scanned as separate parenthesis/atom tokens, and
``iter_tokens(fused=False)`` gives the plain token stream.

Line and column numbers are never computed while scanning. A ``Locator`` turns an offset
into ``(line, col)`` on demand, which only happens when an error is reported.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from typing import NamedTuple

from vnnlib.errors import VnnlibError

#: A decimal number: optional sign, digits with optional fraction, optional exponent.
NUMBER_PATTERN = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
NUMBER_RE = re.compile(NUMBER_PATTERN)

_ATOM = r"([^\s();]+)"
_END = r"(?![^\s();])"  # a token ends at whitespace, a parenthesis, a comment or EOF
_WS = r"(?:\s|;[^\n]*)"
_CMP = r"(<=|>=|<|>)"

# Capturing-group numbers; ``match.lastindex`` identifies the token kind.
DECL_NAME, DECL_TYPE = 1, 2  # fused (declare-const NAME TYPE)
ACMP_OP, ACMP_A, ACMP_B = 3, 4, 5  # fused (assert (OP A B))
CMP_OP, CMP_A, CMP_B = 6, 7, 8  # fused (OP A B)
OPEN = 9
CLOSE = 10
NUMBER = 11
SYMBOL = 12

_PLAIN = rf"{_WS}+|(\()|(\))|({NUMBER_PATTERN}){_END}|{_ATOM}"
_FUSED_DECL = rf"\({_WS}*declare-const{_WS}+{_ATOM}{_WS}+{_ATOM}{_WS}*\)"
_FUSED_CMP = rf"\({_WS}*{_CMP}{_WS}+{_ATOM}{_WS}+{_ATOM}{_WS}*\)"
_FUSED_ACMP = rf"\({_WS}*assert{_WS}*{_FUSED_CMP}{_WS}*\)"

#: The scanner used by the parser (fused alternatives first, then plain tokens).
TOKEN_RE = re.compile(
    rf"{_FUSED_DECL}|{_FUSED_ACMP}|{_FUSED_CMP}|{_PLAIN.replace(_WS + '+|', '', 1)}"
    rf"|{_WS}+"
)
#: The scanner without fused alternatives; its groups are numbered as in ``TOKEN_RE``.
PLAIN_RE = re.compile(r"(?!)()()()()()()()()" + rf"|{_PLAIN}")

assert TOKEN_RE.groups == SYMBOL and PLAIN_RE.groups == SYMBOL  # noqa: S101

_KIND_NAMES = {OPEN: "(", CLOSE: ")", NUMBER: "number", SYMBOL: "symbol"}


class Token(NamedTuple):
    """One plain token: ``kind`` is OPEN, CLOSE, NUMBER or SYMBOL."""

    kind: int
    text: str
    offset: int

    @property
    def kind_name(self) -> str:
        """Human-readable kind (for messages)."""
        return _KIND_NAMES[self.kind]


def iter_tokens(text: str) -> Iterator[Token]:
    """Yield the plain tokens of ``text`` (comments and whitespace dropped)."""
    for m in PLAIN_RE.finditer(text):
        kind = m.lastindex
        if kind is not None:
            yield Token(kind, m.group(kind), m.start())


class Locator:
    """Maps character offsets of one text to 1-based (line, column) pairs.

    The newline index is built on first use, so creating a Locator is free.
    """

    __slots__ = ("_text", "_newlines", "source")

    def __init__(self, text: str, source: str) -> None:
        self._text = text
        self._newlines: list[int] | None = None
        self.source = source

    def line_col(self, offset: int) -> tuple[int, int]:
        """Return the 1-based line and column of ``offset``."""
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self._text)]
        line = bisect.bisect_left(self._newlines, offset)
        line_start = self._newlines[line - 1] + 1 if line > 0 else 0
        return line + 1, offset - line_start + 1

    def error(self, offset: int, what: str) -> VnnlibError:
        """Build a VnnlibError located at ``offset`` (the caller raises it)."""
        line, col = self.line_col(offset)
        return VnnlibError(self.source, line, col, what)
