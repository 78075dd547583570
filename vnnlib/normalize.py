"""Assertions -> disjunctive normal form -> ``Spec`` (a tuple of ``SpecCase``).

A DNF is a list of clauses (the disjuncts). To keep ``and`` over large ``or`` cheap, a
clause is a tuple of *segments*, and a segment is a tuple of atomic constraints that is
shared by every clause built from it. Distributing ``(and A (or B1 ... Bk))`` therefore
costs ``k`` small tuples, not ``k`` copies of ``A``. Turning a segment into arrays is
done once per segment, and the box of a clause is computed once per distinct set of
box-contributing segments, so clauses that share a box share the same arrays.

Cases whose box is empty (some lower bound above its upper bound) are dropped with a
logged warning. When no case remains, the property holds trivially and the spec has
zero cases. Every input must have a finite lower and upper bound in every remaining case.
"""

from __future__ import annotations

import itertools
import logging
from typing import NamedTuple

import numpy as np

from vnnlib.parser import ParsedVnnlib
from vnnlib.spec import Spec, SpecCase
from vnnlib.syntax import And, BoolExpr, InputBound, OutputRow, Truth

logger = logging.getLogger(__name__)

#: Default cap on the number of DNF cases (``max_cases``).
DEFAULT_MAX_CASES = 1_000_000

Atom = InputBound | OutputRow
_ATOM_TYPES = frozenset({InputBound, OutputRow})
Segment = tuple[Atom, ...]
Clause = tuple[Segment, ...]


class _TooManyCases(Exception):
    """Internal: the DNF would exceed the case limit (carries the would-be size)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _dnf_and(kids: list[list[Clause]], limit: int) -> list[Clause]:
    """DNF of a conjunction of DNFs (units merged into one shared segment)."""
    if any(not kid for kid in kids):
        return []
    unit_atoms: list[Atom] = []
    multi: list[list[Clause]] = []
    size = 1
    for kid in kids:
        if len(kid) == 1:
            for segment in kid[0]:
                unit_atoms.extend(segment)
        else:
            multi.append(kid)
            size *= len(kid)
            if size > limit:
                raise _TooManyCases(size)
    base: Clause = (tuple(unit_atoms),) if unit_atoms else ()
    if not multi:
        return [base]
    chain = itertools.chain.from_iterable
    return [base + tuple(chain(combo)) for combo in itertools.product(*multi)]


def _dnf_or(kids: list[list[Clause]], limit: int) -> list[Clause]:
    """DNF of a disjunction of DNFs."""
    size = sum(len(kid) for kid in kids)
    if size > limit:
        raise _TooManyCases(size)
    return list(itertools.chain.from_iterable(kids))


def _to_dnf(expr: BoolExpr, limit: int) -> list[Clause]:
    """Disjunctive normal form of ``expr``, by an iterative post-order walk (no recursion).

    Raises:
        _TooManyCases: the DNF would have more than ``limit`` clauses.
    """
    todo: list[tuple[BoolExpr, bool]] = [(expr, False)]
    done: list[list[Clause]] = []
    while todo:
        node, expanded = todo.pop()
        kind = type(node)
        if kind is InputBound or kind is OutputRow:
            done.append([((node,),)])
        elif kind is Truth:
            done.append([()] if node.value else [])
        elif expanded:  # the children's DNFs are the last len(children) entries of done
            n = len(node.children)
            kids = done[len(done) - n :]
            del done[len(done) - n :]
            done.append(_dnf_and(kids, limit) if kind is And else _dnf_or(kids, limit))
        elif all(type(c) in _ATOM_TYPES for c in node.children):
            # Shortcut for the common flat case (and atom ...) / (or atom ...).
            if kind is And:
                done.append([(node.children,)])
            else:
                done.append(_dnf_or([[((c,),)] for c in node.children], limit))
        else:
            todo.append((node, True))
            todo.extend((child, False) for child in reversed(node.children))
    return done[0]


def _spec_dnf(parsed: ParsedVnnlib, limit: int) -> list[Clause]:
    """DNF of the conjunction of all assertions, with errors located at an assertion."""
    atoms: list[Atom] = []  # top-level atomic constraints: one shared segment
    dnfs: list[list[Clause]] = []
    size = 1
    for expr, offset in zip(parsed.assertions, parsed.assertion_offsets, strict=True):
        kind = type(expr)
        if kind is InputBound or kind is OutputRow:
            atoms.append(expr)
            continue
        try:
            dnf = _to_dnf(expr, limit)
            size *= max(len(dnf), 1)
            if size > limit:
                raise _TooManyCases(size)
        except _TooManyCases as exc:
            raise parsed.locator.error(
                offset,
                f"the disjunctive normal form has more than {limit} cases "
                f"(at least {exc.size} at this assertion); the spec is too large",
            ) from None
        dnfs.append(dnf)
    return _dnf_and([[(tuple(atoms),)], *dnfs], limit)


class _Part(NamedTuple):
    """Arrays of one segment: its box bounds (None: no input atom) and output rows."""

    lower: np.ndarray | None
    upper: np.ndarray | None
    C: np.ndarray | None
    d: np.ndarray | None


def _readonly(a: np.ndarray) -> np.ndarray:
    """Freeze ``a`` in place, first turning -0.0 into 0.0 (so equal boxes compare equal)."""
    np.add(a, 0.0, out=a)
    a.flags.writeable = False
    return a


def _bounds(bounds: list[InputBound], n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """The box of a list of input bounds (unbounded where no bound is given)."""
    lower, upper = np.full(n_in, -np.inf), np.full(n_in, np.inf)
    lo = [(b.index, b.value) for b in bounds if not b.upper]
    hi = [(b.index, b.value) for b in bounds if b.upper]
    if lo:
        idx, val = zip(*lo, strict=True)
        np.maximum.at(lower, np.array(idx, dtype=np.intp), np.array(val))
    if hi:
        idx, val = zip(*hi, strict=True)
        np.minimum.at(upper, np.array(idx, dtype=np.intp), np.array(val))
    return _readonly(lower), _readonly(upper)


def _rows(rows: list[OutputRow], n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``C`` and ``d`` of a list of output rows (coefficients within a row are distinct)."""
    C = np.zeros((len(rows), n_out))
    for i, row in enumerate(rows):
        for j, coef in row.coeffs:
            C[i, j] = coef
    d = np.fromiter((row.rhs for row in rows), dtype=np.float64, count=len(rows))
    return _readonly(C), _readonly(d)


