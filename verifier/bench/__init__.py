"""``verify bench``: run VNN-COMP benchmark folders, score them and write reports.

    from verifier.bench import BenchOptions, run_bench
    outcome = run_bench(["../shared/benchmarks/acasxu_2023"], BenchOptions(out=Path("out")))

``out/results.csv`` gets one row per instance as soon as it finishes (``--resume`` skips the
instances already there), ``out/witnesses/`` the results files of ``sat`` answers, and
``out/report.md``, ``out/report.html`` and ``out/cactus.png`` the scored report.

A quick development run over shared rows: ``BenchOptions(timeout_cap=60, rows=slice(0, 20),
every=2, jobs=2)`` (timeouts capped at 60 s, rows 0, 2, ..., 18, two at a time with one
thread each).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from verifier.bench.instances import (
    Expected,
    Instance,
    read_expected,
    read_instances,
    select_rows,
)
from verifier.bench.report import ReportFiles, write_reports
from verifier.bench.runner import InstanceRun, Row, RunSpec, run_instances
from verifier.bench.scoring import Scored, score_rows
from verifier.bench.witness import check_witness
from verifier.config import InputError

__all__ = [
    "BenchOptions",
    "BenchOutcome",
    "Row",
    "read_results",
    "run_bench",
    "sat_checker",
]

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(jobs: int, backend: str = "pool") -> int | None:
    """``OMP_NUM_THREADS`` of each instance when not given: Ray tasks reserve one CPU
    each (1); the pool shares the usable cores among its ``jobs`` (a single job keeps the
    caller's ``OMP_NUM_THREADS`` when set: None). One instance on a 2-core machine then
    bounds with both cores (mnist_fc 256x4 prop_13_0.05: proved in 35 s with 2 threads,
    a timeout at 60 s with 1)."""
    if backend != "pool":
        return 1
    if jobs <= 1 and os.environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, usable_cores() // max(1, jobs))


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """Settings of a benchmark run.

    Attributes:
        out: output directory; timeout_scale: multiplies every instance's timeout.
        timeout_cap: upper limit of every (scaled) timeout in seconds (None: no cap).
        jobs: instances run at once; backend: ``pool`` or ``ray``; address: Ray cluster.
        resume: skip instances already in ``out/results.csv``.
        limit: run only the first ``limit`` selected instances of each folder (None: all).
        rows: the slice of each folder's instances.csv rows to run (None: all).
        every: run every ``every``-th row of the slice (a spread sample).
        threads: ``OMP_NUM_THREADS`` of every instance (None: the pool backend shares
            this machine's usable cores among the ``jobs`` (at least 1 each; with one
            job, the caller's ``OMP_NUM_THREADS`` when set); Ray tasks take 1 each).
        settings: ``--set``/``--config`` arguments forwarded to every instance run.
    """

    out: Path = Path("bench-out")
    timeout_scale: float = 1.0
    jobs: int = 1
    backend: str = "pool"
    address: str | None = None
    resume: bool = False
    limit: int | None = None
    settings: tuple[str, ...] = ()
    timeout_cap: float | None = None
    rows: slice | None = None
    every: int = 1
    threads: int | None = None

    def run_spec(self) -> RunSpec:
        """How each instance is run (the machine's cores shared among the jobs)."""
        threads = (
            self.threads if self.threads is not None else default_threads(self.jobs, self.backend)
        )
        return RunSpec(
            timeout_scale=self.timeout_scale,
            timeout_cap=self.timeout_cap,
            settings=self.settings,
            threads=threads,
        )


@dataclass(frozen=True, slots=True)
class BenchOutcome:
    """What a run produced: the scored instances and the report files."""

    scored: tuple[Scored, ...]
    reports: ReportFiles
    results_csv: Path
    skipped: int = 0


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def read_results(path: Path) -> list[Row]:
    """The rows of a results.csv (empty when the file does not exist).

    Files written before the ``timeout``, ``engine_stop`` and ``domains`` columns existed
    read with those left empty (None, ``""``, 0).
    """
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [
            Row(
                r["benchmark"],
                r["onnx"],
                r["vnnlib"],
                r["result"],
                float(r["time"]),
                r["stop_reason"],
                _float_or_none(r.get("timeout")),
                r.get("engine_stop") or "",
                int(_float_or_none(r.get("domains")) or 0),
            )
            for r in csv.DictReader(fh)
        ]


def _witness_path(out: Path, key: tuple[str, str, str]) -> Path:
    digest = hashlib.sha1("|".join(key).encode()).hexdigest()[:16]
    return out / "witnesses" / f"{key[0]}-{digest}.txt"


def _header(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return next(csv.reader(fh), [])


class _ResultsWriter:
    """Appends rows to results.csv (header once), flushing after each row.

    A file with an older header (fewer columns) is rewritten with the current one first.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        new = not path.is_file() or path.stat().st_size == 0
        old_rows = [] if new or _header(path) == list(Row.FIELDS) else read_results(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("w" if old_rows else "a", newline="")
        self._writer = csv.writer(self._fh)
        if new or old_rows:
            self._writer.writerow(Row.FIELDS)
            for row in old_rows:
                self.write(row)
            self._fh.flush()

    def write(self, row: Row) -> None:
        values = (getattr(row, f) for f in Row.FIELDS)
        self._writer.writerow(["" if v is None else v for v in values])
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _select(folders: Sequence[Path], options: BenchOptions) -> tuple[list[Instance], dict]:
    instances: list[Instance] = []
    expected: dict[tuple[str, str, str], Expected] = {}
    for folder in folders:
        rows = read_instances(folder)
        instances += select_rows(rows, options.rows, options.every, options.limit)
        for (onnx, spec), exp in read_expected(folder).items():
            expected[(Path(folder).name, onnx, spec)] = exp
    names = [Path(f).name for f in folders]
    if len(set(names)) != len(names):
        raise InputError(f"benchmark folders must have distinct names, got {names}")
    return instances, expected


def sat_checker(out: Path, folders: Mapping[str, Path]) -> Callable[[Row], tuple[bool, str]]:
    """Checks a ``sat`` row's saved witness with the competition's rules."""

    def check(row: Row) -> tuple[bool, str]:
        path = _witness_path(out, row.key)
        if not path.is_file():
            return False, "witness file missing"
        _, _, body = path.read_text().partition("\n")
        folder = folders[row.benchmark]
        res = check_witness(folder / row.onnx, folder / row.vnnlib, body)
        return res.valid, res.reason

    return check


def run_bench(
    folders: Sequence[str | Path],
    options: BenchOptions,
    on_row: Callable[[Row], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> BenchOutcome:
    """Run, score and report the instances of ``folders``.

    Args:
        folders: VNN-COMP benchmark folders (each with instances.csv).
        options: see :class:`BenchOptions`.
        on_row: called with each finished row (progress display).
        on_start: called once with the number of instances to run.

    Raises:
        InputError: a folder is not a benchmark folder or a csv is malformed.
    """
    folders = [Path(f) for f in folders]
    by_name = {f.name: f for f in folders}
    if options.every < 1:
        raise InputError("every must be at least 1")
    if options.timeout_cap is not None and not options.timeout_cap > 0:
        raise InputError("the timeout cap must be > 0")
    instances, expected = _select(folders, options)
    results_csv = options.out / "results.csv"
    if not options.resume and results_csv.exists():
        results_csv.unlink()
    done = {r.key for r in read_results(results_csv)}
    todo = [i for i in instances if i.key not in done]
    if on_start is not None:
        on_start(len(todo))
    writer = _ResultsWriter(results_csv)

    def finished(run: InstanceRun) -> None:
        if run.row.result == "sat":
            path = _witness_path(options.out, run.row.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(run.text)
        writer.write(run.row)
        if on_row is not None:
            on_row(run.row)

    spec = options.run_spec()
    try:
        run_instances(
            todo,
            spec,
            finished,
            backend=options.backend,
            jobs=options.jobs,
            address=options.address,
        )
    finally:
        writer.close()
    wanted = {i.key for i in instances}
    rows = [r for r in read_results(results_csv) if r.key in wanted]

    scored = score_rows(rows, expected, sat_checker(options.out, by_name))
    title = "nlverify on " + ", ".join(f.name for f in folders)
    if options.timeout_scale != 1.0:
        title += f" (timeouts x{options.timeout_scale:g})"
    if options.timeout_cap is not None:
        title += f" (timeouts capped at {options.timeout_cap:g} s)"
    reports = write_reports(scored, options.out, title)
    return BenchOutcome(tuple(scored), reports, results_csv, skipped=len(instances) - len(todo))
