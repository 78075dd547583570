"""Falsifier: random sampling and PGD in each input box of the spec, looking for a violation.

The spec says the property is violated iff, for some case, ``x`` lies in the case's box and
every row of ``C @ y <= d`` holds. For one point and one case the *margin* is
``max_rows(C @ y - d)``: the case is violated exactly when the margin is ``<= 0``. Cases that
share a box are searched together: the objective of a point is the minimum margin over the
group's cases, so one forward pass serves every disjunct.

Per box the search is:

1. the box centre plus ``random_points`` samples (a quarter of them random vertices, the
   rest uniform);
2. ``rounds`` of PGD, each with ``restarts`` starting points batched into one forward pass
   per step (round 0 starts from the best samples of step 1, later rounds from fresh
   uniform points): ``x <- clip(x - step * sign(grad margin), lower, upper)`` with
   ``step = step_fraction * width``, decaying linearly to a tenth of that.

Whenever a point with margin ``<= 0`` is found that beats every earlier candidate it is
yielded as a :class:`Candidate`; the caller confirms it independently (the engine's float
evaluation is not trusted for ``sat``) and either stops or lets the search go on, which keeps
pushing the margin down. The deadline is checked before every forward pass.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from verifier.config import AttackConfig
from verifier.deadline import Deadline
from verifier.ort_check import representable_box

__all__ = [
    "AttackProgress",
    "Candidate",
    "CaseGroup",
    "Forward",
    "find_candidate",
    "group_cases",
    "iter_candidates",
]

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], torch.Tensor]
"""Model on flat tensors: ``[B, n_in] -> [B, n_out]``, differentiable."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A point the engine's own evaluation says violates a case (not yet confirmed).

    Attributes:
        x: flat input, float64 copy of the evaluated values (inside the box).
        y: flat output of the engine's forward pass on ``x``.
        case_index: index into ``Spec.cases`` of the violated case.
        margin: ``max_rows(C @ y - d)`` for that case (``<= 0``).
    """

    x: np.ndarray
    y: np.ndarray
    case_index: int
    margin: float


@dataclass(frozen=True, slots=True)
class CaseGroup:
    """Spec cases sharing one input box.

    Attributes:
        lower, upper: the box, float64 arrays ``[n_in]``.
        constraints: per case ``(C [m, n_out], d [m])``; violation iff ``C @ y <= d``.
        case_indices: index into ``Spec.cases`` of each entry of ``constraints``.
    """

    lower: np.ndarray
    upper: np.ndarray
    constraints: tuple[tuple[np.ndarray, np.ndarray], ...]
    case_indices: tuple[int, ...]


@dataclass(slots=True)
class AttackProgress:
    """Counters filled in while the falsifier runs (read them after it stops)."""

    forward_passes: int = 0
    points: int = 0
    groups_done: int = 0
    best_margin: float = float("inf")


def group_cases(cases: Sequence) -> tuple[CaseGroup, ...]:
    """Group spec cases (objects with ``lower, upper, C, d``) by identical box, in order."""
    order: list[bytes] = []
    by_box: dict[bytes, list[int]] = {}
    for i, case in enumerate(cases):
        lo = np.asarray(case.lower, dtype=np.float64)
        hi = np.asarray(case.upper, dtype=np.float64)
        key = lo.tobytes() + b"|" + hi.tobytes()
        if key not in by_box:
            by_box[key] = []
            order.append(key)
        by_box[key].append(i)
    groups = []
    for key in order:
        idx = by_box[key]
        first = cases[idx[0]]
        groups.append(
            CaseGroup(
                lower=np.asarray(first.lower, dtype=np.float64).reshape(-1),
                upper=np.asarray(first.upper, dtype=np.float64).reshape(-1),
                constraints=tuple(
                    (
                        np.atleast_2d(np.asarray(cases[i].C, dtype=np.float64)),
                        np.asarray(cases[i].d, dtype=np.float64).reshape(-1),
                    )
                    for i in idx
                ),
                case_indices=tuple(idx),
            )
        )
    return tuple(groups)


class _Objective:
    """Margin of a batch of outputs for one group: min over cases of max over rows."""

    def __init__(self, group: CaseGroup, device: torch.device, dtype: torch.dtype) -> None:
        n_out = group.constraints[0][0].shape[1]
        rows = max(1, max(len(d) for _, d in group.constraints))
        k = len(group.constraints)
        c = np.zeros((k, rows, n_out))
        d = np.zeros((k, rows))
        pad = np.ones((k, rows), dtype=bool)
        for i, (ci, di) in enumerate(group.constraints):
            c[i, : len(di)] = ci
            d[i, : len(di)] = di
            pad[i, : len(di)] = False
        self.C = torch.as_tensor(c, device=device, dtype=dtype)
        self.d = torch.as_tensor(d, device=device, dtype=dtype)
        self.pad = torch.as_tensor(pad, device=device)

    def __call__(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y [B, n_out]`` -> (margin ``[B]``, local case index ``[B]``)."""
        vals = torch.einsum("kmo,bo->bkm", self.C, y) - self.d
        vals = vals.masked_fill(self.pad, float("-inf"))
        per_case = vals.amax(dim=2)
        margin, case = per_case.min(dim=1)
        return margin, case


