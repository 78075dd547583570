"""``verify bench FOLDER... [--timeout-scale K] [--cap S] [--rows A:B] [--every K]
[--limit N] [--jobs N] [--threads N] [--out DIR] [--resume] [--set KEY=VALUE]...``.

Prints one line per finished instance on stderr (answer, the engine's stop reason, time,
expected answer, the reference's answer and time, branch-and-bound domains, solved /
wrong / remaining), under a progress bar with the ETA when rich is installed; then the
report's tables and paths on stdout. Wrong answers are printed loudly as they come and
first in the report. Exit status 1 when any answer is wrong.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verifier.bench import BenchOptions, Row, run_bench, sat_checker
from verifier.bench.instances import Expected, parse_rows, read_expected
from verifier.bench.runner import BACKENDS
from verifier.config import InputError


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``verify bench`` (settings options are added by the CLI)."""
    parser.add_argument("folders", type=Path, nargs="+", help="VNN-COMP benchmark folder(s)")
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="multiply timeouts")
    parser.add_argument(
        "--cap", type=float, default=None, metavar="S", help="cap every (scaled) timeout at S s"
    )
    parser.add_argument(
        "--rows", default=None, metavar="A:B", help="slice of each folder's rows, e.g. 0:20"
    )
    parser.add_argument(
        "--every", type=int, default=1, metavar="K", help="every K-th row (a spread sample)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="instances at once (default 1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="OMP_NUM_THREADS per instance (default: the usable cores shared among the jobs; "
        "one job keeps an OMP_NUM_THREADS already set)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out"), help="output directory")
    parser.add_argument("--resume", action="store_true", help="skip rows in results.csv")
    parser.add_argument(
        "--limit", type=int, default=None, help="first N (selected) instances per folder"
    )
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
    """Counts solved / wrong / remaining against the expected answers while rows arrive.

    ``check`` checks a ``sat`` row's saved witness: a ``sat`` on an ``expected=unsat`` row
    whose witness checks refutes the expected answer (as the report scores it), it is not
    wrong. Without ``check`` such a row counts as wrong until the report says otherwise.
    """

    def __init__(
        self, folders: list[Path], check: Callable[[Row], tuple[bool, str]] | None = None
    ) -> None:
        self.known: dict[tuple[str, str, str], Expected] = {}
        for folder in folders:
            for (onnx, spec), exp in read_expected(folder).items():
                self.known[(folder.name, onnx, spec)] = exp
        self.expected = {key: exp.expected for key, exp in self.known.items()}
        self.check = check
        self.verdicts: dict[tuple[str, str, str], str] = {}
        self.solved = self.wrong = self.done = 0
        self.total = 0

    def verdict(self, row: Row) -> str:
        """'' (agrees or nothing known), 'wrong', or 'refutes' (checked witness)."""
        if row.key not in self.verdicts:
            want = self.expected.get(row.key, "")
            out = ""
            if row.result in ("sat", "unsat") and want in ("sat", "unsat") and want != row.result:
                out = "wrong"
                if row.result == "sat" and self.check is not None and self.check(row)[0]:
                    out = "refutes"
            self.verdicts[row.key] = out
        return self.verdicts[row.key]

    def is_wrong(self, row: Row) -> bool:
        """A decisive answer that contradicts a known one (not refuting it with a witness)."""
        return self.verdict(row) == "wrong"

    def add(self, row: Row) -> None:
        self.done += 1
        if row.result in ("sat", "unsat"):
            if self.is_wrong(row):
                self.wrong += 1
            else:
                self.solved += 1

    def line(self) -> str:
        return f"solved {self.solved}  wrong {self.wrong}  remaining {self.total - self.done}"

    def row_line(self, row: Row) -> str:
        """One instance: answer (stop reason) time, expected, the reference, domains."""
        exp = self.known.get(row.key)
        stop = row.engine_stop or row.stop_reason
        text = (
            f"[{self.done}/{self.total}] {row.benchmark} {Path(row.onnx).name} "
            f"{Path(row.vnnlib).name}: {row.result} ({stop}) {row.time:.1f} s"
        )
        if exp is not None:
            ref_time = "" if exp.reference_time is None else f" {exp.reference_time:g} s"
            text += (
                f", expected {exp.expected or '?'}, ref. {exp.reference_result or '-'}{ref_time}"
            )
        text += f", domains {row.domains}"
        flag = {"wrong": "  WRONG", "refutes": "  REFUTES EXPECTED (witness checks)"}
        return text + flag.get(self.verdict(row), "") + f"  |  {self.line()}"


def _with_progress(
    progress: _Progress, work: Callable[[Callable[[Row], None], Callable[[int], None]], Any]
) -> Any:
    try:
        from rich.console import Console
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
            console=Console(stderr=True),
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
        if progress.is_wrong(row):
            print(f"WRONG ANSWER: {row.onnx} {row.vnnlib}: {row.result}", file=sys.stderr)
        if rich_progress is not None and task is not None:
            rich_progress.console.print(
                progress.row_line(row), markup=False, highlight=False, soft_wrap=True
            )
            rich_progress.update(task, advance=1, description=progress.line())
        else:
            print(progress.row_line(row), file=sys.stderr, flush=True)

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
    if args.cap is not None and not args.cap > 0:
        raise InputError("--cap must be > 0")
    if args.every < 1:
        raise InputError("--every must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads must be at least 1")
    options = BenchOptions(
        out=args.out,
        timeout_scale=args.timeout_scale,
        jobs=args.jobs,
        backend=args.backend,
        address=args.address,
        resume=args.resume,
        limit=args.limit,
        settings=settings_args(args),
        timeout_cap=args.cap,
        rows=None if args.rows is None else parse_rows(args.rows),
        every=args.every,
        threads=args.threads,
    )
    folders = [Path(f) for f in args.folders]
    progress = _Progress(folders, sat_checker(args.out, {f.name: f for f in folders}))
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
