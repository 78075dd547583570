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
   per step. Round 0 starts half of them from the best samples of step 1; every other start
   is uniform and first gets ``osi_steps`` of output-diversified initialisation (ascent on
   a random output direction). Then ``x <- clip(x - step * sign(grad), lower, upper)`` on
   each restart's *target*: one case's margin, or the min over cases (restarts are spread
   over the targets, see ``_targets``). ``step = step_fraction * width`` decays on a coarse
   or a fine schedule (alternating restarts, see ``_decay``); a point whose gradient is
   all zero (a flat region) takes a random sign step instead.

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
from verifier.counterexample_check import representable_box
from verifier.deadline import Deadline

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

COARSE_FINAL_RATIO = 0.1
"""Even restarts: the step decays *linearly* to this fraction of its initial size."""
FINE_FINAL_RATIO = 1e-3
"""Odd restarts: the step decays *geometrically* to this fraction (fine local search)."""

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
    """Per-case margins of a batch of outputs for one group (cases padded to equal rows)."""

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

    def per_case(self, y: torch.Tensor) -> torch.Tensor:
        """``y [B, n_out]`` -> margin of every case ``[B, K]`` (max over its rows)."""
        vals = torch.einsum("kmo,bo->bkm", self.C, y) - self.d
        return vals.masked_fill(self.pad, float("-inf")).amax(dim=2)


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

    def random_directions(self, n: int, n_out: int) -> torch.Tensor:
        """``[n, n_out]`` directions uniform in ``[-1, 1]`` (for OSI)."""
        w = torch.rand((n, n_out), generator=self.generator, dtype=torch.float64) * 2 - 1
        return w.to(device=self.lo.device, dtype=self.lo.dtype)

    def step_direction(self, grad: torch.Tensor) -> torch.Tensor:
        """``sign(grad)`` per point; a random sign vector where a point's gradient is all zero.

        Piecewise-constant regions (every ReLU of a layer off) have no gradient; a random
        step keeps those restarts exploring instead of standing still.
        """
        direction = torch.nan_to_num(grad).sign()
        flat = ~direction.any(dim=1)
        if bool(flat.any()):
            u = torch.rand(direction.shape, generator=self.generator, dtype=torch.float64)
            noise = (u.to(device=direction.device, dtype=direction.dtype) * 2 - 1).sign()
            direction = torch.where(flat[:, None], noise, direction)
        return direction

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        """Project points ``[B, n_in]`` onto the (inward-rounded) box."""
        return torch.minimum(torch.maximum(x, self.lo), self.hi)

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward pass: (y ``[B, n_out]``, per-case margins ``[B, K]``)."""
        y = self.forward(x).reshape(x.shape[0], -1)
        self.progress.forward_passes += 1
        self.progress.points += x.shape[0]
        return y, self.objective.per_case(y)

    def offer(self, x: torch.Tensor, y: torch.Tensor, per_case: torch.Tensor) -> Candidate | None:
        """The best point of the batch as a Candidate if it violates and beats earlier ones."""
        with torch.no_grad():
            margin, case = per_case.min(dim=1)
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
            y, per_case = search.evaluate(x)
        margins.append(per_case.min(dim=1).values)
        candidate = search.offer(x, y, per_case)
        if candidate is not None:
            yield candidate
    if margins:
        scores = torch.cat(margins)
        k = min((cfg.restarts + 1) // 2, scores.shape[0])
        search.seeds = points[torch.topk(scores, k, largest=False).indices]


def _targets(n_points: int, n_cases: int, round_index: int) -> torch.Tensor | None:
    """Which case each PGD restart descends on (None: all on the min over cases).

    With several cases the restarts are spread over the cases (targeted descent), plus the
    min-over-cases objective, rotating with the round: descending on the min alone tends
    to get stuck on whichever case is closest at the start.
    """
    if n_cases == 1:
        return None
    return (torch.arange(n_points) + round_index * n_points) % (n_cases + 1)


def _round_start(search: _Search, round_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Starting points ``[R, n_in]`` of a PGD round and which of them get OSI first ``[R]``.

    Round 0 starts from the best sampled points (no OSI) and fills up with uniform points;
    later rounds start from uniform points only. Every uniform start gets OSI.
    """
    restarts = search.cfg.restarts
    seeds = search.seeds if round_index == 0 and search.seeds is not None else None
    n_seeds = 0 if seeds is None else seeds.shape[0]
    fresh = search.uniform(restarts - n_seeds)
    start = fresh if seeds is None else torch.cat([seeds, fresh])
    osi = torch.arange(restarts, device=start.device) >= n_seeds
    return start, osi


def _pgd_round(search: _Search, deadline: Deadline, round_index: int) -> Iterator[Candidate]:
    """One batched PGD round: OSI steps, then sign-gradient descent on the margins.

    OSI (output-diversified initialisation): for ``osi_steps`` steps, restarts marked for
    it ascend a random direction ``w . y`` of the output space (``w ~ U(-1, 1)``), which
    spreads them over different regions before descending on the margin. Descent uses the
    targeted case margins of :func:`_targets`. Every step projects onto the box.
    """
    cfg = search.cfg
    x, osi = _round_start(search, round_index)
    base = cfg.step_fraction * search.width
    targets = _targets(x.shape[0], len(search.group.case_indices), round_index)
    directions = None
    total = cfg.osi_steps + cfg.steps
    for t in range(total + 1):
        if deadline.expired():
            return
        x.requires_grad_(t < total)
        with torch.enable_grad():
            y, per_case = search.evaluate(x)
            loss = _pgd_loss(per_case, targets, reduce=False)
            if t < cfg.osi_steps:
                if directions is None:
                    directions = search.random_directions(x.shape[0], y.shape[1])
                loss = torch.where(osi, -(directions * y).sum(dim=1), loss)
            loss = loss.sum()
            grad = torch.autograd.grad(loss, x)[0] if loss.requires_grad else None
        x = x.detach()
        candidate = search.offer(x, y.detach(), per_case.detach())
        if candidate is not None:
            yield candidate
        if grad is None:
            if t < total:
                log.debug("falsifier: model output has no gradient; skipping PGD")
            return
        k = max(0, t - cfg.osi_steps)
        decay = _decay(k / max(1, cfg.steps - 1), x.shape[0], x.device, x.dtype)
        x = search.clip(x - base * decay * search.step_direction(grad))


def _decay(progress: float, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Step multipliers ``[n, 1]`` at ``progress`` in [0, 1] of the descent.

    Two schedules alternate over the restarts: a linear decay to ``COARSE_FINAL_RATIO``
    keeps steps large (crossing ReLU regions, as on MNIST MLPs), a geometric decay to
    ``FINE_FINAL_RATIO`` resolves narrow violation regions (as on ACAS Xu).
    """
    coarse = 1.0 - (1.0 - COARSE_FINAL_RATIO) * progress
    fine = FINE_FINAL_RATIO**progress
    odd = torch.arange(n, device=device) % 2 == 1
    return torch.where(odd, fine, coarse).to(dtype)[:, None]


def _pgd_loss(
    per_case: torch.Tensor, targets: torch.Tensor | None, reduce: bool = True
) -> torch.Tensor:
    """Each point's targeted case margin (target K: the min over cases); summed if reduce."""
    full = torch.cat([per_case, per_case.min(dim=1, keepdim=True).values], dim=1)
    if targets is None:
        loss = full[:, -1]
    else:
        loss = full.gather(1, targets.to(per_case.device)[:, None])[:, 0]
    return loss.sum() if reduce else loss


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
            yield from _pgd_round(search, deadline, round_index)
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