class _Search:
    """State of the search in one group: tensors, objective, emission bookkeeping."""

    def __init__(
        self,
        forward: Forward,
        group: CaseGroup,
        cfg: AttackConfig,
        progress: AttackProgress,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.forward = forward
        self.group = group
        self.cfg = cfg
        self.progress = progress
        self.lo, self.hi = inner_box(group.lower, group.upper, device=device, dtype=dtype)
        self.width = (self.hi - self.lo).clamp_min(0)
        self.objective = _Objective(group, device, dtype)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.emitted: float | None = None  # margin of the last emitted candidate
        self.seeds: torch.Tensor | None = None  # best sampled points, PGD round 0 starts

    def uniform(self, n: int, vertex_share: float = 0.0) -> torch.Tensor:
        """``n`` points in the box: the first ``vertex_share`` of them random vertices."""
        u = torch.rand((n, self.lo.numel()), generator=self.generator, dtype=torch.float64)
        n_vert = int(n * vertex_share)
        u[:n_vert] = (u[:n_vert] >= 0.5).to(u.dtype)
        u = u.to(device=self.lo.device, dtype=self.lo.dtype)
        return self.clip(self.lo + u * self.width)

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(x, self.lo), self.hi)

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forward pass: (y ``[B, n_out]``, margin ``[B]``, local case ``[B]``)."""
        y = self.forward(x).reshape(x.shape[0], -1)
        margin, case = self.objective(y)
        self.progress.forward_passes += 1
        self.progress.points += x.shape[0]
        return y, margin, case

    def offer(
        self, x: torch.Tensor, y: torch.Tensor, margin: torch.Tensor, case: torch.Tensor
    ) -> Candidate | None:
        """The best point of the batch as a Candidate if it violates and beats earlier ones."""
        with torch.no_grad():
            best = int(torch.argmin(margin))
            value = float(margin[best])
        self.progress.best_margin = min(self.progress.best_margin, value)
        if not value <= 0 or (self.emitted is not None and value >= self.emitted):
            return None
        self.emitted = value
        return Candidate(
            x=x[best].detach().to("cpu", torch.float64).numpy().copy(),
            y=y[best].detach().to("cpu", torch.float64).numpy().copy(),
            case_index=self.group.case_indices[int(case[best])],
            margin=value,
        )


def inner_box(
    lower: np.ndarray, upper: np.ndarray, *, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The box as tensors of ``dtype``, rounded inwards so every point stays inside it."""
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    lo, hi = representable_box(lower, upper, np_dtype)
    as_t = {"device": device, "dtype": dtype}
    return torch.as_tensor(lo, **as_t), torch.as_tensor(hi, **as_t)


