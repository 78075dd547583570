"""VNN-LIB text -> declared variables and assertions (see ``vnnlib.syntax`` for the AST).

One pass over the tokens of ``vnnlib.tokenizer`` with an explicit stack of open
expressions: an expression is reduced when its ``)`` arrives and its value is appended to
the enclosing one. There is no recursion, so neither deep nesting nor long flat lists can
exhaust the Python stack.

Supported commands: ``declare-const NAME Real``, ``declare-fun NAME () Real``, ``assert``,
and (ignored) ``check-sat``, ``get-model``, ``exit``, ``set-logic``, ``set-info``,
``set-option``. Variables must be named ``X_<i>`` (inputs) or ``Y_<j>`` (outputs) and
declared before use. Operators: ``and``, ``or``, ``<=``, ``>=``, ``<``, ``>``, ``=``
(chains like ``(<= a b c)`` mean ``a <= b and b <= c``), ``+``, ``-``, ``*``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from vnnlib.errors import VnnlibError
from vnnlib.syntax import (
    BOOL_TYPES,
    TERM_TYPES,
    And,
    BoolExpr,
    InputBound,
    LinearityError,
    Or,
    OutputRow,
    Term,
    leq,
    lin_product,
    lin_sum,
)
from vnnlib.tokenizer import (
    BOUND_NAME,
    BOUND_OP,
    BOUND_VALUE,
    CLOSE,
    FLAT_HEAD,
    FLAT_REST,
    NUMBER,
    NUMBER_RE,
    OPEN,
    TOKEN_RE,
    Locator,
    iter_tokens,
)

_VAR_NAME_RE = re.compile(r"([XY])_(0|[1-9][0-9]*)")
# Commands whose arguments are kept as raw words (names, types, options), not terms.
_RAW_COMMANDS = frozenset(
    {"declare-const", "declare-fun", "check-sat", "get-model", "exit"}
    | {"set-logic", "set-info", "set-option"}
)
_PAIR_COMPARISONS = frozenset({"<=", ">=", "<", ">"})


def _finite_number(word: str) -> float | None:
    """``word`` as a float if it is a well-formed, finite number, else None."""
    if NUMBER_RE.fullmatch(word):
        value = float(word)
        if value - value == 0.0:
            return value
    return None


class _Replay(Exception):
    """Internal: a fused match needs the exact token-by-token path."""


class _Empty:
    """The value of ``()``: only meaningful as the argument list of ``declare-fun``."""

    __slots__ = ()


_EMPTY = _Empty()
_tuple_new = tuple.__new__  # what NamedTuple.__new__ calls, minus a Python-level frame


@dataclass(frozen=True, slots=True)
class ParsedVnnlib:
    """The result of parsing: declarations and assertions, before normalisation.

    Attributes:
        source: name of the text (file name or ``"<string>"``).
        n_inputs: number of declared ``X_i``.
        n_outputs: number of declared ``Y_j``.
        assertions: the constraint of each top-level assertion, in text order (the
            spec is their conjunction).
        assertion_offsets: the text offset of each assertion (for error messages).
        input_offsets: offset of the declaration of each ``X_i`` (for error messages).
        locator: maps offsets of the text to line/column.
    """

    source: str
    n_inputs: int
    n_outputs: int
    assertions: tuple[BoolExpr, ...]
    assertion_offsets: tuple[int, ...]
    input_offsets: tuple[int, ...]
    locator: Locator


class _Frame:
    """An open expression: ``(head arg arg ...`` waiting for its ``)``."""

    __slots__ = ("start", "head", "head_offset", "args", "offsets")

    def __init__(self, start: int) -> None:
        self.start = start
        self.head: str | None = None
        self.head_offset = start
        self.args: list = []
        self.offsets: list[int] = []


def parse(text: str, source: str = "<string>") -> ParsedVnnlib:
    """Parse VNN-LIB text into declarations and assertions.

    Args:
        text: the VNN-LIB source.
        source: name used in error messages.

    Returns:
        The parsed declarations and assertions.

    Raises:
        VnnlibError: the text is malformed or uses unsupported constructs.
    """
    return _Parser(text, source).run()


def _describe(value: object) -> str:
    """Name the kind of a parsed value for error messages."""
    if isinstance(value, BOOL_TYPES):
        return "a constraint"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the variable {value!r}"
    if value is _EMPTY:
        return "'()'"
    return "a linear term"


class _Parser:
    """Stack machine over the token stream; see ``parse``."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.loc = Locator(text, source)
        self.variables: dict[str, tuple[bool, int]] = {}
        self.decl_offsets: dict[str, int] = {}
        self.assertions: list[BoolExpr] = []
        self.assertion_offsets: list[int] = []
        self.stack: list[_Frame] = []

    def run(self) -> ParsedVnnlib:
        """Scan the whole text and return the parse result."""
        stack = self.stack
        variables = self.variables
        add_expr, add_offset = self.assertions.append, self.assertion_offsets.append
        for m in TOKEN_RE.finditer(self.text):
            kind = m.lastindex
            if kind is None:
                continue
            if kind == BOUND_VALUE:
                # Inline fast path for "(assert (OP NAME NUMBER))", most lines of real specs.
                op, name, number = m.group(BOUND_OP, BOUND_NAME, BOUND_VALUE)
                var = variables.get(name)
                value = float(number)
                if var is None or stack or value - value != 0.0:
                    self._replay(m)
                    continue
                if var[0]:
                    add_expr(_tuple_new(InputBound, (var[1], op[0] == "<", value)))
                elif op[0] == "<":
                    add_expr(_tuple_new(OutputRow, (((var[1], 1.0),), value)))
                else:
                    add_expr(_tuple_new(OutputRow, (((var[1], -1.0),), -value)))
                add_offset(m.start())
            elif kind == FLAT_REST:
                self._flat(m)
            elif kind == OPEN:
                stack.append(_Frame(m.end() - 1))
            elif kind == CLOSE:
                self._close(m.start(CLOSE))
            else:
                self._atom(kind == NUMBER, m.group(kind), m.start(kind))
        self._check_closed()
        return self._finish()

    def _check_closed(self) -> None:
        """Raise if an expression is still open at the end of the text."""
        if self.stack:
            line, col = self.loc.line_col(self.stack[-1].start)
            raise self.loc.error(
                len(self.text),
                f"unexpected end of input: {len(self.stack)} unclosed '(' "
                f"(innermost opened at line {line}, column {col})",
            )

    # -- fused matches -----------------------------------------------------------------------

    def _replay(self, m: re.Match[str]) -> None:
        """Process a fused match token by token: the exact path, with exact error offsets."""
        base = m.start()
        for token in iter_tokens(m.group()):
            offset = base + token.offset
            if token.kind == OPEN:
                self.stack.append(_Frame(offset))
            elif token.kind == CLOSE:
                self._close(offset)
            else:
                self._atom(token.kind == NUMBER, token.text, offset)

    def _flat(self, m: re.Match[str]) -> None:
        """A flat list ``(HEAD ATOM ...)``; a comparison of two atoms is the fast case."""
        head, rest = m.group(FLAT_HEAD, FLAT_REST)
        stack = self.stack
        if stack and head in _PAIR_COMPARISONS:
            words = rest.split()
            parent = stack[-1]
            if len(words) == 2 and parent.head in _EXPRESSION_PARENTS:
                variables = self.variables
                a, b = words
                ta = a if a in variables else _finite_number(a)
                tb = b if b in variables else _finite_number(b)
                if ta is not None and tb is not None:
                    try:
                        value = leq(ta, tb, variables) if head[0] == "<" else leq(tb, ta, variables)
                    except LinearityError:
                        self._replay(m)  # raises the error at its exact place
                        return
                    parent.args.append(value)
                    parent.offsets.append(m.start())
                    return
        self._flat_general(m, head, rest)

    def _flat_general(self, m: re.Match[str], head: str, rest: str) -> None:
        """Any other flat list; anything unusual is replayed token by token."""
        words = rest.split()
        stack = self.stack
        start = m.start()
        try:
            if not stack:
                if head != "declare-const" or len(words) != 2:
                    raise _Replay
                name_offset = m.start(FLAT_REST) + len(rest) - len(rest.lstrip())
                self._declare(words[0], words[1], name_offset, start)
                return
            handler = _OPERATORS.get(head)
            parent = stack[-1]
            if handler is None or parent.head not in _EXPRESSION_PARENTS:
                raise _Replay
            frame = _Frame(start)
            frame.head = head
            frame.args = [self._word(word) for word in words]
            frame.offsets = [start] * len(words)
            value = handler(self, frame)
        except (_Replay, VnnlibError):
            self._replay(m)  # raises the error at its exact place, or handles the rare case
            return
        parent.args.append(value)
        parent.offsets.append(start)

    def _word(self, word: str) -> Term:
        """An argument of a flat list: a declared variable or a finite number."""
        if word in self.variables:
            return word
        value = _finite_number(word)
        if value is None:
            raise _Replay
        return value

    # -- plain tokens ------------------------------------------------------------------------

    def _atom(self, is_number: bool, text: str, offset: int) -> None:
        """A plain number or symbol token: the head of an expression or an argument."""
        if not self.stack:
            raise self.loc.error(offset, f"expected '(' at top level, found {text!r}")
        frame = self.stack[-1]
        if frame.head is None:
            if is_number:
                raise self.loc.error(offset, f"expected an operator after '(', found {text!r}")
            if text not in _OPERATORS and text not in _COMMANDS:
                raise self.loc.error(offset, f"unknown operator {text!r}")
            frame.head = text
            frame.head_offset = offset
            return
        if frame.head in _RAW_COMMANDS:
            frame.args.append(text)
        elif is_number:
            frame.args.append(self._number(text, offset))
        else:
            frame.args.append(self._symbol(text, offset))
        frame.offsets.append(offset)

    def _number(self, text: str, offset: int) -> float:
        """A number token as a finite float."""
        value = float(text)
        if not math.isfinite(value):
            raise self.loc.error(offset, f"number {text!r} is out of range")
        return value

    def _symbol(self, text: str, offset: int) -> str:
        """A symbol in argument position: must be a declared variable."""
        if text in self.variables:
            return text
        if text[0] in "0123456789." or (
            len(text) > 1 and text[0] in "+-" and text[1] in ".0123456789"
        ):
            raise self.loc.error(offset, f"bad number {text!r}")
        if text in _OPERATORS or text in _COMMANDS:
            raise self.loc.error(offset, f"expected a term, found operator {text!r}")
        raise self.loc.error(offset, f"undeclared variable {text!r}")

    def _close(self, offset: int) -> None:
        """Reduce the innermost open expression at its ``)``."""
        stack = self.stack
        if not stack:
            raise self.loc.error(offset, "unbalanced ')': no matching '('")
        frame = stack.pop()
        if stack and stack[-1].head is None:
            raise self.loc.error(frame.start, "expected an operator after '(', found '('")
        head = frame.head
        if head is None:
            if not stack or stack[-1].head != "declare-fun":
                raise self.loc.error(frame.start, "empty expression '()'")
            value: object = _EMPTY
        elif head in _OPERATORS:
            if not stack:
                raise self.loc.error(
                    frame.start, f"expected a command at top level, found {head!r}"
                )
            value = _OPERATORS[head](self, frame)
        elif stack:
            raise self.loc.error(frame.start, f"{head!r} is only allowed at top level")
        else:
            _COMMANDS[head](self, frame)
            return
        stack[-1].args.append(value)
        stack[-1].offsets.append(frame.start)

    # -- operators --------------------------------------------------------------------------

    def _check(self, frame: _Frame, types: tuple[type, ...], what: str, minimum: int) -> None:
        """Check the argument count and that every argument is one of ``types``."""
        if len(frame.args) < minimum:
            raise self.loc.error(
                frame.start, f"{frame.head!r} expects at least {minimum} argument(s) ({what})"
            )
        for arg, offset in zip(frame.args, frame.offsets, strict=True):
            if not isinstance(arg, types):
                raise self.loc.error(
                    offset, f"{frame.head!r} expects {what}, found {_describe(arg)}"
                )

    def _compare(self, op: str, terms: list[Term], op_offset: int) -> BoolExpr:
        """The constraint ``terms[0] op terms[1] op ...`` (a chain is a conjunction)."""
        pairs = zip(terms[:-1], terms[1:], strict=True)
        try:
            if op in ("<=", "<"):
                atoms = [leq(a, b, self.variables) for a, b in pairs]
            elif op in (">=", ">"):
                atoms = [leq(b, a, self.variables) for a, b in pairs]
            else:
                atoms = [
                    And((leq(a, b, self.variables), leq(b, a, self.variables))) for a, b in pairs
                ]
        except LinearityError as exc:
            raise self.loc.error(op_offset, str(exc)) from None
        return atoms[0] if len(atoms) == 1 else And(tuple(atoms))

    def _op_compare(self, frame: _Frame) -> BoolExpr:
        """``(<= a b ...)`` and the other comparisons."""
        self._check(frame, TERM_TYPES, "terms", 2)
        return self._compare(frame.head or "", frame.args, frame.head_offset)

    def _op_and(self, frame: _Frame) -> BoolExpr:
        """``(and c ...)``."""
        self._check(frame, BOOL_TYPES, "constraints", 0)
        return frame.args[0] if len(frame.args) == 1 else And(tuple(frame.args))

    def _op_or(self, frame: _Frame) -> BoolExpr:
        """``(or c ...)``."""
        self._check(frame, BOOL_TYPES, "constraints", 0)
        return frame.args[0] if len(frame.args) == 1 else Or(tuple(frame.args))

    def _op_add(self, frame: _Frame) -> Term:
        """``(+ t ...)``."""
        self._check(frame, TERM_TYPES, "terms", 1)
        return lin_sum(frame.args, [1.0] * len(frame.args))

    def _op_sub(self, frame: _Frame) -> Term:
        """``(- t)`` (negation) or ``(- t u ...)``."""
        self._check(frame, TERM_TYPES, "terms", 1)
        n = len(frame.args)
        return lin_sum(frame.args, [-1.0] if n == 1 else [1.0] + [-1.0] * (n - 1))

    def _op_mul(self, frame: _Frame) -> Term:
        """``(* t ...)``; at most one factor may contain variables."""
        self._check(frame, TERM_TYPES, "terms", 1)
        try:
            return lin_product(frame.args)
        except LinearityError as exc:
            raise self.loc.error(frame.offsets[exc.arg], str(exc)) from None

    # -- commands ---------------------------------------------------------------------------

    def _cmd_assert(self, frame: _Frame) -> None:
        """``(assert c)``: one more conjunct of the spec."""
        self._check(frame, BOOL_TYPES, "one constraint", 1)
        if len(frame.args) != 1:
            raise self.loc.error(frame.offsets[1], "'assert' expects exactly one constraint")
        self.assertions.append(frame.args[0])
        self.assertion_offsets.append(frame.start)

    def _cmd_declare(self, frame: _Frame) -> None:
        """``(declare-const NAME Real)`` or ``(declare-fun NAME () Real)``."""
        args = frame.args
        fun = frame.head == "declare-fun"
        shape = [str, _Empty, str] if fun else [str, str]
        if len(args) != len(shape) or not all(
            isinstance(a, t) for a, t in zip(args, shape, strict=True)
        ):
            usage = "(declare-fun NAME () Real)" if fun else "(declare-const NAME Real)"
            raise self.loc.error(frame.start, f"malformed declaration; expected {usage}")
        self._declare(args[0], args[-1], frame.offsets[0], frame.offsets[-1])

    def _cmd_ignore(self, frame: _Frame) -> None:
        """Housekeeping commands such as ``(check-sat)``."""
        del frame

    def _declare(self, name: str, type_name: str, name_offset: int, type_offset: int) -> None:
        """Record a declaration after checking its name, type and uniqueness."""
        previous = self.decl_offsets.get(name)
        if previous is not None:
            line, col = self.loc.line_col(previous)
            raise self.loc.error(
                name_offset,
                f"duplicate declaration of {name!r} (first declared at line {line}, column {col})",
            )
        m = _VAR_NAME_RE.fullmatch(name)
        if m is None:
            raise self.loc.error(
                name_offset,
                f"unsupported variable name {name!r}: expected X_<i> (input) or Y_<j> (output)",
            )
        if type_name != "Real":
            raise self.loc.error(
                type_offset, f"variable {name!r} must have type Real, found {type_name!r}"
            )
        self.variables[name] = (m.group(1) == "X", int(m.group(2)))
        self.decl_offsets[name] = name_offset

    # -- end ----------------------------------------------------------------------------------

    def _finish(self) -> ParsedVnnlib:
        """Check the declarations and package the result."""
        if not self.variables and not self.assertions:
            raise self.loc.error(0, "empty spec: no declarations and no assertions")
        inputs = self._indexed(True)
        outputs = self._indexed(False)
        return ParsedVnnlib(
            source=self.loc.source,
            n_inputs=len(inputs),
            n_outputs=len(outputs),
            assertions=tuple(self.assertions),
            assertion_offsets=tuple(self.assertion_offsets),
            input_offsets=tuple(inputs),
            locator=self.loc,
        )

    def _indexed(self, is_input: bool) -> list[int]:
        """Declaration offsets of the inputs (or outputs) by index; checks for gaps."""
        found = {
            index: self.decl_offsets[name]
            for name, (inp, index) in self.variables.items()
            if inp == is_input
        }
        letter, word = ("X", "inputs") if is_input else ("Y", "outputs")
        n = len(found)
        if found and max(found) != n - 1:
            missing = next(i for i in range(n) if i not in found)
            after = min(i for i in found if i > missing)
            raise self.loc.error(
                found[after],
                f"{word} are not numbered consecutively: {letter}_{after} is declared "
                f"but {letter}_{missing} is not",
            )
        return [found[i] for i in range(n)]


_Handler = Callable[[_Parser, _Frame], object]
_OPERATORS: dict[str, _Handler] = {
    "and": _Parser._op_and,
    "or": _Parser._op_or,
    "<=": _Parser._op_compare,
    ">=": _Parser._op_compare,
    "<": _Parser._op_compare,
    ">": _Parser._op_compare,
    "=": _Parser._op_compare,
    "+": _Parser._op_add,
    "-": _Parser._op_sub,
    "*": _Parser._op_mul,
}
_EXPRESSION_PARENTS = frozenset(_OPERATORS) | {"assert"}
_COMMANDS: dict[str, _Handler] = {
    "assert": _Parser._cmd_assert,
    "declare-const": _Parser._cmd_declare,
    "declare-fun": _Parser._cmd_declare,
    **{name: _Parser._cmd_ignore for name in ("check-sat", "get-model", "exit")},
    **{name: _Parser._cmd_ignore for name in ("set-logic", "set-info", "set-option")},
}
