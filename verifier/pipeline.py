"""``verify(model, spec) -> Result``: load, then run a sequence of stages until one decides.

Stages are ``Stage(name, run)`` records; ``run(ctx)`` returns a decisive :class:`Result` or
``None`` to pass on to the next stage. The default sequence is :data:`DEFAULT_STAGES`;
adding a stage (for example incomplete bounds after the falsifier) is one entry there.

Answer semantics:

* ``unsat`` when the spec has no violation case at all (nothing can violate it), or when
  sound bounds refute every case (CROWN, then alpha-CROWN, then branch-and-bound on the
  cases left open);
* ``sat`` only for a counterexample confirmed by onnxruntime on the original ONNX file
  (see :mod:`verifier.counterexample_check`), found by the falsifier or during the search;
* ``timeout`` when the deadline expired before every stage had completed;
* ``unknown`` when every stage completed (within the budget) without deciding.

Bad input (missing or unreadable files, an ONNX file that does not load, an unsupported op,
a malformed spec, input/output counts that do not match the model, an unavailable device)
raises :class:`InputError` with a one-line message. Anything else is a bug and propagates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import models
import vnnlib
from bounds import BoundGraph, BoundsError
from bounds.relax import DomainError
from branching import (
    BabProblem,
    BabResult,
    BabSearch,
    BabStats,
    StopReason,
    choose_split_mode,
)
from branching.stabilize import StabilizeStats
from verifier.attack import AttackProgress, CaseGroup, group_cases, iter_candidates
from verifier.config import InputError, VerifyConfig
from verifier.counterexample_check import OrtChecker, OrtCheckError
from verifier.deadline import Deadline
from verifier.incomplete import OpenGroup, run_incomplete, stabilize_group
from verifier.result import Counterexample, Result, Status
from verifier.runtime import Runtime, runtime_context

__all__ = [
    "DEFAULT_STAGES",
    "Problem",
    "Stage",
    "StageContext",
    "load_problem",
    "make_forward",
    "verify",
    "verify_loaded",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Problem:
    """A loaded verification problem.

    Attributes:
        model_path, spec_path: the files it came from.
        graph: the model (single input, single output).
        spec: the property, counts checked against the model.
        groups: the spec's cases grouped by input box.
    """

    model_path: Path
    spec_path: Path
    graph: models.Graph
    spec: vnnlib.Spec
    groups: tuple[CaseGroup, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Static per-sample input shape (batch fixed to 1)."""
        return tuple(self.graph.inputs[0].shape)


@dataclass(slots=True)
class StageContext:
    """What every stage receives. ``stats`` and ``notes`` are filled in by the stages."""

    problem: Problem
    config: VerifyConfig
    deadline: Deadline
    runtime: Runtime
    checker: OrtChecker
    stats: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    open_groups: list[OpenGroup] = field(default_factory=list)
    bound_graph: BoundGraph | None = None
    progress: Callable[[BabStats], None] | None = None
    stop: str = ""


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of the pipeline: ``run(ctx)`` returns a decisive Result or None."""

    name: str
    run: Callable[[StageContext], Result | None]


def _size(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape))


def _load_graph(model_path: Path) -> models.Graph:
    try:
        graph = models.load_onnx(model_path)
    except models.ModelLoadError as exc:
        raise InputError(str(exc)) from exc
    except OSError as exc:
        raise InputError(f"{model_path}: cannot read the model: {exc.strerror or exc}") from exc
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise InputError(
            f"{model_path}: expected one input and one output, found "
            f"{len(graph.inputs)} input(s) and {len(graph.outputs)} output(s)"
        )
    return graph


def load_problem(model_path: str | Path, spec_path: str | Path) -> Problem:
    """Load and cross-check the model and the spec.

    Raises:
        InputError: a file is missing/unreadable/invalid or the spec's X/Y counts do not
            match the model's flat input/output sizes.
    """
    model_path, spec_path = Path(model_path), Path(spec_path)
    for path, what in ((model_path, "model"), (spec_path, "spec")):
        if not path.is_file():
            raise InputError(f"{path}: {what} file not found")
    graph = _load_graph(model_path)
    n_in, n_out = _size(graph.inputs[0].shape), _size(graph.outputs[0].shape)
    try:
        spec = vnnlib.load_vnnlib(spec_path, n_inputs=n_in, n_outputs=n_out)
    except (vnnlib.VnnlibError, vnnlib.SpecShapeError) as exc:
        raise InputError(str(exc)) from exc
    except OSError as exc:
        raise InputError(f"{spec_path}: cannot read the spec: {exc.strerror or exc}") from exc
    log.info(
        "loaded %s (%d nodes, %d inputs, %d outputs) and %s (%d cases)",
        model_path.name,
        len(graph.nodes),
        n_in,
        n_out,
        spec_path.name,
        len(spec.cases),
    )
    return Problem(model_path, spec_path, graph, spec, group_cases(spec.cases))


def make_forward(graph: models.Graph, runtime: Runtime) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model on flat tensors: ``[B, n_in] -> [B, n_out]`` (via ``models.evaluate``)."""
    in_shape = tuple(graph.inputs[0].shape)
    constants = models.constant_tensors(graph, device=runtime.device, dtype=runtime.dtype)

    def forward(x: torch.Tensor) -> torch.Tensor:
        """``[B, n_in] -> [B, n_out]``."""
        out = models.evaluate(graph, x.reshape(x.shape[0], *in_shape), constants=constants)
        return out.reshape(x.shape[0], -1)

    return forward


