"""The normalised specification: a disjunction of (input box, output polytope) cases.

Sign convention (the only one in this package): a case describes a **violation**. The
property is violated iff for some case the input ``x`` lies in the box
``lower <= x <= upper`` and the output ``y`` satisfies every row of ``C @ y <= d``. A case
with ``m = 0`` rows is violated by any output once ``x`` is in its box. A spec with no
cases can never be violated (the property holds trivially).

All arrays are float64 and read-only; cases may share box arrays (identical boxes from
one disjunction are the same object), so never write into them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Group = tuple[np.ndarray, np.ndarray, tuple[tuple[np.ndarray, np.ndarray], ...]]


def _frozen(array: np.ndarray, ndim: int, name: str) -> np.ndarray:
    """A read-only float64 array of ``ndim`` dimensions (copied if writeable)."""
    out = np.asarray(array, dtype=np.float64)
    if out.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {out.shape}")
    if out.flags.writeable:
        out = out.copy() if out is array else out
        out.flags.writeable = False
    return out


@dataclass(frozen=True, slots=True, eq=False)
class SpecCase:
    """One disjunct of the violation condition: ``x`` in a box and ``C @ y <= d``.

    Attributes:
        lower: input lower bounds, shape ``[n_in]``.
        upper: input upper bounds, shape ``[n_in]``.
        C: output constraint matrix, shape ``[m, n_out]`` (``m`` may be 0).
        d: output constraint right-hand sides, shape ``[m]``.
    """

    lower: np.ndarray
    upper: np.ndarray
    C: np.ndarray
    d: np.ndarray

    def __post_init__(self) -> None:
        for name, ndim in (("lower", 1), ("upper", 1), ("C", 2), ("d", 1)):
            object.__setattr__(self, name, _frozen(getattr(self, name), ndim, name))
        if self.lower.shape != self.upper.shape:
            raise ValueError(f"lower {self.lower.shape} and upper {self.upper.shape} differ")
        if self.C.shape[0] != self.d.shape[0]:
            raise ValueError(f"C has {self.C.shape[0]} rows but d has {self.d.shape[0]}")

    @property
    def n_inputs(self) -> int:
        """Number of input variables."""
        return int(self.lower.shape[0])

    @property
    def n_outputs(self) -> int:
        """Number of output variables."""
        return int(self.C.shape[1])

    def input_contains(self, x: np.ndarray, atol: float = 0.0) -> bool:
        """Whether ``x`` (any shape, flattened) lies in the box widened by ``atol``."""
        x = _flat(x, self.n_inputs, "x")
        return bool(np.all(x >= self.lower - atol) and np.all(x <= self.upper + atol))

    def output_violates(self, y: np.ndarray, atol: float = 0.0) -> bool:
        """Whether ``y`` (any shape, flattened) satisfies every row of ``C @ y <= d + atol``."""
        y = _flat(y, self.n_outputs, "y")
        return bool(np.all(self.C @ y <= self.d + atol))

    def is_violated(self, x: np.ndarray, y: np.ndarray, atol: float = 0.0) -> bool:
        """Whether the pair ``(x, y)`` lies in this violation case (within ``atol``)."""
        return self.input_contains(x, atol) and self.output_violates(y, atol)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpecCase):
            return NotImplemented
        return (
            all(
                np.array_equal(getattr(self, f), getattr(other, f))
                for f in ("lower", "upper", "C", "d")
            )
            and self.C.shape == other.C.shape
        )

    __hash__ = None  # type: ignore[assignment]


def _flat(v: np.ndarray, n: int, name: str) -> np.ndarray:
    """A float64 vector of exactly ``n`` values."""
    out = np.asarray(v, dtype=np.float64).reshape(-1)
    if out.shape[0] != n:
        raise ValueError(f"{name} has {out.shape[0]} values, the spec expects {n}")
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Spec:
    """A whole VNN-LIB property: violated iff any of ``cases`` is.

    Attributes:
        cases: the disjuncts, in the order they appear in the disjunctive normal form.
        n_inputs: number of declared inputs ``X_i``.
        n_outputs: number of declared outputs ``Y_j``.
        source: where the spec came from (file name or ``"<string>"``).
    """

    cases: tuple[SpecCase, ...]
    n_inputs: int
    n_outputs: int
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "cases", tuple(self.cases))
        for i, case in enumerate(self.cases):
            if case.n_inputs != self.n_inputs or case.n_outputs != self.n_outputs:
                raise ValueError(
                    f"case {i} has {case.n_inputs} inputs/{case.n_outputs} outputs, "
                    f"spec has {self.n_inputs}/{self.n_outputs}"
                )

    @property
    def trivially_holds(self) -> bool:
        """True when no case is left: nothing can violate the property."""
        return not self.cases

    def groups(self) -> tuple[Group, ...]:
        """Group cases that share an identical input box, in first-seen order.

        Returns:
            Tuples ``(lower, upper, ((C, d), ...))``: bound each box once for all the
            output polytopes that go with it.
        """
        index: dict[tuple[bytes, bytes], int] = {}
        by_id: dict[tuple[int, int], int] = {}
        boxes: list[tuple[np.ndarray, np.ndarray]] = []
        members: list[list[tuple[np.ndarray, np.ndarray]]] = []
        for case in self.cases:
            ident = (id(case.lower), id(case.upper))
            g = by_id.get(ident)
            if g is None:
                key = (case.lower.tobytes(), case.upper.tobytes())
                g = index.setdefault(key, len(boxes))
                by_id[ident] = g
                if g == len(boxes):
                    boxes.append((case.lower, case.upper))
                    members.append([])
            members[g].append((case.C, case.d))
        return tuple((lo, hi, tuple(m)) for (lo, hi), m in zip(boxes, members, strict=True))

    def find_violated_case(self, x: np.ndarray, y: np.ndarray, atol: float = 0.0) -> int | None:
        """Index of the first case that ``(x, y)`` violates within ``atol``, else None."""
        x = _flat(x, self.n_inputs, "x")
        y = _flat(y, self.n_outputs, "y")
        for i, case in enumerate(self.cases):
            if case.is_violated(x, y, atol):
                return i
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spec):
            return NotImplemented
        return (
            self.n_inputs == other.n_inputs
            and self.n_outputs == other.n_outputs
            and self.source == other.source
            and len(self.cases) == len(other.cases)
            and all(a == b for a, b in zip(self.cases, other.cases, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]
