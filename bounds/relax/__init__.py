"""Linear relaxations of nonlinear ops, one registry for the whole engine.

``get_relaxation(op, attrs)`` returns the :class:`UnaryRelaxation` of an
elementwise op; ``relax_mul`` (in :mod:`bounds.relax.bilinear`) relaxes the
product of two perturbed values. lut/ receives these functions as arguments
(it never imports bounds/), so tables and engine always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import convex, periodic, piecewise, s_shaped
from .base import DomainError, Lines, Planes, UnaryRelaxation

FACTORIES: dict[str, Callable[[Mapping[str, Any]], UnaryRelaxation]] = {
    **piecewise.RELAXATIONS,
    **s_shaped.RELAXATIONS,
    **periodic.RELAXATIONS,
    **convex.RELAXATIONS,
}


class UnsupportedRelaxation(KeyError):
    """No relaxation is registered for an op."""


def get_relaxation(op: str, attrs: Mapping[str, Any] | None = None) -> UnaryRelaxation:
    """The relaxation of elementwise op ``op`` with node attributes ``attrs``."""
    try:
        factory = FACTORIES[op]
    except KeyError:
        raise UnsupportedRelaxation(
            f"no relaxation for op {op!r}; relaxed ops: {', '.join(sorted(FACTORIES))}"
        ) from None
    return factory(attrs or {})


__all__ = [
    "DomainError",
    "FACTORIES",
    "Lines",
    "Planes",
    "UnaryRelaxation",
    "UnsupportedRelaxation",
    "get_relaxation",
]
