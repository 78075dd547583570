"""Exceptions raised by the lookup-table package.

Every message names the table involved and, where it helps, the command that
rebuilds the packaged tables.
"""

from __future__ import annotations

REBUILD_COMMAND = "verify lut build  (or: python -m branching.branch_points build)"


class LutError(Exception):
    """Base class of every error raised by :mod:`lut`."""


class MissingTableError(LutError, FileNotFoundError):
    """A requested table file does not exist."""


class StaleTableError(LutError):
    """A table exists but does not match what the code expects.

    Raised for a schema-version mismatch and for a table whose stored
    relaxation fingerprint differs from the relaxation registered now (the
    relaxation code changed after the table was built).
    """


class CorruptTableError(StaleTableError):
    """A table file is unreadable or its checksum does not match its contents."""


class MissingRelaxationError(LutError, LookupError):
    """An interval lies outside its table and no relaxation is registered for the
    direct (golden-section) optimisation that handles such intervals."""


class ReductionError(LutError, ValueError):
    """A table's symmetry reduction does not hold for the given relaxation."""
