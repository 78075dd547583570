"""``verify bench FOLDER... [--timeout-scale K] [--jobs N] [--out DIR] [--resume]``.

Shows a progress bar (rich, when installed; else one log line per instance) with solved /
wrong / remaining and the ETA, then prints the report's totals and the report paths.
Wrong answers are printed first, loudly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verifier.bench import BenchOptions, Row, run_bench
from verifier.bench.instances import read_expected
from verifier.bench.runner import BACKENDS
from verifier.config import InputError


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``verify bench`` (settings options are added by the CLI)."""
    parser.add_argument("folders", type=Path, nargs="+", help="VNN-COMP benchmark folder(s)")
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="multiply timeouts")
    parser.add_argument("--jobs", type=int, default=1, help="instances at once (default 1)")
    parser.add_argument("--out", type=Path, default=Path("bench-out"), help="output directory")
    parser.add_argument("--resume", action="store_true", help="skip rows in results.csv")
    parser.add_argument("--limit", type=int, default=None, help="first N instances per folder")
    parser.add_argument("--backend", choices=tuple(BACKENDS), default="pool")
    parser.add_argument("--address", default=None, help="Ray cluster address (--backend ray)")


def settings_args(args: argparse.Namespace) -> tuple[str, ...]:
    """The ``--profile/--config/--set`` options to forward to every instance run."""
    out: list[str] = []
    if args.profile is not None:
        profile = Path(args.profile)
        out += ["--profile", str(profile.resolve()) if profile.suffix else args.profile]
    for path in args.config_files:
        out += ["--config", str(Path(path).resolve())]
    for text in args.overrides:
        out += ["--set", text]
    return tuple(out)


class _Progress:
    """Counts solved / wrong / remaining against the expected answers while rows arrive."""

    def __init__(self, folders: list[Path]) -> None:
        self.expected: dict[tuple[str, str, str], str] = {}
        for folder in folders:
            for (onnx, spec), exp in read_expected(folder).items():
                self.expected[(folder.name, onnx, spec)] = exp.expected
        self.solved = self.wrong = self.done = 0
        self.total = 0

    def add(self, row: Row) -> None:
        self.done += 1
        want = self.expected.get(row.key, "")
        if row.result in ("sat", "unsat"):
            if want in ("sat", "unsat") and want != row.result:
                self.wrong += 1
            else:
                self.solved += 1

    def line(self) -> str:
        return f"solved {self.solved}  wrong {self.wrong}  remaining {self.total - self.done}"


def _with_progress(
    progress: _Progress, work: Callable[[Callable[[Row], None], Callable[[int], None]], Any]
) -> Any:
    try:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    except ImportError:
        rich_progress = None
    else:
        rich_progress = Progress(
            TextColumn("bench"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.description}"),
            TimeRemainingColumn(),
            transient=False,
        )
    task = None

    def on_start(n: int) -> None:
        nonlocal task
        progress.total = n
        if rich_progress is not None:
            task = rich_progress.add_task(progress.line(), total=n)

    def on_row(row: Row) -> None:
        progress.add(row)
        if row.result in ("sat", "unsat") and progress.expected.get(row.key, row.result) not in (
            row.result,
            "unknown",
        ):
            print(f"WRONG ANSWER: {row.onnx} {row.vnnlib}: {row.result}", file=sys.stderr)
        if rich_progress is not None and task is not None:
            rich_progress.update(task, advance=1, description=progress.line())
        else:
            print(
                f"[{progress.done}/{progress.total}] {row.benchmark} {row.vnnlib}: "
                f"{row.result} ({row.time:.1f} s)  {progress.line()}",
                file=sys.stderr,
            )

    if rich_progress is None:
        return work(on_row, on_start)
    with rich_progress:
        return work(on_row, on_start)


def run(args: argparse.Namespace, config: Any) -> int:
    """Run the benchmark(s), print totals and report paths; exit 0 (1 on a wrong answer)."""
    if args.jobs < 1:
        raise InputError("--jobs must be at least 1")
    if not args.timeout_scale > 0:
        raise InputError("--timeout-scale must be > 0")
    options = BenchOptions(
        out=args.out,
        timeout_scale=args.timeout_scale,
        jobs=args.jobs,
        backend=args.backend,
        address=args.address,
        resume=args.resume,
        limit=args.limit,
        settings=settings_args(args),
    )
    folders = [Path(f) for f in args.folders]
    progress = _Progress(folders)
    try:
        outcome = _with_progress(
            progress, lambda on_row, on_start: run_bench(folders, options, on_row, on_start)
        )
    except ImportError as exc:
        raise InputError(f"--backend {args.backend} needs an optional dependency: {exc}") from exc
    text = outcome.reports.markdown.read_text()
    head = text.split("## Instances", 1)[0]
    print(head.rstrip())
    print(
        f"\nresults: {outcome.results_csv}\nreport:  {outcome.reports.markdown}  "
        f"{outcome.reports.html}" + (f"  {outcome.reports.plot}" if outcome.reports.plot else "")
    )
    return 1 if any(s.verdict == "wrong" for s in outcome.scored) else 0
