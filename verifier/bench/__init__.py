"""``verify bench``: run VNN-COMP benchmark folders, score them and write reports.

    from verifier.bench import BenchOptions, run_bench
    outcome = run_bench(["../shared/benchmarks/acasxu_2023"], BenchOptions(out=Path("out")))

``out/results.csv`` gets one row per instance as soon as it finishes (``--resume`` skips the
instances already there), ``out/witnesses/`` the results files of ``sat`` answers, and
``out/report.md``, ``out/report.html`` and ``out/cactus.png`` the scored report.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from verifier.bench.instances import Expected, Instance, read_expected, read_instances
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
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """Settings of a benchmark run.

    Attributes:
        out: output directory; timeout_scale: multiplies every instance's timeout.
        jobs: instances run at once; backend: ``pool`` or ``ray``; address: Ray cluster.
        resume: skip instances already in ``out/results.csv``.
        limit: run only the first ``limit`` instances of each folder (None: all).
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


@dataclass(frozen=True, slots=True)
class BenchOutcome:
    """What a run produced: the scored instances and the report files."""

    scored: tuple[Scored, ...]
    reports: ReportFiles
    results_csv: Path
    skipped: int = 0


def read_results(path: Path) -> list[Row]:
    """The rows of a results.csv (empty when the file does not exist)."""
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
            )
            for r in csv.DictReader(fh)
        ]


def _witness_path(out: Path, key: tuple[str, str, str]) -> Path:
    digest = hashlib.sha1("|".join(key).encode()).hexdigest()[:16]
    return out / "witnesses" / f"{key[0]}-{digest}.txt"


class _ResultsWriter:
    """Appends rows to results.csv (header once), flushing after each row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        new = not path.is_file() or path.stat().st_size == 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", newline="")
        self._writer = csv.writer(self._fh)
        if new:
            self._writer.writerow(Row.FIELDS)
            self._fh.flush()

    def write(self, row: Row) -> None:
        self._writer.writerow([getattr(row, f) for f in Row.FIELDS])
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _select(folders: Sequence[Path], limit: int | None) -> tuple[list[Instance], dict]:
    instances: list[Instance] = []
    expected: dict[tuple[str, str, str], Expected] = {}
    for folder in folders:
        rows = read_instances(folder)
        instances += rows[:limit] if limit is not None else rows
        for (onnx, spec), exp in read_expected(folder).items():
            expected[(Path(folder).name, onnx, spec)] = exp
    names = [Path(f).name for f in folders]
    if len(set(names)) != len(names):
        raise InputError(f"benchmark folders must have distinct names, got {names}")
    return instances, expected


def _sat_checker(out: Path, folders: dict[str, Path]) -> Callable[[Row], tuple[bool, str]]:
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
    instances, expected = _select(folders, options.limit)
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

    spec = RunSpec(timeout_scale=options.timeout_scale, settings=options.settings)
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

    scored = score_rows(rows, expected, _sat_checker(options.out, by_name))
    title = "nlverify on " + ", ".join(f.name for f in folders)
    if options.timeout_scale != 1.0:
        title += f" (timeouts x{options.timeout_scale:g})"
    reports = write_reports(scored, options.out, title)
    return BenchOutcome(tuple(scored), reports, results_csv, skipped=len(instances) - len(todo))