def trivial_stage(ctx: StageContext) -> Result | None:
    """A spec without violation cases holds trivially (nothing can violate it)."""
    if ctx.problem.spec.cases:
        return None
    return Result(Status.UNSAT, reason="the spec has no violation case; it holds trivially")


def attack_stage(ctx: StageContext) -> Result | None:
    """Falsifier stage: search for violations, confirm each candidate with onnxruntime."""
    cfg = ctx.config.attack
    if not cfg.enabled:
        ctx.notes.append("falsifier disabled")
        return None
    problem, rt = ctx.problem, ctx.runtime
    progress = AttackProgress()
    rejected = 0
    candidates = iter_candidates(
        make_forward(problem.graph, rt),
        problem.groups,
        cfg,
        ctx.deadline.child(cfg.time_fraction),
        device=rt.device,
        dtype=rt.dtype,
        progress=progress,
    )
    by_case = {i: g for g in problem.groups for i in g.case_indices}
    try:
        for cand in candidates:
            group = by_case[cand.case_index]
            order = sorted(group.case_indices, key=lambda i: i != cand.case_index)
            constraints = [(i, problem.spec.cases[i].C, problem.spec.cases[i].d) for i in order]
            found = ctx.checker.confirm(cand.x, group.lower, group.upper, constraints)
            if found is not None:
                reason = f"counterexample for case {found.case_index} confirmed by onnxruntime"
                return Result(Status.SAT, found, reason=reason)
            rejected += 1
    except OrtCheckError as exc:
        ctx.notes.append(f"candidate counterexample could not be checked: {exc}")
        return None
    finally:
        candidates.close()
        ctx.stats.update(
            attack_points=progress.points,
            attack_forward_passes=progress.forward_passes,
            attack_rejected=rejected,
            attack_best_margin=progress.best_margin,
        )
    ctx.notes.append(
        f"falsifier found no counterexample ({progress.points} points, "
        f"best margin {progress.best_margin:.4g}, {rejected} candidate(s) rejected)"
    )
    return None


def bounds_stage(ctx: StageContext) -> Result | None:
    """Incomplete verification: CROWN then alpha-CROWN on every box (see verifier.incomplete)."""
    cfg = ctx.config.bounds
    if not cfg.enabled:
        ctx.notes.append("bounds disabled")
        return None
    try:
        bg = BoundGraph(ctx.problem.graph)
        ctx.bound_graph = bg
        share = 0.8
        if cfg.bab:
            # The search needs time of its own; input splitting bounds its boxes by CROWN
            # from scratch, so alpha-CROWN's tighter intervals would not be used.
            share = 0.5
            modes = {
                choose_split_mode(bg, ctx.config.bab, g.lower, g.upper) for g in ctx.problem.groups
            }
            if modes == {"input"} and cfg.method == "alpha-crown":
                cfg = dataclasses.replace(cfg, method="crown")
                ctx.notes.append("alpha-CROWN skipped: the search splits the inputs")
        result = run_incomplete(
            bg,
            ctx.problem.groups,
            cfg,
            ctx.deadline,
            str(ctx.runtime.device),
            ctx.stats,
            ctx.open_groups,
            time_share=share,
        )
    except (BoundsError, DomainError) as exc:
        ctx.notes.append(f"bounds could not be computed: {exc}")
        return None
    if result is None:
        ctx.notes.append(f"{cfg.method} could not refute every case")
        if not cfg.bab:
            ctx.notes.append("branch-and-bound disabled (--no-bab)")
    return result


