"""VNN-COMP per-instance semantics: category profiles, the prepare cache, run_instance.

* :func:`category_profile` maps a category to a settings profile through
  ``categories.toml`` (data, not code): the exact name, then the name without a ``_YYYY``
  suffix, else ``default``.
* :func:`prepare_instance` imports the ONNX model and parses the spec, checks that they
  fit together, and caches both in a :class:`CacheDir` (the parsed spec through the
  vnnlib disk cache, the imported graph keyed by the sha256 of the ONNX file). It also
  loads the branching-point tables once, so a broken install fails here. It never
  verifies anything.
* :func:`run_instance` builds the run's settings (profile for the category + the time
  budget), loads the problem from the cache when prepared (else from the files), verifies,
  and writes the results file: ``sat`` and the counterexample, ``unsat``, ``timeout`` or
  ``unknown`` (bad input is ``unknown``; the reason goes to the log).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import models
import vnnlib
from branching import BabStats
from verifier import loading
from verifier.config import InputError, VerifyConfig, build_config, tomllib
from verifier.deadline import Deadline
from verifier.pipeline import Problem, load_problem, verify_loaded
from verifier.result import Result, Status

__all__ = [
    "CATEGORIES_FILE",
    "CacheDir",
    "PrepareReport",
    "category_profile",
    "prepare_instance",
    "run_instance",
]

log = logging.getLogger(__name__)

CATEGORIES_FILE = Path(__file__).resolve().parent / "categories.toml"


def _categories() -> dict[str, str]:
    with CATEGORIES_FILE.open("rb") as fh:
        return dict(tomllib.load(fh).get("categories", {}))


def category_profile(category: str) -> str:
    """The profile name for a VNN-COMP category (``default`` when unknown)."""
    table = _categories()
    name = category.strip().lower()
    for key in (name, re.sub(r"_20\d\d$", "", name)):
        if key in table:
            return table[key]
    return "default"


@dataclass(frozen=True, slots=True)
class CacheDir:
    """Where prepared instances live: ``graph-<sha256>.pkl`` and the vnnlib disk cache."""

    root: Path

    def graph_path(self, onnx_path: Path) -> Path:
        """The cache file of an ONNX model (keyed by the file's sha256)."""
        digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()
        return self.root / f"graph-{digest}.pkl"

    @property
    def spec_dir(self) -> Path:
        """The vnnlib disk cache directory."""
        return self.root / "specs"

    def read_graph(self, onnx_path: Path) -> models.Graph | None:
        """The cached graph of ``onnx_path`` or None (not prepared, other format)."""
        path = self.graph_path(onnx_path)
        if not path.is_file():
            return None
        graph = loading.graph_from_bytes(path.read_bytes())
        if graph is None:
            log.info("%s: cached graph has another format; importing again", path)
        return graph

    def write_graph(self, onnx_path: Path, graph: models.Graph) -> Path:
        """Cache ``graph`` for ``onnx_path`` (atomic rename)."""
        path = self.graph_path(onnx_path)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(loading.graph_to_bytes(graph))
        tmp.replace(path)
        return path


@dataclass(frozen=True, slots=True)
class PrepareReport:
    """What prepare did: the graph cache file, the number of spec cases, seconds taken."""

    graph_file: Path
    cases: int
    seconds: float


def _load_spec(
    spec_path: Path, graph: models.Graph, cache: CacheDir, *, through_disk: bool = False
) -> vnnlib.Spec:
    """The spec via the disk cache (``through_disk``: bypass the in-memory cache so that
    the disk entry is written even when this process parsed the file before)."""
    n_in = int(math.prod(graph.inputs[0].shape))
    n_out = int(math.prod(graph.outputs[0].shape))
    try:
        return vnnlib.load_vnnlib(
            spec_path,
            n_inputs=n_in,
            n_outputs=n_out,
            cache_dir=cache.spec_dir,
            cache=vnnlib.SpecCache() if through_disk else None,
        )
    except (vnnlib.VnnlibError, vnnlib.SpecShapeError) as exc:
        raise InputError(str(exc)) from exc


def _check_tables() -> None:
    """Load every branching-point table once (a broken install fails in prepare)."""
    import branching.branch_points  # noqa: F401  (registers the relaxations with lut)
    import lut

    lut.DEFAULT_STORE.load_all()


def prepare_instance(onnx_path: Path, spec_path: Path, cache: CacheDir) -> PrepareReport:
    """Import, parse, cross-check and cache one instance (no verification).

    Raises:
        InputError: the model or the spec cannot be used.
    """
    start = time.perf_counter()
    for path, what in ((onnx_path, "model"), (spec_path, "spec")):
        if not Path(path).is_file():
            raise InputError(f"{path}: {what} file not found")
    graph = loading.load_graph(Path(onnx_path))
    spec = _load_spec(Path(spec_path), graph, cache, through_disk=True)
    loading.make_problem(graph, spec, Path(onnx_path), Path(spec_path))
    graph_file = cache.write_graph(Path(onnx_path), graph)
    _check_tables()
    return PrepareReport(graph_file, len(spec.cases), time.perf_counter() - start)


def _loader(onnx_path: Path, spec_path: Path, cache: CacheDir | None):
    def load() -> Problem:
        graph = None if cache is None else cache.read_graph(onnx_path)
        if graph is None:
            return load_problem(onnx_path, spec_path)
        log.info("using the prepared graph of %s", onnx_path)
        spec = _load_spec(spec_path, graph, cache)
        return loading.make_problem(graph, spec, onnx_path, spec_path)

    return load


def run_config(
    category: str,
    timeout: float,
    *,
    profile: str | None = None,
    files: tuple[Path, ...] = (),
    overrides: dict | None = None,
) -> VerifyConfig:
    """The settings of one run: the category's profile (or ``profile``), settings files,
    overrides, and the time budget (which nothing overrides)."""
    return build_config(
        profile=profile if profile is not None else category_profile(category),
        files=files,
        overrides={**(overrides or {}), "timeout": float(timeout)},
    )


def run_instance(
    category: str,
    onnx_path: Path,
    spec_path: Path,
    results_file: Path,
    timeout: float,
    *,
    cache: CacheDir | None = None,
    deadline: Deadline | None = None,
    config: VerifyConfig | None = None,
    progress: Callable[[BabStats], None] | None = None,
    claim: Callable[[], bool] | None = None,
) -> Result:
    """Verify one instance and write its results file (first line: the answer word).

    ``progress`` receives the branch-and-bound statistics after every round. ``claim``
    is called once, right before the results file is written: False means another
    writer (a watchdog) has answered, and the file is left to it.

    The old results file is removed first. Bad input gives ``unknown`` (its message is
    logged as an error) so that the file always holds one of ``sat``, ``unsat``,
    ``timeout``, ``unknown``. ``config`` defaults to :func:`run_config` for the category.
    """
    results_file = Path(results_file)
    results_file.unlink(missing_ok=True)
    config = config if config is not None else run_config(category, timeout)
    if deadline is None:
        deadline = Deadline.after(config.timeout)
    try:
        result = verify_loaded(
            _loader(Path(onnx_path), Path(spec_path), cache),
            config,
            deadline=deadline,
            progress=progress,
        )
    except InputError as exc:
        log.error("%s", exc)
        result = Result(Status.UNKNOWN, reason=f"bad input: {exc}")
    if result.status is Status.ERROR:
        result = Result(Status.UNKNOWN, reason=result.reason, stats=result.stats)
    if claim is None or claim():
        results_file.write_text(result.to_vnncomp())
    return result
