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

from verifier.deadline import Deadline

__all__ = ["grace_for", "start_watchdog"]


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
