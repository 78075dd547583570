"""Grid descriptions of lookup tables and the symmetry reductions they rely on.

A table stores, for every node of a regular grid over *reduced* interval
endpoints, the optimal split position as a fraction of the interval. Each input
interval ``[l, u]`` of the op owns two axes (its reduced lower and upper end), so
unary ops have 2 axes and the product ``x*y`` has 4 (``x`` first).

A :class:`Reduction` is an affine map ``x -> a*x + b`` chosen per interval that
sends it into the table's canonical region; the split fraction is invariant under
such maps when the relaxation is equivariant (checked when a table is built):

* ``none``: identity.
* ``periodic``: shift by a multiple of ``period`` so that the interval's centre lies
  in ``[origin, origin + period)`` (Sin/Cos).
* ``shift``: translate the lower end to 0; the table is keyed by the width only.
* ``scale``: divide by ``u`` (positive domains); the table is keyed by ``l/u``.
* ``scale_sym``: divide by ``max(|l|, |u|)`` and mirror when ``|l| > |u|``, so the
  upper end becomes 1 (odd or even powers); keyed by the reduced lower end.
* ``affine``: map ``[l, u]`` onto ``[0, 1]`` (the table becomes a constant).

Each reduced interval is keyed either by its ends ``(l', u')`` (``"ends"``, the
reference layout) or by its centre and width ``(c', w')`` (``"centre_width"``). The
latter resolves narrow intervals by a fine width axis near 0, where the optimum
tends to the midpoint, instead of mixing them with wide neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

TRANSFORMS = ("linear", "log", "asinh")
REDUCTIONS = ("none", "periodic", "shift", "scale", "scale_sym", "affine")
KEYS = ("ends", "centre_width")


@dataclass(frozen=True)
class Axis:
    """``count`` nodes from ``start`` to ``stop``, equally spaced in ``transform`` space.

    Transforms: ``linear``; ``log`` (positive axes); ``asinh``: ``asinh(x / scale)``,
    fine steps (about ``scale`` times the step in transform space) near 0 and
    steps growing like ``|x|`` far out, for ops that flatten away from 0.
    ``count == 1`` gives a single node at ``start`` (``stop`` must equal it).
    """

    start: float
    stop: float
    count: int
    transform: str = "linear"
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"axis transform {self.transform!r} not in {TRANSFORMS}")
        if self.count < 1 or (self.count == 1 and self.start != self.stop):
            raise ValueError(f"axis {self}: count must be >= 1; one node needs start == stop")
        if self.count > 1 and not self.stop > self.start:
            raise ValueError(f"axis {self}: stop must exceed start")
        if self.transform == "log" and self.start <= 0:
            raise ValueError(f"log axis {self} must start above 0")

    def _t(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.transform == "log":
            return np.log(x)
        if self.transform == "asinh":
            return np.arcsinh(x / self.scale)
        return x

    def _inverse(self, t: np.ndarray) -> np.ndarray:
        if self.transform == "log":
            return np.exp(t)
        if self.transform == "asinh":
            return np.sinh(t) * self.scale
        return t

    def nodes(self) -> np.ndarray:
        """The node values (float64)."""
        if self.count == 1:
            return np.array([self.start], dtype=np.float64)
        t0, t1 = self._t(self.start), self._t(self.stop)
        k = np.arange(self.count, dtype=np.float64)
        t = t0 + (t1 - t0) * k / (self.count - 1)
        out = self._inverse(t)
        out[0], out[-1] = self.start, self.stop
        return out

    def coord(self, x: Tensor) -> Tensor:
        """Continuous node index of ``x`` (0 at ``start``, ``count - 1`` at ``stop``)."""
        if self.count == 1:
            return torch.zeros_like(x)
        t0, t1 = float(self._t(self.start)), float(self._t(self.stop))
        if self.transform == "log":
            tx = torch.log(x)
        elif self.transform == "asinh":
            tx = torch.asinh(x / self.scale)
        else:
            tx = x
        return (tx - t0) * ((self.count - 1) / (t1 - t0))

    def contains(self, x: Tensor, rtol: float = 1e-6) -> Tensor:
        """Boolean mask: ``x`` lies within the axis range (with a small tolerance)."""
        tol = rtol * max(1.0, abs(self.start), abs(self.stop))
        return (x >= self.start - tol) & (x <= self.stop + tol)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "stop": self.stop,
            "count": self.count,
            "transform": self.transform,
            "scale": self.scale,
        }


@dataclass(frozen=True)
class Reduction:
    """Symmetry reduction of one interval (see module docstring)."""

    kind: str = "none"
    period: float | None = None
    origin: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in REDUCTIONS:
            raise ValueError(f"reduction {self.kind!r} not in {REDUCTIONS}")
        if (self.kind == "periodic") != (self.period is not None):
            raise ValueError("a period is given exactly for the 'periodic' reduction")

    def affine(self, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)`` of the map ``x -> a*x + b`` for each interval (finite, ``l < u``)."""
        one, zero = torch.ones_like(l), torch.zeros_like(l)
        if self.kind == "none":
            return one, zero
        if self.kind == "periodic":
            assert self.period is not None
            k = torch.floor(((l + u) * 0.5 - self.origin) / self.period)
            return one, -k * self.period
        if self.kind == "shift":
            return one, -l
        if self.kind == "scale":
            return 1.0 / u, zero
        if self.kind == "scale_sym":
            s = torch.maximum(l.abs(), u.abs())
            return torch.where(l.abs() > u.abs(), -1.0 / s, 1.0 / s), zero
        w = u - l
        return 1.0 / w, -l / w

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "period": self.period, "origin": self.origin}


