"""``python -m verifier.vnncomp prepare|run ...``: the entry point of the competition scripts.

    python -m verifier.vnncomp prepare CATEGORY ONNX VNNLIB
    python -m verifier.vnncomp run CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT [--json]

``run`` prints the answer word, or with ``--json`` one JSON line (status, the engine's stop
reason, reason, timings, stats, counterexample; as ``Result.to_json``). The cache of
prepared instances is ``--cache-dir``, else ``$NLVERIFY_CACHE``, else
``~/.cache/nlverify/vnncomp``. ``run`` counts its budget from process start. Exit codes:
0 on success (``run`` always writes a results file on success), 2 for bad input to
``prepare`` or bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from branching import BabStats
from verifier.cli import add_settings, parse_override
from verifier.config import InputError
from verifier.deadline import Deadline
from verifier.vnncomp.harness import CacheDir, prepare_instance, run_config, run_instance
from verifier.watchdog import grace_for, late_timeout, start_watchdog


def _cache_dir(arg: Path | None) -> CacheDir:
    if arg is not None:
        return CacheDir(arg)
    env = os.environ.get("NLVERIFY_CACHE")
    return CacheDir(Path(env) if env else Path.home() / ".cache" / "nlverify" / "vnncomp")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m verifier.vnncomp")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="convert and cache one instance (no verification)")
    run = sub.add_parser("run", help="verify one instance and write its results file")
    for p in (prep, run):
        p.add_argument("category")
        p.add_argument("onnx", type=Path)
        p.add_argument("vnnlib", type=Path)
    run.add_argument("results_file", type=Path)
    run.add_argument("timeout", type=float)
    run.add_argument("--json", action="store_true", help="print the result as one JSON line")
    add_settings(run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``prepare`` or ``run``; returns the exit code."""
    deadline = Deadline.since_process_start() if argv is None else Deadline.never()
    args = _parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO
    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s"
    )
    cache = _cache_dir(args.cache_dir)
    if args.command == "prepare":
        try:
            report = prepare_instance(args.onnx, args.vnnlib, cache)
        except InputError as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        print(f"prepared {args.onnx.name} ({report.cases} cases) in {report.seconds:.2f} s")
        return 0
    budget = Deadline(end=deadline.start + args.timeout, start=deadline.start)
    try:
        config = run_config(
            args.category,
            args.timeout,
            profile=args.profile,
            files=tuple(args.config_files),
            overrides=dict(parse_override(o) for o in args.overrides),
        )
    except InputError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    latest: list[BabStats] = []  # the running search's statistics, for the watchdog

    def record(stats: BabStats) -> None:
        latest[:] = [stats]

    timer = _watchdog(args.results_file, budget, args.json, latest) if argv is None else None
    claimed: list[bool] = []

    def claim() -> bool:
        """Answer (the results file, then stdout) only if the watchdog has not: claimed
        before the file is written, so that the watchdog's ``timeout`` line is never
        truncated by a late write of ours (it then ended the process with an empty file)."""
        claimed.append(timer is None or _ANSWERED.acquire(blocking=False))
        return claimed[-1]

    result = run_instance(
        args.category,
        args.onnx,
        args.vnnlib,
        args.results_file,
        args.timeout,
        cache=cache,
        deadline=budget,
        config=config,
        progress=record,
        claim=claim,
    )
    if not all(claimed):
        return 0  # the watchdog answered first; it ends the process
    if timer is not None:
        timer.cancel()
    print(result.to_json() if args.json else result.status.word)
    return 0


_ANSWERED = threading.Lock()


def _late_answer(
    results_file: Path,
    budget: Deadline,
    as_json: bool = False,
    latest: list[BabStats] | None = None,
) -> Callable[[], bool]:
    """The watchdog's answer: ``timeout`` in the results file and on stdout, unless the
    run has answered; the JSON answer carries the running search's statistics."""

    def late() -> bool:
        if not _ANSWERED.acquire(blocking=False):
            return False
        with contextlib.suppress(OSError):
            Path(results_file).write_text("timeout\n")
        late_result = late_timeout(budget, latest[-1] if latest else None)
        print(late_result.to_json() if as_json else "timeout")
        return True

    return late


def _watchdog(
    results_file: Path,
    budget: Deadline,
    as_json: bool = False,
    latest: list[BabStats] | None = None,
) -> threading.Timer | None:
    """Past the budget, write ``timeout`` and end the process (see :mod:`verifier.watchdog`)."""
    late = _late_answer(results_file, budget, as_json, latest)
    return start_watchdog(budget, grace_for(budget.end - budget.start), late)


if __name__ == "__main__":
    code = main()
    # End right after the answer is written: torch's teardown can take a second, which
    # a budget counted from process start must not pay.
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os._exit(code)
