"""A monotonic time budget passed down explicitly to every loop that can run long.

The one deadline type of the project: the CLI starts it (counting process start-up), the
verifier stages, the branch-and-bound search and the bounds engine's optimisation loops
all check the same object.

A ``Deadline`` is an absolute point on the ``time.monotonic`` clock (or ``inf`` for no
limit). Stages check ``expired()`` inside their loops and stop early; ``child(fraction)``
gives a sub-stage a share of what is left without ever extending the parent's budget.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Deadline", "process_age"]

_MAX_AGE = 120.0  # a larger age means the clocks disagree; count from now instead


def process_age() -> float:
    """Seconds since this process started (interpreter start-up and imports included).

    Read from ``/proc/self/stat`` (start time in clock ticks since boot) against
    ``CLOCK_BOOTTIME``; 0 where either is unavailable or the result is implausible.
    """
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
    return age if 0.0 <= age <= _MAX_AGE else 0.0


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute, monotonic deadline.

    Attributes:
        end: the deadline on ``clock`` (``math.inf``: never expires).
        start: when the budget was created, on ``clock`` (for ``elapsed``).
        clock: a monotonic clock in seconds (injectable for tests).
    """

    end: float
    start: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def after(
        cls, seconds: float | None, *, clock: Callable[[], float] = time.monotonic
    ) -> Deadline:
        """A deadline ``seconds`` from now (``None`` or ``inf``: no limit)."""
        now = clock()
        if seconds is None:
            return cls(end=math.inf, start=now, clock=clock)
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"a time budget must be a non-negative number, got {seconds!r}")
        return cls(end=now + seconds, start=now, clock=clock)

    @classmethod
    def never(cls) -> Deadline:
        """A deadline that never expires."""
        return cls.after(None)

    @classmethod
    def since_process_start(cls) -> Deadline:
        """No limit yet, but ``start`` is when the process started (see :func:`process_age`).

        A time budget given on the command line then also covers start-up and imports.
        """
        now = time.monotonic()
        return cls(end=math.inf, start=now - process_age())

    def remaining(self) -> float:
        """Seconds left (``inf`` without a limit, never negative)."""
        return max(0.0, self.end - self.clock())

    def elapsed(self) -> float:
        """Seconds since this budget was created."""
        return self.clock() - self.start

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.clock() >= self.end

    @property
    def limited(self) -> bool:
        """True when there is a finite deadline."""
        return math.isfinite(self.end)

    def child(self, fraction: float) -> Deadline:
        """A sub-budget of ``fraction`` (in (0, 1]) of the remaining time; never beyond ``end``.

        Without a limit the child has no limit either.
        """
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
        now = self.clock()
        if not self.limited:
            return Deadline(end=math.inf, start=now, clock=self.clock)
        end = min(self.end, now + fraction * max(0.0, self.end - now))
        return Deadline(end=end, start=now, clock=self.clock)