@dataclass(frozen=True)
class Grid:
    """Two axes per input interval (its key, see :data:`KEYS`), one reduction and one
    key kind per interval."""

    axes: tuple[Axis, ...]
    reductions: tuple[Reduction, ...] = field(default=())
    keys: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.axes) % 2 or not self.axes:
            raise ValueError("a grid has two axes (lower, upper end) per input interval")
        if not self.reductions:
            object.__setattr__(self, "reductions", (Reduction(),) * self.n_intervals)
        if not self.keys:
            object.__setattr__(self, "keys", ("ends",) * self.n_intervals)
        if len(self.reductions) != self.n_intervals or len(self.keys) != self.n_intervals:
            raise ValueError("one reduction and one key kind per input interval are required")
        if any(k not in KEYS for k in self.keys):
            raise ValueError(f"key kinds must be in {KEYS}, got {self.keys}")

    @property
    def n_intervals(self) -> int:
        return len(self.axes) // 2

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.count for a in self.axes)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def node_intervals(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per input interval, the ``(lower, upper)`` node values broadcast to ``shape``."""
        mesh = np.meshgrid(*[a.nodes() for a in self.axes], indexing="ij")
        out = []
        for i, key in enumerate(self.keys):
            a, b = mesh[2 * i], mesh[2 * i + 1]
            out.append((a - b / 2, a + b / 2) if key == "centre_width" else (a, b))
        return out

    def key_values(self, ends: list[Tensor]) -> list[Tensor]:
        """Axis coordinates (ends or centre/width) of reduced intervals ``[l0, u0, l1, ...]``."""
        out: list[Tensor] = []
        for i, key in enumerate(self.keys):
            l, u = ends[2 * i], ends[2 * i + 1]
            out += [(l + u) * 0.5, u - l] if key == "centre_width" else [l, u]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "axes": [a.to_dict() for a in self.axes],
            "reductions": [r.to_dict() for r in self.reductions],
            "keys": list(self.keys),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grid:
        return cls(
            tuple(Axis(**a) for a in d["axes"]),
            tuple(Reduction(**r) for r in d["reductions"]),
            tuple(d.get("keys", ())),
        )


def uniform_grid(start: float, stop: float, count: int, reduction: Reduction | None = None) -> Grid:
    """The reference layout: both ends of one interval on the same uniform axis."""
    ax = Axis(start, stop, count)
    return Grid((ax, ax), (reduction or Reduction(),))