def _falsifier(
    ctx: StageContext,
    forward: Callable[[torch.Tensor], torch.Tensor],
    group: CaseGroup,
    C: np.ndarray,
    d: np.ndarray,
):
    """Candidate points -> a counterexample confirmed by onnxruntime, or None.

    Points are screened with our own evaluation first (``forward``, in the runtime dtype;
    cheap, batched); the few that come closest to violating the case go to onnxruntime,
    which alone decides.
    """
    constraints = [
        (i, ctx.problem.spec.cases[i].C, ctx.problem.spec.cases[i].d) for i in group.case_indices
    ]
    Ct = torch.as_tensor(C, dtype=torch.float64)
    dt = torch.as_tensor(d, dtype=torch.float64)
    slack = 1e-6 * (1.0 + float(np.abs(d).max(initial=0.0)))

    def falsify(points: torch.Tensor) -> Counterexample | None:
        x = points.reshape(points.shape[0], -1).to(torch.float64)
        with torch.no_grad():
            y = forward(x.to(ctx.runtime.dtype)).to(torch.float64)
        worst = (y @ Ct.T - dt).max(-1).values
        near = torch.nonzero(worst <= slack).flatten()
        if near.numel() == 0:
            return None
        for i in near[torch.argsort(worst[near])][:3].tolist():
            found = ctx.checker.confirm(x[i].numpy(), group.lower, group.upper, constraints)
            if found is not None:
                return found
        return None

    return falsify


def bab_stage(ctx: StageContext) -> Result | None:
    """Branch-and-bound on every case the incomplete bounds left open (one search each)."""
    bcfg = ctx.config.bounds
    if not (bcfg.enabled and bcfg.bab) or ctx.bound_graph is None or not ctx.open_groups:
        return None
    bg = ctx.bound_graph
    dtype = torch.float64 if bcfg.dtype == "float64" else torch.float32
    device = ctx.runtime.device
    start = time.perf_counter()
    if _stabilize(ctx, bg):
        ctx.stop = StopReason.PROVED.value
        return Result(
            Status.UNSAT,
            reason="every case refuted by alpha-CROWN after stabilising intermediate neurons",
        )
    # Every open case gets an equal share of what is left (a case that ends early leaves
    # its time to the next ones), easiest first: cases whose bound came closest to a proof.
    forward = make_forward(ctx.problem.graph, ctx.runtime)  # shared by every case's search
    todo = []
    for og in ctx.open_groups:
        for local, done in enumerate(og.refuted):
            if not done:
                rows = og.rows.case_of_row == local
                gap = float(np.max(og.lower[rows] - og.rows.d[rows] - og.margin[rows]))
                todo.append((-gap, og.index, local, og))
    todo.sort(key=lambda t: (t[0], t[1], t[2]))
    searches: list[BabSearch] = []
    progress = _total_progress(ctx, searches, start)
    # Cases that ran out of their share keep their open domains and get, in turn, an
    # equal share of what the others left (any case still open means no proof, but the
    # search may yet find a counterexample there).
    paused: list[tuple[int, BabSearch]] = []
    failed: list[str] = []
    try:
        for pos, (_, gi, local, og) in enumerate(todo):
            group = ctx.problem.groups[gi]
            case = group.case_indices[local]
            if ctx.deadline.expired():
                ctx.stop = StopReason.TIMEOUT.value
                failed.append(f"case {case}: timeout")
                continue
            shape = (1,) + bg.input_shape
            lo = torch.tensor(group.lower, dtype=dtype, device=device).reshape(shape)
            hi = torch.tensor(group.upper, dtype=dtype, device=device).reshape(shape)
            rows = og.rows.case_of_row == local
            C, d = og.rows.C[rows], og.rows.d[rows]
            problem = BabProblem(
                lo,
                hi,
                torch.tensor(C, dtype=dtype, device=device),
                torch.tensor(d, dtype=dtype, device=device),
                torch.tensor(d + og.margin[rows], dtype=dtype, device=device),
                og.intermediate,  # type: ignore[arg-type]
            )
            search = BabSearch(
                bg,
                problem,
                ctx.config.bab,
                falsify=_falsifier(ctx, forward, group, C, d),
                progress=progress,
            )
            searches.append(search)
            res = search.run(ctx.deadline.child(1.0 / (len(todo) - pos)))
            found = _settle(ctx, case, res, paused, failed, search)
            if found is not None:
                return found
            _cap_paused(paused, failed, ctx.config.bab.max_memory_mb)
        while paused and not ctx.deadline.expired():
            again, paused = paused, []
            for pos, (case, search) in enumerate(again):
                res = search.run(ctx.deadline.child(1.0 / (len(again) - pos)))
                found = _settle(ctx, case, res, paused, failed, search)
                if found is not None:
                    return found
    except (BoundsError, DomainError) as exc:
        ctx.notes.append(f"branch-and-bound could not bound a domain: {exc}")
        return None
    finally:
        ctx.stats.update(_totals(searches, start).to_dict())
    unresolved = failed + [f"case {case}: timeout (time budget spent)" for case, _ in paused]
    if unresolved:
        if paused:
            ctx.stop = StopReason.TIMEOUT.value
        ctx.notes.append("branch-and-bound left " + "; ".join(unresolved))
        return None
    ctx.stop = StopReason.PROVED.value
    return Result(Status.UNSAT, reason="every case refuted by branch-and-bound")


