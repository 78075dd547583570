"""Bound propagation: IBP, CROWN and alpha-CROWN over our graph IR, batched over domains."""

from .alpha import AlphaConfig
from .api import Method, SpecBounds, compute_bounds, compute_bounds_ball
from .deadline import Deadline
from .network import BoundGraph
from .types import CROWN_MAX_ELEMENTS, BallBounds, Bounds, BoundsError, LinearBounds

__all__ = [
    "CROWN_MAX_ELEMENTS",
    "AlphaConfig",
    "BallBounds",
    "BoundGraph",
    "Bounds",
    "BoundsError",
    "Deadline",
    "LinearBounds",
    "Method",
    "SpecBounds",
    "compute_bounds",
    "compute_bounds_ball",
]
