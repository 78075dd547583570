"""Branch-and-bound: domains, branching heuristics (BBPS, BaBSR-like), split points, search.

Typical use (one case of a spec; see :func:`branching.run_bab`)::

    from branching import BabConfig, BabProblem, run_bab
    result = run_bab(bound_graph, BabProblem(lower, upper, C, d, thresholds), BabConfig(),
                     deadline, falsify=check_points)
    result.reason  # StopReason.PROVED, COUNTEREXAMPLE, TIMEOUT, MEMORY, NO_CANDIDATE, ...
"""

from .bab import (
    BabProblem,
    BabSearch,
    Falsifier,
    choose_split_mode,
    intermediate_mode,
    run_bab,
)
from .config import BabConfig, BabResult, BabStats, StopReason
from .domains import DomainMemoryError, DomainStore
from .heuristics import HEURISTICS

__all__ = [
    "HEURISTICS",
    "BabConfig",
    "BabProblem",
    "BabSearch",
    "BabResult",
    "BabStats",
    "DomainMemoryError",
    "DomainStore",
    "Falsifier",
    "StopReason",
    "choose_split_mode",
    "intermediate_mode",
    "run_bab",
]