def _stabilize(ctx: StageContext, bg: BoundGraph) -> bool:
    """Prove intermediate neurons stable before the search (ReLU networks; see
    :func:`branching.stabilize.stabilize`) and re-bound the open groups from there; True
    when that refuted every case."""
    stats = StabilizeStats()
    try:
        ctx.open_groups = [
            stabilize_group(
                bg,
                og,
                ctx.problem.groups[og.index].lower,
                ctx.problem.groups[og.index].upper,
                ctx.config.bounds,
                ctx.config.bab,
                str(ctx.runtime.device),
                ctx.deadline,
                stats,
                getattr(ctx.progress, "stabilizing", None),
            )
            for og in ctx.open_groups
        ]
    except (BoundsError, DomainError) as exc:
        ctx.notes.append(f"stabilising intermediate neurons failed: {exc}")
    finally:
        if stats.attempted:
            ctx.stats.update(stats.to_dict())
    moved = stats.proved or stats.tightened
    return bool(moved) and all(bool(og.refuted.all()) for og in ctx.open_groups)


def _settle(
    ctx: StageContext,
    case: int,
    res: BabResult,
    paused: list[tuple[int, BabSearch]],
    failed: list[str],
    search: BabSearch,
) -> Result | None:
    """Record one run's outcome: the ``sat`` result for a counterexample, else None."""
    log.info("bab case %d: %s (%s)", case, res.reason.value, res.detail)
    if res.reason is StopReason.COUNTEREXAMPLE:
        ctx.stop = res.reason.value
        reason = (
            f"counterexample for case {res.counterexample.case_index} found during "
            "branch-and-bound, confirmed by onnxruntime"
        )
        return Result(Status.SAT, res.counterexample, reason=reason)
    if res.reason is StopReason.TIMEOUT:
        paused.append((case, search))
    elif res.reason is not StopReason.PROVED:
        ctx.stop = res.reason.value
        failed.append(f"case {case}: {res.reason.value} ({res.detail})")
    return None


def _cap_paused(paused: list[tuple[int, BabSearch]], failed: list[str], cap_mb: float) -> None:
    """Keep the paused searches' open domains within one search's memory cap: the largest
    are given up (answered ``timeout``) first."""
    cap = cap_mb * 2**20
    while paused and sum(s.open_bytes for _, s in paused) > cap:
        largest = max(range(len(paused)), key=lambda i: paused[i][1].open_bytes)
        case, _ = paused.pop(largest)
        failed.append(f"case {case}: timeout (open domains given up to stay within memory)")


def _total_progress(
    ctx: StageContext, searches: list[BabSearch], start: float
) -> Callable[[BabStats], None] | None:
    """The live line and the watchdog see the totals over every case so far (with the
    running case's worst margin), not the running case's alone."""
    if ctx.progress is None:
        return None
    report = ctx.progress
    return lambda current: report(_totals(searches, start, current))


def _totals(searches: list[BabSearch], start: float, current: BabStats | None = None) -> BabStats:
    """Statistics summed over ``searches`` (``current``'s worst margin last, so it shows)."""
    total = BabStats()
    for search in searches:
        if search.stats is not current:
            _merge_stats(total, search.stats)
    if current is not None:
        _merge_stats(total, current)
    total.elapsed_s = time.perf_counter() - start
    if searches:  # the mean over the cases searched so far
        total.verified_share = sum(x.stats.verified_share for x in searches) / len(searches)
    return total


def _merge_stats(total: BabStats, one: BabStats) -> None:
    total.rounds += one.rounds
    total.domains_bounded += one.domains_bounded
    total.max_depth = max(total.max_depth, one.max_depth)
    total.candidates_checked += one.candidates_checked
    total.domains_filtered += one.domains_filtered
    total.rechecked += one.rechecked
    total.rechecks_failed += one.rechecks_failed
    total.peak_domains = max(total.peak_domains, one.peak_domains)
    total.domains_left += one.domains_left
    if one.rounds:
        total.worst_margin = one.worst_margin


DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("trivial", trivial_stage),
    Stage("attack", attack_stage),
    Stage("bounds", bounds_stage),
    Stage("bab", bab_stage),
)


