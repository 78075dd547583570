"""Bound propagation: IBP, CROWN and alpha-CROWN over our graph IR, batched over domains."""

from .alpha import AlphaConfig
from .api import Method, SpecBounds, compute_bounds, compute_bounds_ball
from .network import BoundGraph
from .types import BallBounds, Bounds, BoundsError, LinearBounds

__all__ = [
    "AlphaConfig",
    "BallBounds",
    "BoundGraph",
    "Bounds",
    "BoundsError",
    "LinearBounds",
    "Method",
    "SpecBounds",
    "compute_bounds",
    "compute_bounds_ball",
]
