"""Incomplete verification stage: CROWN, then alpha-CROWN, per input box.

A spec case (box, ``C·y <= d``) is refuted when some row has a sound lower
bound of ``C·y`` strictly above ``d``; the property holds (``unsat``) when every
case is refuted. All cases sharing a box are bounded together in one call.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from bounds import AlphaConfig, BoundGraph, Bounds, compute_bounds
from branching import BabConfig, choose_split_mode, intermediate_mode
from branching.stabilize import StabilizeStats, stabilize
from models import Graph, evaluate
from verifier.config import BoundsConfig
from verifier.deadline import Deadline
from verifier.result import Result, Status

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True, slots=True)
class GroupRows:
    """All constraint rows of the cases of one box, stacked.

    ``C``: ``[S, n_out]``; ``d``: ``[S]``; ``case_of_row``: ``[S]`` local case index.
    """

    C: np.ndarray
    d: np.ndarray
    case_of_row: np.ndarray


def stack_rows(constraints: tuple[tuple[np.ndarray, np.ndarray], ...]) -> GroupRows:
    """Stack the ``(C, d)`` of a group's cases into one objective matrix."""
    Cs = [np.asarray(C, dtype=np.float64) for C, _ in constraints]
    ds = [np.asarray(d, dtype=np.float64) for _, d in constraints]
    owner = np.concatenate([np.full(len(d), i) for i, d in enumerate(ds)]).astype(np.int64)
    return GroupRows(np.concatenate(Cs), np.concatenate(ds), owner)


def rounding_margin(
    graph: Graph, lower: np.ndarray, upper: np.ndarray, rows: GroupRows, n: int = 64
) -> np.ndarray:
    """Per row, a margin for float32 evaluation error of the deployed model, ``[S]``.

    Bounds are exact-arithmetic statements about the network, but counterexamples
    are checked by running the ONNX model in float32, whose rounding can push an
    output across a threshold that the exact function never crosses (e.g. power-flow
    residuals, differences of large nearly equal terms). A row only counts as
    refuted when its bound clears the threshold by more than 10x the largest
    float32-vs-float64 gap seen on ``n`` points of the box (centre and corners
    included) plus ``1e-9``.
    """
    shape = tuple(graph.inputs[0].shape)
    gen = torch.Generator().manual_seed(0)
    lo = torch.tensor(np.array(lower, dtype=np.float64))
    hi = torch.tensor(np.array(upper, dtype=np.float64))
    t = torch.rand((n, lo.numel()), generator=gen, dtype=torch.float64)
    t[0], t[1], t[2] = 0.5, 0.0, 1.0
    x64 = (lo + (hi - lo) * t).reshape((n,) + shape)
    with torch.no_grad():
        y64 = evaluate(graph, x64).reshape(n, -1)
        y32 = evaluate(graph, x64.float()).reshape(n, -1).double()
    gap = ((y32 - y64) @ torch.as_tensor(rows.C).T).abs().amax(0)
    return 10.0 * gap.numpy() + 1e-9


def refuted_cases(
    lower: np.ndarray, rows: GroupRows, n_cases: int, margin: np.ndarray | float = 0.0
) -> np.ndarray:
    """Per case: True when some row's lower bound exceeds its threshold (plus ``margin``)."""
    hit = lower > rows.d + margin
    out = np.zeros(n_cases, dtype=bool)
    np.logical_or.at(out, rows.case_of_row, hit)
    return out