def _random_phase(search: _Search, deadline: Deadline) -> Iterator[Candidate]:
    """Evaluate the centre and random samples; remember the best ones as PGD seeds."""
    cfg = search.cfg
    centre = search.clip((search.lo + search.hi) / 2)
    points = torch.cat([centre[None], search.uniform(cfg.random_points, vertex_share=0.25)])
    chunk = max(cfg.restarts, 64)
    margins = []
    for start in range(0, points.shape[0], chunk):
        if deadline.expired():
            break
        x = points[start : start + chunk]
        with torch.no_grad():
            y, margin, case = search.evaluate(x)
        margins.append(margin)
        candidate = search.offer(x, y, margin, case)
        if candidate is not None:
            yield candidate
    if margins:
        scores = torch.cat(margins)
        k = min(cfg.restarts, scores.shape[0])
        best = points[torch.topk(scores, k, largest=False).indices]
        search.seeds = torch.cat([best, search.uniform(cfg.restarts - k)])


def _pgd_round(search: _Search, start: torch.Tensor, deadline: Deadline) -> Iterator[Candidate]:
    """Sign-gradient descent on the margin from ``start`` (``[R, n_in]``), projected to the box."""
    steps = search.cfg.steps
    base = search.cfg.step_fraction * search.width
    x = start.detach().clone()
    for t in range(steps + 1):
        if deadline.expired():
            return
        x.requires_grad_(t < steps)
        with torch.enable_grad():
            y, margin, case = search.evaluate(x)
            differentiable = margin.requires_grad
            grad = torch.autograd.grad(margin.sum(), x)[0] if differentiable else None
        x = x.detach()
        candidate = search.offer(x, y.detach(), margin.detach(), case)
        if candidate is not None:
            yield candidate
        if grad is None:
            if t < steps:
                log.debug("falsifier: model output has no gradient; skipping PGD")
            return
        decay = 1.0 - 0.9 * t / max(1, steps - 1)
        x = search.clip(x - base * decay * torch.nan_to_num(grad).sign())


def iter_candidates(
    forward: Forward,
    groups: Sequence[CaseGroup],
    cfg: AttackConfig,
    deadline: Deadline,
    *,
    device: torch.device,
    dtype: torch.dtype,
    progress: AttackProgress | None = None,
) -> Iterator[Candidate]:
    """Search every group in turn; yield each improving violating point found.

    Args:
        forward: the model on flat inputs ``[B, n_in] -> [B, n_out]``, differentiable.
        groups: the spec's cases grouped by box (see :func:`group_cases`).
        cfg: falsifier settings.
        deadline: checked before every forward pass; the generator stops when it expires.
        device, dtype: where and in which precision points are evaluated.
        progress: optional counters updated in place.

    Yields:
        Candidates with margin ``<= 0``, each with a smaller margin than the previous one of
        the same group. Nothing is confirmed here.
    """
    progress = progress if progress is not None else AttackProgress()
    for index, group in enumerate(groups):
        if deadline.expired():
            return
        search = _Search(forward, group, replace_seed(cfg, index), progress, device, dtype)
        if bool((search.lo > search.hi).any()):
            log.warning("falsifier: box %d is empty in %s; skipped", index, dtype)
            continue
        yield from _random_phase(search, deadline)
        for round_index in range(cfg.rounds):
            start = search.seeds if round_index == 0 else None
            start = search.uniform(cfg.restarts) if start is None else start
            yield from _pgd_round(search, start, deadline)
        if not deadline.expired():
            progress.groups_done += 1
    log.debug("falsifier: %s", progress)


def find_candidate(
    forward: Forward,
    groups: Sequence[CaseGroup],
    cfg: AttackConfig,
    deadline: Deadline,
    *,
    device: torch.device,
    dtype: torch.dtype,
    progress: AttackProgress | None = None,
) -> Candidate | None:
    """The first candidate of :func:`iter_candidates`, or None when none is found in time."""
    found = iter_candidates(
        forward, groups, cfg, deadline, device=device, dtype=dtype, progress=progress
    )
    return next(found, None)


def replace_seed(cfg: AttackConfig, offset: int) -> AttackConfig:
    """``cfg`` with its seed shifted by ``offset`` (distinct streams per box)."""
    return dataclasses.replace(cfg, seed=cfg.seed + offset)