@contextlib.contextmanager
def _timed(stats: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        stats[key] = stats.get(key, 0.0) + time.perf_counter() - start


def _run_stages(ctx: StageContext, stages: tuple[Stage, ...]) -> Result:
    """Run stages in order until one decides; else timeout (deadline hit) or unknown."""
    for stage in stages:
        if ctx.deadline.expired():
            reason = (
                f"time budget spent ({ctx.deadline.elapsed():.1f} s) before the {stage.name} stage"
            )
            if ctx.notes:
                reason += ": " + "; ".join(ctx.notes)
            return Result(Status.TIMEOUT, reason=reason, stop=StopReason.TIMEOUT.value)
        log.info("stage %s (%.2f s left)", stage.name, ctx.deadline.remaining())
        with _timed(ctx.stats, f"{stage.name}_s"):
            result = stage.run(ctx)
        if result is not None:
            stop = ctx.stop or _STOP_OF_STATUS.get(result.status, "")
            reason = result.reason or f"decided by {stage.name}"
            return dataclasses.replace(result, reason=reason, stop=stop)
    if ctx.deadline.expired():
        reason = f"time budget spent ({ctx.deadline.elapsed():.1f} s): " + "; ".join(ctx.notes)
        return Result(Status.TIMEOUT, reason=reason, stop=StopReason.TIMEOUT.value)
    reason = "; ".join(ctx.notes) or "no stage decided"
    return Result(Status.UNKNOWN, reason=reason, stop=ctx.stop or "incomplete")


_STOP_OF_STATUS = {
    Status.SAT: StopReason.COUNTEREXAMPLE.value,
    Status.UNSAT: StopReason.PROVED.value,
    Status.TIMEOUT: StopReason.TIMEOUT.value,
}


def verify(
    model_path: str | Path,
    spec_path: str | Path,
    config: VerifyConfig | None = None,
    *,
    deadline: Deadline | None = None,
    stages: tuple[Stage, ...] = DEFAULT_STAGES,
    progress: Callable[[BabStats], None] | None = None,
    **overrides: Any,
) -> Result:
    """Verify that the model satisfies the spec.

    Args:
        model_path: ONNX file (single input, single output).
        spec_path: VNN-LIB file; its X/Y counts must equal the model's flat input/output sizes.
        config: settings (defaults when None); ``config.timeout`` sets the deadline when
            ``deadline`` is not given.
        deadline: an already running budget (the CLI starts it before loading anything).
        stages: the stage sequence (:data:`DEFAULT_STAGES`).
        progress: called with the search statistics after every branch-and-bound round;
            when it has a ``stabilizing`` method, that one is called with
            :class:`branching.stabilize.StabilizeStats` while neurons are stabilised.
        **overrides: settings applied on top of ``config`` (see
            :meth:`VerifyConfig.with_overrides`), e.g. ``timeout=5, attack__steps=20``.

    Returns:
        The Result; ``stats`` holds ``load_s``, ``<stage>_s``, ``total_s`` and stage counters.

    Raises:
        InputError: bad input (see the module docstring).
    """
    return verify_loaded(
        lambda: load_problem(model_path, spec_path),
        config,
        deadline=deadline,
        stages=stages,
        progress=progress,
        **overrides,
    )


def verify_loaded(
    load: Callable[[], Problem],
    config: VerifyConfig | None = None,
    *,
    deadline: Deadline | None = None,
    stages: tuple[Stage, ...] = DEFAULT_STAGES,
    progress: Callable[[BabStats], None] | None = None,
    **overrides: Any,
) -> Result:
    """:func:`verify` for a problem produced by ``load()`` (a cache, an in-memory model).

    ``load`` runs inside the run's runtime context and its time is reported as ``load_s``;
    ``Problem.model_path`` must be an ONNX file onnxruntime can open (it confirms ``sat``).
    """
    config = config if config is not None else VerifyConfig()
    if overrides:
        config = config.with_overrides(**overrides)
    deadline = deadline if deadline is not None else Deadline.after(config.timeout)
    log.info("config: %s", config.to_dict())
    stats: dict[str, float] = {}
    start = time.perf_counter()
    with runtime_context(config.runtime) as rt:
        with _timed(stats, "load_s"):
            problem = load()
        ctx = StageContext(problem, config, deadline, rt, OrtChecker(problem.model_path), stats)
        ctx.progress = progress
        result = _run_stages(ctx, stages)
    stats["total_s"] = time.perf_counter() - start
    log.info("result: %s (%s)", result.status.word, result.reason)
    return dataclasses.replace(result, stats=stats)
