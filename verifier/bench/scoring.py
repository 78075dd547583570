"""VNN-COMP scoring (2023 onwards) of results.csv rows against expected.csv.

Per instance: a correct ``unsat``, or a correct ``sat`` whose counterexample checks, scores
+10; a wrong answer scores -150 (``unsat`` on an ``expected=sat`` row, or ``sat`` whose
witness does not check); anything else 0. On rows whose answer nobody knows
(``expected=unknown``) a checked ``sat`` scores +10 and an
``unsat`` scores 0 (verdict ``unchecked``).

A ``sat`` whose witness checks on an ``expected=unsat`` row is a counterexample to the
expected answer itself (the competition decides disputes by the witness): it scores +10
with the verdict ``refutes``, and the report lists it so that the row can be corrected
(vit_2023 ibp_3_3_8_7894, ``unsat`` from a single tool, is violated by 6.4e-4).

The reference tool (alpha-beta-CROWN, ``abcrown_result`` / ``abcrown_time``) is scored by
the same rules (its witnesses are not available, so its ``sat`` is taken as checked).

:func:`outcomes` counts the answers themselves per benchmark (sat / unsat / unknown /
timeout / other, wrong, total seconds, the reference's sat / unsat, and the largest
overrun of a run past its timeout).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from verifier.bench.instances import Expected
from verifier.bench.runner import Row

__all__ = ["CORRECT", "WRONG", "Outcomes", "Scored", "Totals", "outcomes", "score_rows", "totals"]

CORRECT = 10
WRONG = -150
DECISIVE = ("sat", "unsat")
SOLVED = ("correct", "refutes")


@dataclass(frozen=True, slots=True)
class Scored:
    """One scored instance.

    Attributes:
        row: our result row; expected: the known answer (``""`` when unknown to us).
        verdict: ``correct``, ``wrong``, ``refutes`` (a checked counterexample on an
            ``expected=unsat`` row), ``open`` (no decisive answer) or ``unchecked``
            (decisive, but no expected answer to compare with).
        score: our points; witness: the witness check's reason (``sat`` rows) or ``""``.
        ref_result, ref_time, ref_score: the reference tool's answer, time and points.
    """

    row: Row
    expected: str
    verdict: str
    score: int
    witness: str
    ref_result: str
    ref_time: float | None
    ref_score: int


@dataclass(frozen=True, slots=True)
class Totals:
    """Per-benchmark (or overall) sums."""

    name: str
    instances: int
    solved: int
    sat: int
    unsat: int
    wrong: int
    score: int
    ref_solved: int
    ref_score: int


def _points(answer: str, expected: str, witness_ok: bool) -> tuple[str, int]:
    if answer not in DECISIVE:
        return "open", 0
    if answer == "sat" and not witness_ok:
        return "wrong", WRONG
    if answer == "sat" and expected == "unsat":  # the checked witness refutes the row
        return "refutes", CORRECT
    if expected in DECISIVE:
        return ("correct", CORRECT) if answer == expected else ("wrong", WRONG)
    if answer == "sat":  # a checked witness settles an unknown row
        return "correct", CORRECT
    return "unchecked", 0


def score_rows(
    rows: Sequence[Row],
    expected: Mapping[tuple[str, str, str], Expected],
    check_sat: Callable[[Row], tuple[bool, str]],
) -> list[Scored]:
    """Score every row; ``check_sat(row)`` checks a ``sat`` row's witness -> (ok, reason)."""
    out = []
    for row in rows:
        exp = expected.get(row.key)
        want = exp.expected if exp is not None else ""
        ok, why = check_sat(row) if row.result == "sat" else (False, "")
        verdict, points = _points(row.result, want, ok)
        ref = exp.reference_result if exp is not None else ""
        _, ref_points = _points(ref, want, True)
        out.append(
            Scored(
                row,
                want,
                verdict,
                points,
                why,
                ref,
                exp.reference_time if exp is not None else None,
                ref_points,
            )
        )
    return out


def totals(scored: Sequence[Scored], name: str) -> Totals:
    """Sums over ``scored`` under the label ``name``."""
    return Totals(
        name,
        len(scored),
        sum(s.verdict in SOLVED for s in scored),
        sum(s.row.result == "sat" for s in scored),
        sum(s.row.result == "unsat" for s in scored),
        sum(s.verdict == "wrong" for s in scored),
        sum(s.score for s in scored),
        sum(s.ref_score > 0 for s in scored),
        sum(s.ref_score for s in scored),
    )


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Per-benchmark (or overall) answer counts.

    Attributes:
        other: answers that are none of sat / unsat / unknown / timeout (``error``).
        seconds: total wall-clock time of the runs.
        ref_sat, ref_unsat: the reference tool's sat / unsat answers on the same rows.
        max_overrun: the largest ``time - timeout`` over the rows (negative when every run
            ended early; 0 when no row knows its timeout).
    """

    name: str
    instances: int
    sat: int
    unsat: int
    unknown: int
    timeout: int
    other: int
    wrong: int
    seconds: float
    ref_sat: int
    ref_unsat: int
    max_overrun: float


def outcomes(scored: Sequence[Scored], name: str) -> Outcomes:
    """Answer counts over ``scored`` under the label ``name``."""
    counts = {w: sum(s.row.result == w for s in scored) for w in ("sat", "unsat", "unknown")}
    timeouts = sum(s.row.result == "timeout" for s in scored)
    overruns = [s.row.time - s.row.timeout for s in scored if s.row.timeout is not None]
    return Outcomes(
        name,
        len(scored),
        counts["sat"],
        counts["unsat"],
        counts["unknown"],
        timeouts,
        len(scored) - sum(counts.values()) - timeouts,
        sum(s.verdict == "wrong" for s in scored),
        sum(s.row.time for s in scored),
        sum(s.ref_result == "sat" for s in scored),
        sum(s.ref_result == "unsat" for s in scored),
        max(overruns, default=0.0),
    )
