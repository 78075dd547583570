"""The time budget type, shared by every layer; defined in :mod:`bounds.deadline`.

The verifier, the branch-and-bound search and the bounds engine all take the same
:class:`Deadline` (an absolute point on the monotonic clock), so one budget flows from the
command line down to the innermost optimisation loop.
"""

from bounds.deadline import Deadline, process_age

__all__ = ["Deadline", "process_age"]
