"""Vectorised table builders (torch, float64), relaxations passed in as functions.

For every grid node that is an interval, the builder minimises the total
relaxation gap (:mod:`lut.objective`) over the split fraction with a coarse scan
plus golden-section steps, batched over all nodes. Builds are deterministic
(elementwise float64 torch on CPU, fixed chunking), so rebuilding on the same
platform and torch version reproduces the table bit for bit (checked for one and
two intra-op threads).

Before building, :func:`check_reduction` verifies numerically that the grid's
symmetry reduction really holds for the relaxation (otherwise a table keyed by
reduced intervals would not match the engine) and raises
:class:`~lut.errors.ReductionError` if not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .errors import ReductionError
from .grid import Grid, Reduction
from .objective import (
    Objective,
    Relax1D,
    RelaxMul,
    optimise_fraction,
    split_objective_1d,
    split_objective_mul,
)
from .table import QUANT, LookupTable, TableMeta

log = logging.getLogger(__name__)

AREA = "total area between upper and lower relaxation lines of both halves"
VOLUME = "total volume between upper and lower relaxation planes of both halves (x split)"
CHUNK = 1 << 15
PROBES = 24
MID_RTOL = 1e-4
_DT = torch.float64

ObjectiveFactory = Callable[[list[Tensor]], Objective]


def _node_keys(grid: Grid) -> tuple[list[np.ndarray], np.ndarray]:
    """Flattened reduced endpoints of every node and the mask of real intervals."""
    keys: list[np.ndarray] = []
    valid = np.ones(grid.size, dtype=bool)
    for lo, hi in grid.node_intervals():
        keys += [lo.ravel(), hi.ravel()]
        valid &= hi.ravel() > lo.ravel()
    return keys, valid


def _optimise_nodes(factory: ObjectiveFactory, grid: Grid, coarse: int, golden: int) -> np.ndarray:
    keys, valid = _node_keys(grid)
    t_all = np.full(grid.size, 0.5)
    idx = np.flatnonzero(valid)
    for s in range(0, idx.size, CHUNK):
        sel = idx[s : s + CHUNK]
        ends = [torch.from_numpy(k[sel]).to(_DT) for k in keys]
        objective = factory(ends)
        t, best = optimise_fraction(objective, ends[0], coarse=coarse, golden=golden)
        mid = objective(torch.full_like(t, 0.5))
        # Keep the exact midpoint unless the optimum is better by more than MID_RTOL
        # (relative): smaller gains are noise (e.g. outward-rounded gaps of nearly linear
        # pieces) and chasing them makes the table irregular.
        t = torch.where(best < mid * (1.0 - MID_RTOL), t, torch.full_like(t, 0.5))
        t_all[sel] = t.numpy()
    q = np.rint(np.clip(t_all, 0.0, 1.0) * QUANT).astype(np.uint16)
    return q.reshape(grid.shape)


def _probe_intervals(grid: Grid, n: int = PROBES) -> list[Tensor]:
    """Deterministic node intervals spread over the grid (inputs of fingerprints/checks)."""
    keys, valid = _node_keys(grid)
    idx = np.flatnonzero(valid)
    pick = idx[np.linspace(0, idx.size - 1, min(n, idx.size)).round().astype(int)]
    return [torch.from_numpy(k[pick]).to(_DT) for k in keys]


def fingerprint(relax: Callable[..., tuple[Tensor, ...]], grid: Grid) -> dict:
    """Relaxation outputs on fixed probe intervals of ``grid`` (JSON-ready)."""
    ends = _probe_intervals(grid)
    outs = relax(*ends)
    return {
        "inputs": [e.tolist() for e in ends],
        "outputs": [o.to(_DT).expand_as(ends[0]).tolist() for o in outs],
    }


def _group_elements(red: Reduction) -> list[tuple[float, float]]:
    """Sample maps ``x -> a*x + b`` under which the reduced table must be invariant."""
    if red.kind == "periodic":
        assert red.period is not None
        return [(1.0, k * red.period) for k in (-3, -1, 1, 2, 5)]
    if red.kind == "shift":
        return [(1.0, c) for c in (-6.5, -1.25, 0.75, 3.0)]
    if red.kind == "scale":
        return [(s, 0.0) for s in (1e-3, 0.3, 7.0, 250.0)]
    if red.kind == "scale_sym":
        return [(s, 0.0) for s in (1e-2, 0.3, 7.0, -0.5, -4.0)]
    if red.kind == "affine":
        return [(0.25, -1.5), (3.0, 0.5), (-2.0, 1.0)]
    return []


def check_reduction(factory: ObjectiveFactory, grid: Grid, rtol: float = 1e-4) -> None:
    """Check that the split objective is invariant (up to a factor) under the reductions.

    For probe intervals ``I`` of the grid and sampled maps ``g`` of each interval's
    reduction, the objective on ``g(I)`` split at ``g(p)`` must be proportional to
    the objective on ``I`` split at ``p`` for several ``p``.

    Raises:
        ReductionError: when the largest relative deviation exceeds ``rtol``.
    """
    ends = _probe_intervals(grid)
    fracs = (0.15, 0.35, 0.5, 0.65, 0.85)
    base = [optimise_free(factory, ends, t) for t in fracs]
    for pair, red in enumerate(grid.reductions):
        for a, b in _group_elements(red):
            moved = list(ends)
            lo, hi = a * ends[2 * pair] + b, a * ends[2 * pair + 1] + b
            moved[2 * pair], moved[2 * pair + 1] = torch.minimum(lo, hi), torch.maximum(lo, hi)
            flip = a < 0 and pair == 0
            vals = [optimise_free(factory, moved, 1.0 - t if flip else t) for t in fracs]
            ratio = torch.stack([v / w for v, w in zip(vals, base, strict=True)])
            ok = torch.isfinite(ratio).all(0) & (torch.stack(base).abs() > 0).all(0)
            dev = (ratio / ratio[2] - 1.0).abs().amax(0)[ok]
            if dev.numel() and float(dev.max()) > rtol:
                raise ReductionError(
                    f"reduction {red.kind!r} of interval {pair} does not hold for this "
                    f"relaxation (map x -> {a}*x + {b}: relative deviation "
                    f"{float(dev.max()):.2e}); use a grid without this reduction"
                )


def optimise_free(factory: ObjectiveFactory, ends: list[Tensor], t: float) -> Tensor:
    """The objective for intervals ``ends`` at split fraction ``t``."""
    return factory(ends)(torch.full_like(ends[0], t))


def build_table_1d(
    relax: Relax1D, grid: Grid, name: str, coarse: int = 32, golden: int = 24
) -> LookupTable:
    """Build the split-fraction table of a unary op.

    Args:
        relax: the op's default relaxation ``(l, u) -> (lw, lb, uw, ub)``.
        grid: a 2-axis grid (reduced lower end, upper end).
        name: table name (ONNX-style op name).
        coarse, golden: optimiser parameters (see :func:`optimise_fraction`).
    """
    if grid.n_intervals != 1:
        raise ValueError("build_table_1d needs a grid over one interval")

    def factory(ends: list[Tensor]) -> Objective:
        return split_objective_1d(relax, ends[0], ends[1])

    check_reduction(factory, grid)
    values = _optimise_nodes(factory, grid, coarse, golden)
    fp = fingerprint(relax, grid)
    meta = TableMeta(
        name=name,
        kind="unary",
        objective=AREA,
        optimiser={"coarse": coarse, "golden": golden},
        fingerprint=fp,
    )
    return LookupTable(grid, values, meta)


def build_table_mul(
    relax_mul: RelaxMul, grid: Grid, name: str = "Mul", coarse: int = 32, golden: int = 24
) -> LookupTable:
    """Build the table for splitting ``x`` in ``x*y`` (4 axes: ``xl, xu, yl, yu``)."""
    if grid.n_intervals != 2:
        raise ValueError("build_table_mul needs a grid over two intervals (x, y)")

    def factory(ends: list[Tensor]) -> Objective:
        return split_objective_mul(relax_mul, *ends)

    check_reduction(factory, grid)
    values = _optimise_nodes(factory, grid, coarse, golden)
    fp = fingerprint(relax_mul, grid)
    meta = TableMeta(
        name=name,
        kind="mul",
        objective=VOLUME,
        optimiser={"coarse": coarse, "golden": golden},
        fingerprint=fp,
    )
    return LookupTable(grid, values, meta)
