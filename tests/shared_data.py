"""The one place that locates the VNN-COMP instances in ``../shared/benchmarks``.

The shared folder is ``$NLVERIFY_SHARED`` when that variable is set, else the
``shared`` folder next to the repository root; the instances are in its
``benchmarks`` sub-folder. Tests never build that path themselves:

* a test that reads shared data takes the ``benchmarks_dir`` fixture
  (``tests/conftest.py``), which skips it when the folder is absent;
* a test parametrised over shared instances uses :func:`parametrize_shared`,
  which computes the parameters at collection time from this module and, when
  the folder is absent, yields one visibly SKIPPED case instead of none.

``NLVERIFY_SHARED=/nonexistent python -m pytest`` shows every such test as skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV_VAR = "NLVERIFY_SHARED"


def shared_root() -> Path:
    """The shared folder: ``$NLVERIFY_SHARED`` if set, else ``<repo>/../shared``."""
    override = os.environ.get(ENV_VAR)
    return Path(override).resolve() if override else (REPO.parent / "shared").resolve()


def benchmarks_path() -> Path:
    """``<shared>/benchmarks`` (it may not exist: see :func:`benchmarks_available`)."""
    return shared_root() / "benchmarks"


def benchmarks_available() -> bool:
    """Whether the shared benchmark folder is present."""
    return benchmarks_path().is_dir()


def skip_reason() -> str:
    """Why shared-data tests are skipped (names the folder and the override)."""
    where = benchmarks_path()
    return f"shared benchmarks not found at {where} (set {ENV_VAR} to the shared folder)"


def require_benchmarks() -> Path:
    """The benchmark folder; skips the calling test when it is absent."""
    if not benchmarks_available():
        pytest.skip(skip_reason())
    return benchmarks_path()


def parametrize_shared(
    argnames: str | Sequence[str],
    collect: Callable[[Path], Iterable[Any]],
    ids: Callable[[Any], str] | None = None,
) -> pytest.MarkDecorator:
    """``pytest.mark.parametrize`` over instances found in the shared benchmarks.

    Args:
        argnames: as for ``pytest.mark.parametrize`` (comma-separated or a sequence).
        collect: maps the benchmark folder to the rows (one value, or a tuple per
            row when there are several argnames); called once, at collection time.
        ids: optional row -> test id.

    Returns:
        The parametrize mark. Without the folder it holds a single case whose
        arguments are ``None`` and which is skipped with :func:`skip_reason`, so
        the test shows up as SKIPPED rather than vanishing from collection. A
        present folder with no matching instances gives one skipped case too,
        with a reason saying so.
    """
    names = [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else argnames
    many = len(names) > 1

    def placeholder(reason: str, case_id: str) -> Any:
        skip = pytest.mark.skip(reason=reason)
        return pytest.param(*([None] * len(names)), id=case_id, marks=skip)

    if not benchmarks_available():
        params = [placeholder(skip_reason(), "no-shared-data")]
    else:
        root = benchmarks_path()
        rows = list(collect(root))
        params = [
            pytest.param(*(row if many else (row,)), id=ids(row) if ids else None) for row in rows
        ] or [placeholder(f"no matching instances under {root}", "no-shared-instances")]
    return pytest.mark.parametrize(names, params)
