"""End a process that owns its budget when the budget runs out inside a long step.

Stages check the deadline between steps, but one step on a large graph (an alpha-CROWN
iteration on a power-flow model, say) can run past it. A command that owns its process
(``verify``, ``python -m verifier.vnncomp run``) starts a watchdog: at the deadline plus a
small grace, ``answer()`` writes the ``timeout`` answer (unless the run already answered)
and the process ends at once.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from verifier.deadline import Deadline
from verifier.result import Result, Status

__all__ = ["grace_for", "late_timeout", "start_watchdog"]


def late_timeout(deadline: Deadline, latest: Any = None) -> Result:
    """The watchdog's ``timeout`` result: the running search's statistics (``latest``, a
    ``BabStats`` or None) and the elapsed time, since the stages' own timings never reach
    the answer."""
    stats = latest.to_dict() if hasattr(latest, "to_dict") else {}
    if hasattr(latest, "elapsed_s"):
        stats["bab_s"] = latest.elapsed_s
    elapsed = deadline.elapsed()
    stats["total_s"] = elapsed
    reason = f"time budget spent ({elapsed:.1f} s) inside a stage"
    return Result(Status.TIMEOUT, reason=reason, stop="timeout", stats=stats)


def grace_for(timeout: float | None) -> float:
    """Slack past the budget before the watchdog fires: 1% of it, at most 0.5 s."""
    return 0.0 if timeout is None else min(0.5, 0.01 * max(0.0, timeout))


def start_watchdog(
    deadline: Deadline, grace: float, answer: Callable[[], bool]
) -> threading.Timer | None:
    """At ``deadline`` + ``grace`` call ``answer()``; when it returns True, end the process.

    ``answer`` returns False when the run has already written its own answer (the process
    then finishes normally). None is returned for a deadline without a limit.
    """
    if not deadline.limited:
        return None

    def fire() -> None:
        if answer():
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(0)

    timer = threading.Timer(max(0.0, deadline.remaining() + grace), fire)
    timer.daemon = True
    timer.start()
    return timer
