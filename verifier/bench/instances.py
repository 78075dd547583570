"""Benchmark folders in VNN-COMP layout: ``instances.csv`` and, when present, ``expected.csv``.

``instances.csv`` has rows ``onnx,vnnlib,timeout`` (no header, paths relative to the folder,
CRLF tolerated). ``expected.csv`` has a header and the columns ``onnx, vnnlib, timeout,
expected, expected_source, abcrown_result, abcrown_time``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from verifier.config import InputError

__all__ = ["Expected", "Instance", "parse_rows", "read_expected", "read_instances", "select_rows"]


@dataclass(frozen=True, slots=True)
class Instance:
    """One row of ``instances.csv``.

    Attributes:
        benchmark: the folder's name (also the VNN-COMP category).
        folder: the benchmark folder; onnx, vnnlib: paths relative to it, as in the csv.
        timeout: the row's timeout in seconds (before any scaling).
    """

    benchmark: str
    folder: Path
    onnx: str
    vnnlib: str
    timeout: float

    @property
    def key(self) -> tuple[str, str, str]:
        """``(benchmark, onnx, vnnlib)``: identifies the instance in results.csv."""
        return (self.benchmark, self.onnx, self.vnnlib)

    @property
    def onnx_path(self) -> Path:
        """The model file."""
        return self.folder / self.onnx

    @property
    def vnnlib_path(self) -> Path:
        """The spec file."""
        return self.folder / self.vnnlib


@dataclass(frozen=True, slots=True)
class Expected:
    """The known answer of an instance and the reference tool's (alpha-beta-CROWN) run."""

    expected: str
    source: str
    reference_result: str
    reference_time: float | None


def read_instances(folder: str | Path) -> list[Instance]:
    """The rows of ``folder/instances.csv``.

    Raises:
        InputError: no instances.csv, or a malformed row (the message names file and line).
    """
    folder = Path(folder)
    path = folder / "instances.csv"
    if not path.is_file():
        raise InputError(f"{path}: no instances.csv (expected a VNN-COMP benchmark folder)")
    out = []
    with path.open(newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            if len(cells) != 3:
                raise InputError(f"{path}:{line_no}: expected onnx,vnnlib,timeout, got {row!r}")
            try:
                timeout = float(cells[2])
            except ValueError:
                raise InputError(
                    f"{path}:{line_no}: timeout {cells[2]!r} is not a number"
                ) from None
            out.append(Instance(folder.name, folder, cells[0], cells[1], timeout))
    return out


def read_expected(folder: str | Path) -> dict[tuple[str, str], Expected]:
    """``(onnx, vnnlib) -> Expected`` from ``folder/expected.csv`` (empty when absent).

    Raises:
        InputError: the file lacks a required column (the message names it).
    """
    path = Path(folder) / "expected.csv"
    if not path.is_file():
        return {}
    out = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"onnx", "vnnlib", "expected"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            time_text = (row.get("abcrown_time") or "").strip()
            try:
                ref_time = float(time_text) if time_text else None
            except ValueError:
                ref_time = None
            out[(row["onnx"].strip(), row["vnnlib"].strip())] = Expected(
                row["expected"].strip(),
                (row.get("expected_source") or "").strip(),
                (row.get("abcrown_result") or "").strip(),
                ref_time,
            )
    return out


def parse_rows(text: str) -> slice:
    """``A:B`` (Python slice bounds, either may be empty or negative) or ``N`` (one row).

    Raises:
        InputError: not of that form.
    """
    start, sep, stop = (part.strip() for part in text.partition(":"))
    try:
        if not sep:
            index = int(start)
            return slice(index, index + 1 if index != -1 else None)
        return slice(int(start) if start else None, int(stop) if stop else None)
    except ValueError:
        raise InputError(f"--rows expects A:B or N (row numbers from 0), got {text!r}") from None


def select_rows(
    instances: list[Instance], rows: slice | None = None, every: int = 1, limit: int | None = None
) -> list[Instance]:
    """One folder's rows to run: the ``rows`` slice, then every ``every``-th, then the first
    ``limit`` of those."""
    picked = instances[rows] if rows is not None else list(instances)
    picked = picked[::every]
    return picked[:limit] if limit is not None else picked