def _box(
    bg: BoundGraph, lower: np.ndarray, upper: np.ndarray, cfg: BoundsConfig, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The box as ``[1, *input_shape]`` tensors in the configured dtype."""
    dtype = _DTYPES[cfg.dtype]
    shape = (1,) + bg.input_shape
    lo = torch.tensor(lower, dtype=dtype, device=device).reshape(shape)
    hi = torch.tensor(upper, dtype=dtype, device=device).reshape(shape)
    return lo, hi


def bound_group(
    bg: BoundGraph,
    lower: np.ndarray,
    upper: np.ndarray,
    rows: GroupRows,
    method: str,
    cfg: BoundsConfig,
    device: str,
    deadline: Deadline | None,
    keep: dict | None = None,
    known: dict | None = None,
) -> np.ndarray:
    """Lower bounds ``[S]`` of the group's rows with ``method``.

    ``deadline`` (None: no limit) is the time budget of this computation: nodes reached
    after it expires keep IBP bounds and alpha-CROWN stops iterating (still sound).

    ``keep``, when given, receives ``"intermediate"``: the node intervals (batch 1) the
    bounds were computed with, for branch-and-bound to start from.

    ``known``, when given, holds sound intervals (batch 1) of some nodes to start from
    (e.g. after :func:`branching.stabilize.stabilize`).
    """
    lo, hi = _box(bg, lower, upper, cfg, device)
    dtype = lo.dtype
    C = torch.tensor(rows.C, dtype=dtype, device=device).unsqueeze(0)
    d = torch.tensor(rows.d, dtype=dtype, device=device).unsqueeze(0)
    alpha = AlphaConfig(
        iterations=cfg.alpha_iterations,
        lr=cfg.alpha_lr,
        intermediate=cfg.alpha_intermediate,
    )
    res = compute_bounds(
        bg,
        lo,
        hi,
        C,
        method=method,
        thresholds=d,
        bound_upper=False,
        alpha=alpha,
        crown_max_elements=cfg.crown_max_elements,
        deadline=deadline,
        known=known,
    )
    if keep is not None:
        keep["intermediate"] = res.intermediate
    return res.lower[0].detach().cpu().numpy().astype(np.float64)


@dataclass(frozen=True)
class OpenGroup:
    """A box whose cases the incomplete stage could not all refute.

    Attributes:
        index: the group's index.
        rows: its stacked rows.
        lower: ``[S]`` best lower bounds found.
        margin: ``[S]`` float32 rounding margins (see :func:`rounding_margin`).
        refuted: ``[n_cases]`` cases already refuted.
        intermediate: node intervals of the strongest method run (batch 1).
    """

    index: int
    rows: GroupRows
    lower: np.ndarray
    margin: np.ndarray
    refuted: np.ndarray
    intermediate: object


def _methods(cfg: BoundsConfig) -> tuple[str, ...]:
    order = ("ibp", "crown", "alpha-crown")
    return order[1 : order.index(cfg.method) + 1] if cfg.method != "ibp" else ("ibp",)


def run_incomplete(
    bg: BoundGraph,
    groups: tuple,
    cfg: BoundsConfig,
    deadline: Deadline,
    device: str,
    stats: dict[str, float],
    open_out: list[OpenGroup] | None = None,
    time_share: float = 0.8,
) -> Result | None:
    """Try to refute every case; ``unsat`` when all are refuted, else None.

    ``open_out``, when given, receives an :class:`OpenGroup` per box left open (with the
    intervals of the last method that ran), for branch-and-bound. Each bound computation
    may use ``time_share`` of the remaining time.
    """
    open_groups = list(range(len(groups)))
    margins: dict[int, np.ndarray] = {}
    kept: dict[int, OpenGroup] = {}
    for method in _methods(cfg):
        still_open = []
        for gi in open_groups:
            if deadline.expired():
                return None
            g = groups[gi]
            rows = stack_rows(g.constraints)
            keep: dict = {}
            budget = deadline.child(time_share)
            lb = bound_group(bg, g.lower, g.upper, rows, method, cfg, device, budget, keep)
            if gi in kept:
                lb = np.maximum(lb, kept[gi].lower)
            if gi not in margins:
                margins[gi] = rounding_margin(bg.source, g.lower, g.upper, rows)
            done = refuted_cases(lb, rows, len(g.constraints), margins[gi])
            log.info(
                "%s: box %d: %d/%d cases refuted (worst margin %.4g)",
                method,
                gi,
                int(done.sum()),
                len(done),
                float(np.max(lb - rows.d)),
            )
            if not done.all():
                still_open.append(gi)
                kept[gi] = OpenGroup(gi, rows, lb, margins[gi], done, keep["intermediate"])
        stats[f"open_after_{method}"] = float(len(still_open))
        open_groups = still_open
        if not open_groups:
            return Result(Status.UNSAT, reason=f"every case refuted by {method}")
    if open_out is not None:
        open_out.extend(kept[gi] for gi in open_groups)
    return None


def stabilize_group(
    bg: BoundGraph,
    og: OpenGroup,
    lower: np.ndarray,
    upper: np.ndarray,
    cfg: BoundsConfig,
    bab: BabConfig,
    device: str,
    deadline: Deadline,
    stats: StabilizeStats,
    progress: Callable[[StabilizeStats], None] | None = None,
) -> OpenGroup:
    """``og`` after :func:`branching.stabilize.stabilize` on its box and alpha-CROWN again
    from the tightened intervals (a new OpenGroup; ``og`` itself when no interval end
    moved). Applies to ReLU networks whose search splits activations, when at least
    ``bab.stabilize_min_s`` seconds are left."""
    if not (
        bab.stabilize
        and deadline.remaining() >= bab.stabilize_min_s
        and og.intermediate is not None
        and intermediate_mode(bg, bab) == "crown"
        and choose_split_mode(bg, bab, lower, upper) == "activation"
    ):
        return og
    lo, hi = _box(bg, lower, upper, cfg, device)
    root = dict(og.intermediate)  # type: ignore[call-overload]

    def rebound(
        with_cfg: BoundsConfig, intervals: Mapping[str, Bounds], keep: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """alpha-CROWN from ``intervals``: the best lower bounds and the refuted cases."""
        lb = bound_group(
            bg,
            lower,
            upper,
            og.rows,
            "alpha-crown",
            with_cfg,
            device,
            deadline,
            keep,
            dict(intervals),
        )
        lb = np.maximum(lb, og.lower)
        refuted = refuted_cases(lb, og.rows, len(og.refuted), og.margin) | og.refuted
        return lb, refuted

    quick = dataclasses.replace(cfg, alpha_intermediate=False)
    settled: list[np.ndarray] = []

    def done(intervals: Mapping[str, Bounds]) -> bool:
        """Whether alpha-CROWN with the intervals so far fixed refutes every open case."""
        lb, refuted = rebound(quick, intervals)
        if refuted.all():
            settled.append(lb)
        return bool(refuted.all())

    budget = deadline.child(bab.stabilize_share)
    tightened, st = stabilize(bg, lo, hi, root, bab, budget, done, progress)
    stats.add(st)
    if settled:
        log.info("stabilize: box %d: every case refuted by alpha-CROWN", og.index)
        done_all = np.ones_like(og.refuted)
        return OpenGroup(og.index, og.rows, settled[0], og.margin, done_all, tightened)
    if not (st.proved or st.tightened) or deadline.expired():
        return og
    keep: dict = {}
    lb, refuted = rebound(cfg, tightened, keep)
    log.info(
        "stabilize: box %d: %d/%d cases refuted after re-bounding (worst margin %.4g)",
        og.index,
        int(refuted.sum()),
        len(refuted),
        float(np.max(lb - og.rows.d)),
    )
    return OpenGroup(og.index, og.rows, lb, og.margin, refuted, keep["intermediate"])
