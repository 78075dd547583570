"""Typed outcome of a verification run and its VNN-COMP text form.

Status words follow VNN-COMP: ``sat`` (a counterexample exists; the property is violated),
``unsat`` (the property holds), ``unknown``, ``timeout`` and ``error``.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

import vnnlib

__all__ = ["Counterexample", "Result", "Status"]


class Status(enum.Enum):
    """Outcome of a run; ``value`` is the VNN-COMP results-file word."""

    SAT = "sat"
    UNSAT = "unsat"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"

    @property
    def word(self) -> str:
        """The VNN-COMP word (``'sat'``, ``'unsat'``, ...)."""
        return self.value


@dataclass(frozen=True, slots=True)
class Counterexample:
    """A confirmed violation of the property.

    Attributes:
        x: flat input (C order of the model's input shape), float64 holding the exact
            values that were fed to onnxruntime.
        y: flat model output as computed by onnxruntime on ``x`` (float64).
        case_index: index into ``Spec.cases`` of the violated case.
    """

    x: np.ndarray
    y: np.ndarray
    case_index: int

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            arr = np.array(getattr(self, name), dtype=np.float64).reshape(-1)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def to_vnncomp(self) -> str:
        """The VNN-COMP counterexample text ``((X_0 v) ... (Y_0 w) ...)``."""
        return vnnlib.format_counterexample(self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (lists of floats)."""
        return {"x": self.x.tolist(), "y": self.y.tolist(), "case_index": self.case_index}


@dataclass(frozen=True, slots=True)
class Result:
    """The answer of one run.

    Attributes:
        status: the verdict.
        counterexample: present exactly when ``status`` is ``SAT``.
        reason: one human-readable line saying why the run ended this way.
        stats: timings in seconds (``*_s`` keys) and counters, read-only.
        stop: why the run stopped, one word: ``proved``, ``counterexample``, ``timeout``,
            ``memory``, ``no_candidate``, ``max_domains``, ``max_depth`` (the search's
            reasons) or ``incomplete`` (bounds could not decide and no search ran).
    """

    status: Status
    counterexample: Counterexample | None = None
    reason: str = ""
    stats: Mapping[str, float] = field(default_factory=dict)
    stop: str = ""

    def __post_init__(self) -> None:
        if (self.status is Status.SAT) != (self.counterexample is not None):
            raise ValueError("a counterexample must be given exactly for status SAT")
        object.__setattr__(self, "stats", MappingProxyType(dict(self.stats)))

    def to_vnncomp(self) -> str:
        """Results-file text: the status word on the first line, then (sat) the counterexample."""
        if self.counterexample is None:
            return self.status.word + "\n"
        text = self.counterexample.to_vnncomp().rstrip("\n")
        return f"{self.status.word}\n{text}\n"

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON (non-finite numbers become null)."""
        data = self.to_dict()
        for key in ("timings", "stats"):
            data[key] = {k: v if math.isfinite(v) else None for k, v in data[key].items()}
        return json.dumps(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: status, reason, timings (``*_s``), other stats, counterexample."""
        return {
            "status": self.status.word,
            "stop": self.stop,
            "reason": self.reason,
            "timings": {k: v for k, v in self.stats.items() if k.endswith("_s")},
            "stats": {k: v for k, v in self.stats.items() if not k.endswith("_s")},
            "counterexample": None
            if self.counterexample is None
            else self.counterexample.to_dict(),
        }
