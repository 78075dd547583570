"""S-expression tokens for VNN-LIB, with offsets that map to line/column lazily.

The scanner is one compiled regular expression used with ``finditer``; each match is
leading whitespace followed by one token, or by a comment (a match without a capturing
group). Every character except trailing whitespace belongs to some match, so nothing is
skipped silently. Its only nested repetition, ``(?:SPACE+ATOM)*``, alternates disjoint
character classes, so a failed attempt backtracks over at most one list and scanning
stays linear in the text length.

Two *fused* alternatives recognise frequent shapes in one match: a top-level bound
``(assert (OP NAME NUMBER))`` (most lines of real specs), and a *flat list*
``(HEAD ATOM ...)`` without nested parentheses or comments (declarations, simple
comparisons, ``(* -1 Y_3)``). They are purely an optimisation: the text they match means
the same as that text scanned as separate parenthesis/atom tokens, which is what
``iter_tokens`` yields and what the parser falls back to for anything unusual.

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
_END = r"(?![^\s();])"  # a number ends at whitespace, a parenthesis, a comment or EOF

# Capturing-group numbers; ``match.lastindex`` identifies the token kind.
BOUND_OP, BOUND_NAME, BOUND_VALUE = 1, 2, 3  # fused (assert (OP NAME NUMBER))
FLAT_HEAD, FLAT_REST = 4, 5  # fused (HEAD ATOM ...): the head and the rest of the atoms
OPEN = 6  # an empty group right after the "(" (so the "(" is at ``match.end() - 1``)
CLOSE = 7
NUMBER = 8
SYMBOL = 9

_BOUND = rf"\s*assert\s*\(\s*(<=|>=|<|>)\s+{_ATOM}\s+({NUMBER_PATTERN})\s*\)"
_FLAT = r"\s*([^\s();]+)((?:\s+[^\s();]+)*)"

#: The scanner: leading whitespace, then one token (or fused statement), or a comment
#: (a match without groups). Only whitespace at the very end of the text is not matched.
TOKEN_RE = re.compile(
    rf"\s*(?:\((?:(?:{_BOUND}|{_FLAT})\s*\)|())|(\))|({NUMBER_PATTERN}){_END}|{_ATOM}|;[^\n]*)"
)

_KIND_NAMES = {OPEN: "(", CLOSE: ")", NUMBER: "number", SYMBOL: "symbol"}
_PLAIN_RE = re.compile(rf"\s*(?:(\()|(\))|({NUMBER_PATTERN}){_END}|{_ATOM}|;[^\n]*)")
_PLAIN_KINDS = (None, OPEN, CLOSE, NUMBER, SYMBOL)


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
    for m in _PLAIN_RE.finditer(text):
        group = m.lastindex
        if group is not None:
            yield Token(_PLAIN_KINDS[group], m.group(group), m.start(group))


_SPACE_RE = re.compile(r"\s*")


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
        """Build a VnnlibError located at ``offset`` (the caller raises it).

        Whitespace at ``offset`` is skipped first, so the offset of a match that begins
        with leading whitespace locates the token itself.
        """
        m = _SPACE_RE.match(self._text, offset)
        line, col = self.line_col(m.end() if m else offset)
        return VnnlibError(self.source, line, col, what)
