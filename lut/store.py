"""TableStore: loading, verifying, memoising, (re)building and saving tables.

The store is the single process-wide object of :mod:`lut` (injectable: every
public function takes ``store=``). It also holds the relaxations registered by
the engine, which it uses to

* verify that a loaded table was built with the same relaxation (fingerprint),
* rebuild a missing or stale table when ``auto_rebuild`` is set,
* optimise directly for intervals outside a table (see :mod:`lut.points`).

Without ``auto_rebuild`` a missing or stale table raises
:class:`~lut.errors.MissingTableError` / :class:`~lut.errors.StaleTableError`
naming the table and the rebuild command; it is never silently replaced.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from .builders import build_table_1d, build_table_mul
from .errors import (
    REBUILD_COMMAND,
    LutError,
    MissingRelaxationError,
    MissingTableError,
    StaleTableError,
)
from .objective import Relax1D, RelaxMul
from .specs import DEFAULT_SPECS, TableSpec
from .table import LookupTable

log = logging.getLogger(__name__)

PACKAGED_DIR = Path(__file__).resolve().parent / "data"
SUFFIX = ".lut"


def table_path(directory: Path, name: str) -> Path:
    """File of table ``name`` in ``directory``."""
    return Path(directory) / f"{name}{SUFFIX}"


def save_table(table: LookupTable, directory: Path) -> Path:
    """Write ``table`` atomically (temporary file + rename) and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = table_path(directory, table.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{table.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(table.to_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; tables are shared, read-only data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_table(path: Path) -> LookupTable:
    """Read and verify one table file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingTableError(
            f"lookup table {path.stem!r} not found at {path}; build it with `{REBUILD_COMMAND}`"
        ) from None
    return LookupTable.from_bytes(data, source=str(path))


def build_from_spec(spec: TableSpec, relax: Relax1D | RelaxMul) -> LookupTable:
    """Build the table described by ``spec`` with relaxation ``relax``."""
    if spec.kind == "mul":
        return build_table_mul(relax, spec.grid, spec.name, spec.coarse, spec.golden)
    return build_table_1d(relax, spec.grid, spec.name, spec.coarse, spec.golden)


def _same_outputs(expected: list[list[float]], got: list[list[float]]) -> bool:
    a, b = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if a.shape != b.shape:
        return False
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True))


class TableStore:
    """Tables by name: memoised, loaded from ``directory``, checked against relaxations.

    Args:
        directory: where table files live (default: the packaged ``lut/data``).
        specs: how to (re)build each table (default :data:`lut.specs.DEFAULT_SPECS`).
        auto_rebuild: rebuild missing or stale tables in memory (logged as a
            warning) instead of raising; needs the relaxation to be registered.
        cache_dir: where rebuilt tables are saved (atomically) and looked up first;
            ``None``: rebuilt tables live in memory only.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        specs: Mapping[str, TableSpec] | None = None,
        auto_rebuild: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else PACKAGED_DIR
        self.specs = dict(specs if specs is not None else DEFAULT_SPECS)
        self.auto_rebuild = auto_rebuild
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._tables: dict[str, LookupTable] = {}
        self._relax: dict[str, Relax1D | RelaxMul] = {}
        self._lock = threading.RLock()

    def configure(self, *, auto_rebuild: bool | None = None, cache_dir: Path | None = None) -> None:
        """Change the rebuild policy (e.g. from the verifier's configuration)."""
        with self._lock:
            if auto_rebuild is not None:
                self.auto_rebuild = auto_rebuild
            if cache_dir is not None:
                self.cache_dir = Path(cache_dir)

    # -- relaxations -------------------------------------------------------------------
    def register_relaxation(self, name: str, relax: Relax1D | RelaxMul) -> None:
        """Register the relaxation of table ``name`` (``"Mul"``: a :data:`RelaxMul`).

        Tables already loaded are re-verified against it on their next use.
        """
        with self._lock:
            self._relax[name] = relax
            self._tables.pop(name, None)

    def has_relaxation(self, name: str) -> bool:
        return name in self._relax

    def relaxation(self, name: str) -> Relax1D | RelaxMul:
        """The registered relaxation of ``name``; raises :class:`MissingRelaxationError`."""
        try:
            return self._relax[name]
        except KeyError:
            raise MissingRelaxationError(
                f"no relaxation registered for {name!r} (registered: "
                f"{', '.join(sorted(self._relax)) or 'none'}); intervals outside the table "
                f"need it for the direct optimisation: import branching.branch_points (it "
                f"registers the engine's relaxations) or call lut.register_relaxation"
            ) from None

    # -- tables ------------------------------------------------------------------------
    def get(self, name: str) -> LookupTable:
        """The table ``name``: memoised, else loaded and verified, else (re)built or raised."""
        with self._lock:
            table = self._tables.get(name)
            if table is None:
                table = self._load_or_rebuild(name)
                self._tables[name] = table
            return table

    def load_all(self, names: Iterable[str] | None = None) -> dict[str, LookupTable]:
        """Load (and memoise) several tables, by default every table of ``specs``."""
        return {n: self.get(n) for n in (names if names is not None else self.specs)}

    def put(self, table: LookupTable) -> None:
        """Use ``table`` for its name from now on (memory only)."""
        with self._lock:
            self._tables[table.name] = table

    def clear(self) -> None:
        """Forget memoised tables (registered relaxations stay)."""
        with self._lock:
            self._tables.clear()

    def verify(self, table: LookupTable) -> None:
        """Raise :class:`StaleTableError` if the registered relaxation differs from the
        one the table was built with (no-op without a registered relaxation)."""
        relax, fp = self._relax.get(table.name), table.meta.fingerprint
        if relax is None or fp is None:
            return
        inputs = [torch.tensor(v, dtype=torch.float64) for v in fp["inputs"]]
        outs = [o.to(torch.float64).expand_as(inputs[0]).tolist() for o in relax(*inputs)]
        if not _same_outputs(fp["outputs"], outs):
            raise StaleTableError(
                f"lookup table {table.name!r} was built with a different relaxation than the "
                f"one registered now; rebuild with `{REBUILD_COMMAND}`"
            )

    def _load_or_rebuild(self, name: str) -> LookupTable:
        path = table_path(self.directory, name)
        if self.cache_dir is not None and table_path(self.cache_dir, name).is_file():
            path = table_path(self.cache_dir, name)
        try:
            table = load_table(path)
            if table.name != name:
                raise StaleTableError(f"file for table {name!r} holds table {table.name!r}")
            self.verify(table)
            return table
        except (MissingTableError, StaleTableError) as exc:
            if not (self.auto_rebuild and name in self._relax and name in self.specs):
                raise
            log.warning("%s; rebuilding table %r in memory", exc, name)
            return self.rebuild(name)

    def rebuild(self, name: str) -> LookupTable:
        """Build table ``name`` from its spec and the registered relaxation (and save it
        to ``cache_dir`` if set)."""
        if name not in self.specs:
            raise LutError(f"no spec for table {name!r}; known: {', '.join(self.specs)}")
        start = time.perf_counter()
        table = build_from_spec(self.specs[name], self.relaxation(name))
        log.info("built table %r in %.2f s", name, time.perf_counter() - start)
        if self.cache_dir is not None:
            save_table(table, self.cache_dir)
        with self._lock:
            self._tables[name] = table
        return table


DEFAULT_STORE = TableStore()
