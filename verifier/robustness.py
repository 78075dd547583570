"""Local robustness of classifiers: certificates over Lp balls and certified radii.

:func:`certify_robustness` answers, for each input ``x_n`` with label ``l_n``, whether every
point of ``{x : ||x - x_n||_p <= eps} ∩ domain`` is classified ``l_n``:

* ``certified``: sound lower bounds of every margin ``y_l - y_j`` (``j != l``) are above 0 by
  more than the float32 evaluation gap of the model in the region (as in the pipeline's
  bounds stage); CROWN first, then alpha-CROWN for the inputs CROWN leaves open;
* ``counterexample``: a point of the region where some ``y_j >= y_l``, found by the
  falsifier (PGD) and confirmed by onnxruntime on the exported ONNX model;
* ``unknown``: neither.

:func:`certified_radius` brackets the largest certifiable ``eps`` of one input: several radii
are bounded in one batched call per round (multisection), so the bracket shrinks by a factor
of ``probes + 1`` per round.

The module never prints; results are typed, with ``to_dict()`` and ``to_json()``.
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bounds import AlphaConfig, BoundGraph, BoundsError, compute_bounds_ball
from models import Graph, evaluate
from verifier.attack import CaseGroup, iter_candidates
from verifier.config import InputError, VerifyConfig
from verifier.counterexample_check import OrtChecker
from verifier.deadline import Deadline
from verifier.incomplete import GroupRows, rounding_margin
from verifier.runtime import runtime_context

__all__ = ["CertStatus", "Certificate", "Radius", "RobustnessProblem"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class CertStatus(enum.Enum):
    """Per-input outcome of :func:`certify_robustness`."""

    CERTIFIED = "certified"
    COUNTEREXAMPLE = "counterexample"
    UNKNOWN = "unknown"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, enum.Enum):
        return value.value
    return value


@dataclass(frozen=True, slots=True)
class Certificate:
    """Robustness of ``N`` inputs in Lp balls of radius ``eps``.

    Attributes:
        status: per input, the :class:`CertStatus`.
        margin_lower: ``[N, K]`` sound lower bounds of ``y_label - y_j`` over the region
            (``nan`` in the label's own column).
        counterexamples: per input, the confirmed violating point (input shape, float64) or
            None.
        labels: ``[N]`` the labels.
        eps: the radius; norm: ``inf`` or ``2`` (any ``p >= 1``).
        time_s: wall-clock seconds of the call.
    """

    status: tuple[CertStatus, ...]
    margin_lower: np.ndarray
    counterexamples: tuple[np.ndarray | None, ...]
    labels: np.ndarray
    eps: float
    norm: float
    time_s: float

    @property
    def certified(self) -> np.ndarray:
        """``[N]`` bool: the inputs whose region is proved robust."""
        return np.array([s is CertStatus.CERTIFIED for s in self.status], dtype=bool)

    def __len__(self) -> int:
        return len(self.status)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (non-finite numbers become null)."""
        return {
            "status": [s.value for s in self.status],
            "margin_lower": _jsonable(self.margin_lower),
            "counterexamples": [None if c is None else _jsonable(c) for c in self.counterexamples],
            "labels": _jsonable(self.labels),
            "eps": self.eps,
            "norm": "inf" if math.isinf(self.norm) else self.norm,
            "time_s": self.time_s,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class Radius:
    """The certified radius of one input, bracketed.

    Attributes:
        certified: the largest radius proved robust (0 when none was).
        refuted: the smallest radius tried that was *not* proved (the bracket's top);
            ``certified <= true certifiable radius < refuted`` for this engine's settings.
        counterexample: a confirmed violating point at radius ``refuted`` (input shape),
            or None when the falsifier found none there.
        rounds: multisection rounds; time_s: wall-clock seconds.
    """

    certified: float
    refuted: float
    counterexample: np.ndarray | None
    rounds: int
    time_s: float

    @property
    def gap(self) -> float:
        """Relative width of the bracket, ``(refuted - certified) / refuted``."""
        return (self.refuted - self.certified) / self.refuted if self.refuted > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "certified": self.certified,
            "refuted": _jsonable(self.refuted),
            "counterexample": None
            if self.counterexample is None
            else _jsonable(self.counterexample),
            "rounds": self.rounds,
            "time_s": self.time_s,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict())


def _margin_rows(labels: np.ndarray, n_out: int) -> np.ndarray:
    """``[N, K, K]`` rows ``e_label - e_j`` (the label's own row is zero)."""
    rows = np.zeros((len(labels), n_out, n_out))
    for n, label in enumerate(labels):
        rows[n, :, label] += 1.0
        rows[n, np.arange(n_out), np.arange(n_out)] -= 1.0
    return rows


@dataclass
class RobustnessProblem:
    """A classifier (imported graph + its ONNX file for onnxruntime) and its settings.

    Attributes:
        graph: the imported model; ``model_path``: a file onnxruntime can open.
        config: settings (bounds method and dtype, falsifier, runtime).
        norm: ``p`` of the ball (``math.inf`` or ``2``...); domain: valid-input box or None.
    """

    graph: Graph
    model_path: Any
    config: VerifyConfig
    norm: float
    domain: tuple[float, float] | None
    _bg: BoundGraph | None = field(default=None, repr=False)

    @property
    def bound_graph(self) -> BoundGraph:
        """The prepared bound graph (built once)."""
        if self._bg is None:
            self._bg = BoundGraph(self.graph)
        return self._bg

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The graph's input shape (batch fixed to 1)."""
        return tuple(self.graph.inputs[0].shape)

    @property
    def n_out(self) -> int:
        """Number of classes (flat output size)."""
        return int(math.prod(self.graph.outputs[0].shape))

    def region(self, x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """The box enclosing ``ball(x, eps) ∩ domain``, flat ``[n_in]`` each."""
        lo, hi = x - eps, x + eps
        if self.domain is not None:
            lo = np.maximum(lo, self.domain[0])
            hi = np.minimum(hi, self.domain[1])
        return lo, hi

    def margin_bounds(
        self, x: np.ndarray, eps: np.ndarray, labels: np.ndarray, method: str
    ) -> np.ndarray:
        """``[B, K]`` lower bounds of ``y_label - y_j`` over each ball (``x``: ``[B, n_in]``)."""
        cfg = self.config.bounds
        dtype = _DTYPES[cfg.dtype]
        device = self.config.runtime.device
        bg = self.bound_graph
        center = torch.tensor(x, dtype=dtype, device=device).reshape((len(x),) + bg.input_shape)
        C = torch.tensor(_margin_rows(labels, self.n_out), dtype=dtype, device=device)
        alpha = AlphaConfig(
            iterations=cfg.alpha_iterations, lr=cfg.alpha_lr, intermediate=cfg.alpha_intermediate
        )
        thresholds = torch.zeros(C.shape[:2], dtype=dtype, device=device)
        try:
            res = compute_bounds_ball(
                bg,
                center,
                torch.tensor(eps, dtype=dtype, device=device),
                C,
                norm=self.norm,
                domain=self.domain,
                method=method,
                thresholds=thresholds,
                bound_upper=False,
                alpha=alpha,
                crown_max_elements=cfg.crown_max_elements,
            )
        except BoundsError as exc:
            raise InputError(f"bounds cannot be computed: {exc}") from exc
        low = res.lower.detach().cpu().numpy().astype(np.float64)
        low[np.arange(len(labels)), labels] = np.nan
        return low

    def certified_mask(
        self, x: np.ndarray, eps: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(``[B]`` certified, ``[B, K]`` margin lower bounds), CROWN then alpha-CROWN."""
        method = self.config.bounds.method
        low = self.margin_bounds(x, eps, labels, "ibp" if method == "ibp" else "crown")
        ok = self._clears(x, eps, labels, low)
        if method == "alpha-crown" and not ok.all():
            todo = np.flatnonzero(~ok)
            low_a = self.margin_bounds(x[todo], eps[todo], labels[todo], "alpha-crown")
            low[todo] = np.fmax(low[todo], low_a)
            ok[todo] = self._clears(x[todo], eps[todo], labels[todo], low[todo])
        return ok, low

    def _clears(
        self, x: np.ndarray, eps: np.ndarray, labels: np.ndarray, low: np.ndarray
    ) -> np.ndarray:
        """Per input: every margin bound above 0 by more than the float32 evaluation gap."""
        ok = np.zeros(len(x), dtype=bool)
        for n in range(len(x)):
            others = np.flatnonzero(np.arange(self.n_out) != labels[n])
            if not np.all(low[n, others] > 0):
                continue
            rows = _margin_rows(labels[n : n + 1], self.n_out)[0][others]
            group = GroupRows(rows, np.zeros(len(others)), np.arange(len(others)))
            lo, hi = self.region(x[n], float(eps[n]))
            ok[n] = bool(np.all(low[n, others] > rounding_margin(self.graph, lo, hi, group)))
        return ok

    def attack(
        self, x: np.ndarray, eps: float, label: int, deadline: Deadline
    ) -> np.ndarray | None:
        """A confirmed point of the region classified otherwise than ``label``, or None."""
        if not self.config.attack.enabled:
            return None
        if math.isinf(self.norm):
            return self._attack_box(x, eps, label, deadline)
        return self._attack_ball(x, eps, label, deadline)

    def _cases(self, label: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Violation cases ``y_label - y_j <= 0``, one per other class."""
        eye = np.eye(self.n_out)
        return [
            (j, (eye[label] - eye[j])[None, :], np.zeros(1))
            for j in range(self.n_out)
            if j != label
        ]

    def _forward(self) -> Any:
        shape = self.input_shape

        def forward(z: torch.Tensor) -> torch.Tensor:
            return evaluate(self.graph, z.reshape((z.shape[0],) + shape)).reshape(z.shape[0], -1)

        return forward

    def _attack_box(
        self, x: np.ndarray, eps: float, label: int, deadline: Deadline
    ) -> np.ndarray | None:
        lo, hi = self.region(x, eps)
        cases = self._cases(label)
        group = CaseGroup(lo, hi, tuple((C, d) for _, C, d in cases), tuple(range(len(cases))))
        checker = OrtChecker(self.model_path)
        candidates = iter_candidates(
            self._forward(),
            (group,),
            self.config.attack,
            deadline,
            device=torch.device("cpu"),
            dtype=torch.float32,
        )
        try:
            for cand in candidates:
                found = checker.confirm(
                    cand.x, lo, hi, [(i, C, d) for i, (_, C, d) in enumerate(cases)]
                )
                if found is not None:
                    return found.x.reshape(self.input_shape)
        finally:
            candidates.close()
        return None

    def _attack_ball(
        self, x: np.ndarray, eps: float, label: int, deadline: Deadline
    ) -> np.ndarray | None:
        """PGD in the L_p ball (projection onto the ball, then clipping to the domain)."""
        cfg = self.config.attack
        gen = torch.Generator().manual_seed(cfg.seed)
        x0 = torch.tensor(x, dtype=torch.float32)
        forward = self._forward()
        checker = OrtChecker(self.model_path)
        starts = torch.randn((cfg.restarts, x0.numel()), generator=gen)
        delta = (starts / starts.norm(dim=1, keepdim=True) * eps * 0.5).requires_grad_(True)
        step = 2.5 * eps / max(1, cfg.steps)
        for _ in range(max(1, cfg.steps)):
            if deadline.expired():
                break
            z = self._project(x0, delta, eps)
            y = forward(z)
            others = y.clone()
            others[:, label] = -math.inf
            margin = y[:, label] - others.max(dim=1).values
            hit = torch.nonzero(margin <= 0).reshape(-1)
            for k in hit.tolist():
                found = self._confirm_ball(checker, x, z[k].detach().numpy(), eps, label)
                if found is not None:
                    return found
            (grad,) = torch.autograd.grad(margin.sum(), delta)
            with torch.no_grad():
                g = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
                delta -= step * g
        return None

    def _project(self, x0: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
        norms = torch.linalg.vector_norm(delta, ord=self.norm, dim=1, keepdim=True)
        z = x0 + delta * torch.clamp(eps / norms.clamp_min(1e-12), max=1.0)
        if self.domain is not None:
            z = z.clamp(self.domain[0], self.domain[1])
        return z

    def _confirm_ball(
        self, checker: OrtChecker, x: np.ndarray, z: np.ndarray, eps: float, label: int
    ) -> np.ndarray | None:
        """``z`` in float32 if it lies in the region and onnxruntime misclassifies it."""
        zt = z.astype(np.float32).astype(np.float64)
        if np.linalg.norm(zt - x, ord=self.norm) > eps:
            return None
        if self.domain is not None and (np.any(zt < self.domain[0]) or np.any(zt > self.domain[1])):
            return None
        y = checker.run(zt)
        others = np.delete(y, label)
        if np.all(np.isfinite(y)) and np.max(others) >= y[label]:
            return zt.reshape(self.input_shape)
        return None


def certify(
    problem: RobustnessProblem, x: np.ndarray, eps: float, labels: np.ndarray
) -> Certificate:
    """:func:`verifier.certify_robustness` on a prepared problem (``x``: ``[N, n_in]``)."""
    start = time.perf_counter()
    deadline = Deadline.after(problem.config.timeout)
    with runtime_context(problem.config.runtime):
        eps_all = np.full(len(x), float(eps))
        ok, low = problem.certified_mask(x, eps_all, labels)
        status = [CertStatus.CERTIFIED if c else CertStatus.UNKNOWN for c in ok]
        found: list[np.ndarray | None] = [None] * len(x)
        for n in np.flatnonzero(~ok):
            if deadline.expired():
                break
            found[n] = problem.attack(x[n], float(eps), int(labels[n]), deadline)
            if found[n] is not None:
                status[n] = CertStatus.COUNTEREXAMPLE
    return Certificate(
        tuple(status),
        low,
        tuple(found),
        labels.copy(),
        float(eps),
        problem.norm,
        time.perf_counter() - start,
    )


def _first_unproved(problem: RobustnessProblem, x: np.ndarray, label: int, hi: float) -> float:
    """A radius that is not proved: ``hi``, doubled until it fails (at most 40 times)."""
    for _ in range(40):
        ok, _ = problem.certified_mask(x[None], np.array([hi]), np.array([label]))
        if not ok[0]:
            return hi
        hi *= 2.0
    raise InputError(f"every radius up to {hi:g} is certified; give a domain or an upper radius")


def radius(
    problem: RobustnessProblem,
    x: np.ndarray,
    label: int,
    *,
    upper: float | None = None,
    rel_tol: float = 0.01,
    probes: int = 8,
    max_rounds: int = 20,
) -> Radius:
    """:func:`verifier.certified_radius` on a prepared problem (``x``: ``[n_in]``)."""
    start = time.perf_counter()
    deadline = Deadline.after(problem.config.timeout)
    rounds = 0
    with runtime_context(problem.config.runtime):
        if upper is None and problem.domain is not None:
            upper = float(problem.domain[1] - problem.domain[0])
        hi = _first_unproved(problem, x, label, float(upper or 1.0))
        lo = 0.0
        while rounds < max_rounds and (hi - lo) > rel_tol * hi and not deadline.expired():
            rounds += 1
            radii = lo + (hi - lo) * np.arange(1, probes + 1) / (probes + 1)
            xs = np.repeat(x[None], probes, axis=0)
            ok, _ = problem.certified_mask(xs, radii, np.full(probes, label))
            proved = radii[ok]
            failed = radii[~ok]
            lo = float(proved.max()) if proved.size else lo
            hi = float(failed.min()) if failed.size and failed.min() > lo else hi
        cex = problem.attack(x, hi, label, deadline)
    return Radius(lo, hi, cex, rounds, time.perf_counter() - start)


def as_batch(x: Any, labels: Any, input_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as ``[N, n_in]`` float64 and ``labels`` as ``[N]`` int (one input allowed)."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = arr.astype(np.float64)
    n_in = int(math.prod(input_shape))
    if arr.size % n_in:
        raise InputError(f"x has {arr.size} values, not a multiple of the model's {n_in} inputs")
    arr = arr.reshape(-1, n_in)
    lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels
    lab = np.atleast_1d(np.asarray(lab)).astype(np.int64).reshape(-1)
    if lab.size == 1 and len(arr) > 1:
        lab = np.full(len(arr), int(lab[0]))
    if lab.size != len(arr):
        raise InputError(f"{len(arr)} inputs but {lab.size} labels")
    return arr, lab