def _segment_part(segment: Segment, n_in: int, n_out: int) -> _Part:
    """Turn one segment's atoms into box bounds and output rows."""
    bounds = [a for a in segment if type(a) is InputBound]
    rows = [a for a in segment if type(a) is OutputRow]
    lower, upper = _bounds(bounds, n_in) if bounds else (None, None)
    C, d = _rows(rows, n_out) if rows else (None, None)
    return _Part(lower, upper, C, d)


class _Box(NamedTuple):
    """A clause's input box and its verdicts (the first offending input, or None)."""

    lower: np.ndarray
    upper: np.ndarray
    empty: int | None  # an input whose lower bound is above its upper bound
    unbounded: tuple[int, str] | None  # an input without a finite "lower"/"upper" bound


def _first(mask: np.ndarray) -> int | None:
    """Index of the first true entry of ``mask``, or None."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


class _CaseBuilder:
    """Materialises clauses into SpecCases, sharing arrays between clauses."""

    def __init__(self, n_in: int, n_out: int) -> None:
        self.n_in, self.n_out = n_in, n_out
        self.parts: dict[int, tuple[Segment, _Part]] = {}
        self.boxes: dict[tuple[int, ...], _Box] = {}
        self.by_content: dict[tuple[bytes, bytes], tuple[np.ndarray, np.ndarray]] = {}
        self.no_rows = (_readonly(np.zeros((0, n_out))), _readonly(np.zeros(0)))

    def part(self, segment: Segment) -> _Part:
        """The cached arrays of ``segment``."""
        hit = self.parts.get(id(segment))
        if hit is None:
            hit = (segment, _segment_part(segment, self.n_in, self.n_out))
            self.parts[id(segment)] = hit
        return hit[1]

    def box(self, parts: list[_Part], key: tuple[int, ...]) -> _Box:
        """The box of the intersection of ``parts`` (cached under ``key``)."""
        box = self.boxes.get(key)
        if box is not None:
            return box
        if not parts:
            lower, upper = _bounds([], self.n_in)
        elif len(parts) == 1:
            lower, upper = parts[0].lower, parts[0].upper  # already read-only: share them
        else:
            lower = _readonly(np.maximum.reduce([p.lower for p in parts]))
            upper = _readonly(np.minimum.reduce([p.upper for p in parts]))
            # Equal boxes built from different segments share one pair of arrays.
            lower, upper = self.by_content.setdefault(
                (lower.tobytes(), upper.tobytes()), (lower, upper)
            )
        low, high = _first(~np.isfinite(lower)), _first(~np.isfinite(upper))
        unbounded = (
            (low, "lower") if low is not None else (high, "upper") if high is not None else None
        )
        box = _Box(lower, upper, _first(lower > upper), unbounded)
        self.boxes[key] = box
        return box

    def case(self, clause: Clause) -> tuple[_Box, np.ndarray, np.ndarray]:
        """The box (with verdicts) and the output constraints ``C``, ``d`` of ``clause``."""
        parts = [self.part(segment) for segment in clause]
        boxed = [(id(s), p) for s, p in zip(clause, parts, strict=True) if p.lower is not None]
        box = self.box([p for _, p in boxed], tuple(i for i, _ in boxed))
        rows = [p for p in parts if p.C is not None]
        if not rows:
            return box, *self.no_rows
        if len(rows) == 1:
            return box, rows[0].C, rows[0].d
        return box, np.concatenate([p.C for p in rows]), np.concatenate([p.d for p in rows])


def normalize(parsed: ParsedVnnlib, max_cases: int = DEFAULT_MAX_CASES) -> Spec:
    """Turn parsed assertions into a ``Spec`` in disjunctive normal form.

    Args:
        parsed: the parser's output.
        max_cases: the largest number of DNF cases accepted.

    Returns:
        The spec; it has zero cases when every case has an empty input box.

    Raises:
        VnnlibError: the DNF exceeds ``max_cases``, or an input lacks a finite bound.
    """
    clauses = _spec_dnf(parsed, max_cases)
    builder = _CaseBuilder(parsed.n_inputs, parsed.n_outputs)
    cases: list[SpecCase] = []
    dropped: list[tuple[int, _Box]] = []
    for k, clause in enumerate(clauses):
        box, C, d = builder.case(clause)
        if box.empty is not None:
            dropped.append((k, box))
            continue
        if box.unbounded is not None:
            index, which = box.unbounded
            where = f" in disjunct {k} of {len(clauses)}" if len(clauses) > 1 else ""
            raise parsed.locator.error(
                parsed.input_offsets[index],
                f"input X_{index} has no finite {which} bound{where}; "
                "every input needs a finite lower and upper bound",
            )
        cases.append(SpecCase(box.lower, box.upper, C, d))
    if dropped:
        _log_dropped(parsed.source, dropped, len(clauses))
    return Spec(tuple(cases), parsed.n_inputs, parsed.n_outputs, parsed.source)


def _log_dropped(source: str, dropped: list[tuple[int, _Box]], total: int) -> None:
    """Warn about cases dropped for an empty input box."""
    k, box = dropped[0]
    i = box.empty
    logger.warning(
        "%s: dropped %d of %d case(s) whose input box is empty; the first is case %d, where "
        "X_%d has lower bound %r above upper bound %r%s",
        source,
        len(dropped),
        total,
        k,
        i,
        float(box.lower[i]),
        float(box.upper[i]),
        "; no case is left, so the property holds trivially" if len(dropped) == total else "",
    )
