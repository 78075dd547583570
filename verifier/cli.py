"""Command line: ``verify MODEL.onnx SPEC.vnnlib`` and subcommands (``verify check ...``).

This is the only module that prints or chooses exit codes:

* 0: a normal answer (``sat``, ``unsat``, ``unknown``, ``timeout``) or a passing check;
* 1: ``verify check`` found the model's evaluation outside the tolerance;
* 2: bad input or usage; one line ``error: ...`` on stderr, no traceback.

Subcommands live in :data:`SUBCOMMANDS` (name -> :class:`Subcommand`); adding one is one
entry. ``verify MODEL SPEC`` keeps working because the subcommand parser is used only when
the first argument is a registered subcommand name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import models
import vnnlib
from verifier.config import InputError, VerifyConfig, build_config
from verifier.deadline import Deadline
from verifier.pipeline import verify
from verifier.result import Result, Status
from verifier.watchdog import grace_for, late_timeout, start_watchdog

__all__ = ["SUBCOMMANDS", "Subcommand", "main"]

log = logging.getLogger(__name__)

PROG = "verify"


class _UsageError(Exception):
    """argparse reported a usage error (turned into exit code 2)."""


class _ParserExit(Exception):
    """argparse wants to exit (``--help``) with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that raises instead of exiting, so ``main`` always returns."""

    def error(self, message: str) -> NoReturn:
        """Raise a usage error instead of printing usage and exiting."""
        raise _UsageError(f"{message} (see '{self.prog} --help')")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Raise instead of exiting (``--help``), so ``main`` returns the status."""
        if message:
            sys.stderr.write(message)
        raise _ParserExit(status)


@dataclass(frozen=True, slots=True)
class Subcommand:
    """A ``verify NAME ...`` subcommand.

    Attributes:
        help: one-line description.
        configure: adds the subcommand's arguments to its parser.
        run: executes it with the parsed arguments and the run's deadline (started when
            ``main`` was entered) and returns the exit code; raises InputError for bad input.
    """

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Deadline], int]


# ----------------------------------------------------------------------------- verify


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log progress to stderr (-vv: debug)"
    )


def add_settings(parser: argparse.ArgumentParser) -> None:
    """``--profile``, ``--config`` and ``--set``: the settings options every command takes."""
    parser.add_argument(
        "--profile",
        default=None,
        metavar="NAME|FILE",
        help="settings profile (verifier/profiles/NAME.toml; speed settings only)",
    )
    parser.add_argument(
        "--config",
        dest="config_files",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="settings file (TOML, or YAML with PyYAML), applied after the profile",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. attack.steps=100 (VALUE parsed as JSON when possible)",
    )


def _configure_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="ONNX model")
    parser.add_argument("spec", type=Path, help="VNN-LIB property")
    parser.add_argument("--timeout", type=float, default=None, help="time budget in seconds")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None)
    parser.add_argument("--seed", type=int, default=None, help="seed for torch and the falsifier")
    parser.add_argument(
        "--results-file", type=Path, default=None, help="write a VNN-COMP results file"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument(
        "--method",
        choices=("ibp", "crown", "alpha-crown"),
        default=None,
        help="strongest bound method (default alpha-crown)",
    )
    parser.add_argument(
        "--no-bab", action="store_true", help="stop after the incomplete bounds (no branching)"
    )
    add_settings(parser)
    _add_common(parser)


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(key__path, value)`` (VALUE parsed as JSON when possible)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace(".", "__"), value


def config_from_args(args: argparse.Namespace) -> VerifyConfig:
    """The run's settings: defaults, ``--profile``, ``--config`` files, ``--set``, then flags.

    Every command builds its settings here (validated once, frozen).
    """
    overrides: dict[str, Any] = dict(parse_override(o) for o in getattr(args, "overrides", []))
    flags = {
        "timeout": "timeout",
        "device": "runtime__device",
        "dtype": "runtime__dtype",
        "method": "bounds__method",
    }
    for attr, key in flags.items():
        if getattr(args, attr, None) is not None:
            overrides[key] = getattr(args, attr)
    if getattr(args, "seed", None) is not None:
        overrides["runtime__seed"] = args.seed
        overrides["attack__seed"] = args.seed
    if getattr(args, "no_bab", False):
        overrides["bounds__bab"] = False
    return build_config(
        profile=getattr(args, "profile", None),
        files=getattr(args, "config_files", []),
        overrides=overrides,
    )


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def result_json(
    result: Result, model: Path, spec: Path, config: VerifyConfig | None = None
) -> dict[str, Any]:
    """The ``--json`` object: status, reason, timings, stats, counterexample (lists) or null,
    and the effective settings (``config``)."""
    payload = result.to_dict()
    for key in ("timings", "stats"):
        payload[key] = {k: _finite(v) for k, v in payload[key].items()}
    payload["model"] = str(model)
    payload["spec"] = str(spec)
    if config is not None:
        payload["config"] = config.to_dict()
    return payload


def _write_results_file(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the results file: {exc.strerror or exc}") from exc


class ProgressLine:
    """The live branch-and-bound line on stderr: domains left, worst margin, domains/s,
    the share of the search tree verified.

    On a terminal the line is redrawn in place (at most every ``interval`` seconds);
    otherwise one line is written every ``5 * interval`` seconds.
    """

    def __init__(self, stream: Any = None, interval: float = 0.5) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else 5 * interval
        self.last = -math.inf
        self.drawn = False
        self.latest: Any = None  # the last statistics seen (for an answer by the watchdog)

    def __call__(self, stats: Any) -> None:
        """Show branch-and-bound statistics (:class:`branching.BabStats`)."""
        self._show(stats, self._bab_line)

    def stabilizing(self, stats: Any) -> None:
        """Show the progress of stabilising neurons
        (:class:`branching.stabilize.StabilizeStats`)."""
        self._show(
            stats,
            lambda s: (
                f"stabilising: {s.proved} of {s.attempted} neurons proved stable, "
                f"{s.tightened} interval ends narrowed, {s.domains} domains, "
                f"{s.elapsed_s:.1f} s"
            ),
        )

    def _show(self, stats: Any, render: Callable[[Any], str]) -> None:
        self.latest = stats
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        line = render(stats)
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    @staticmethod
    def _bab_line(stats: Any) -> str:
        return (
            f"bab: {stats.domains_left} domains left, worst margin {stats.worst_margin:.4g}, "
            f"{stats.domains_per_s:.0f} domains/s, {stats.domains_bounded} bounded, "
            f"depth {stats.max_depth}, {100 * stats.verified_share:.1f}% verified, "
            f"{stats.elapsed_s:.1f} s"
        )

    def close(self) -> None:
        """End the redrawn line (terminal only)."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


class _Answer:
    """Writes the run's answer exactly once: from the run, or from the watchdog."""

    def __init__(self, args: argparse.Namespace, config: VerifyConfig | None = None) -> None:
        self.args = args
        self.config = config
        self.lock = threading.Lock()
        self.done = False

    def emit(self, result: Result) -> bool:
        """Write ``result`` (results file, then stdout) unless an answer was written."""
        with self.lock:
            if self.done:
                return False
            self.done = True
            args = self.args
            if args.results_file is not None:
                _write_results_file(args.results_file, result.to_vnncomp())
            if args.json:
                print(json.dumps(result_json(result, args.model, args.spec, self.config)))
            else:
                print(result.to_vnncomp(), end="")
            sys.stdout.flush()
            return True


def _late_answer(answer: _Answer, deadline: Deadline, line: ProgressLine | None = None):
    """The watchdog's answer: ``timeout``, unless the run has already answered. It carries
    the statistics of the running search, when one was running."""

    def late() -> bool:
        result = late_timeout(deadline, None if line is None else line.latest)
        try:
            return answer.emit(result)
        except InputError as exc:  # the results file cannot be written: still stop
            print(f"error: {exc}", file=sys.stderr)
            return True

    return late


def _run_verify(args: argparse.Namespace, deadline: Deadline) -> int:
    config = config_from_args(args)
    if config.timeout is not None:
        deadline = Deadline(end=deadline.start + config.timeout, start=deadline.start)
    line = ProgressLine()
    answer = _Answer(args, config)
    # Only a process of its own may be ended by the watchdog (not a caller's interpreter).
    timer = None
    if getattr(args, "owns_process", False):
        late = _late_answer(answer, deadline, line)
        timer = start_watchdog(deadline, grace_for(config.timeout), late)
    try:
        result = verify(args.model, args.spec, config, deadline=deadline, progress=line)
    except InputError:
        if args.results_file is not None:
            with contextlib.suppress(OSError):
                args.results_file.write_text(Status.ERROR.word + "\n")
        raise
    finally:
        line.close()
        if timer is not None:
            timer.cancel()
    answer.emit(result)
    return 1 if result.status is Status.ERROR else 0


# ----------------------------------------------------------------------------- check


def _configure_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="ONNX model")
    parser.add_argument(
        "spec", type=Path, nargs="?", default=None, help="sample inside this spec's first box"
    )
    parser.add_argument("--points", type=int, default=100, help="random points (default 100)")
    parser.add_argument(
        "--tolerance", type=float, default=1e-5, help="max relative error (default 1e-5)"
    )
    parser.add_argument("--seed", type=int, default=None, help="default: runtime.seed")
    add_settings(parser)
    _add_common(parser)


@contextlib.contextmanager
def _as_input_errors() -> Iterator[None]:
    """Turn loader errors (bad model, bad spec, unreadable file) into InputError."""
    try:
        yield
    except (models.ModelLoadError, vnnlib.VnnlibError) as exc:
        raise InputError(str(exc)) from exc
    except OSError as exc:
        name = exc.filename if exc.filename is not None else ""
        raise InputError(f"{name}: {exc.strerror or exc}") from exc


def _format_check(report: Any) -> str:
    counts = ", ".join(f"{op} {n}" for op, n in report.op_counts.items())
    nonlinear = ", ".join(report.nonlinear_ops) or "none"
    verdict = "ok" if report.passed else "over tolerance"
    return "\n".join(
        [
            f"model:          {report.model}",
            f"input:          {report.input_name} {list(report.input_shape)}",
            f"output:         {report.output_name} {list(report.output_shape)}",
            f"ops:            {counts}",
            f"nonlinear ops:  {nonlinear}",
            f"points:         {report.points}",
            f"max abs error:  {report.max_abs_err:.3g}",
            f"max rel error:  {report.max_rel_err:.3g} ({verdict}, tolerance {report.tolerance:g})",
        ]
        + _failure_details(report)
    )


def _failure_details(report: Any) -> list[str]:
    lines = []
    rel32 = getattr(report, "max_rel_err_float32", None)
    ref64 = getattr(report, "max_rel_err_float64_reference", None)
    if rel32 is not None:
        lines.append(f"  ours in float32 vs onnxruntime:          {rel32:.3g}")
    if ref64 is not None:
        lines.append(f"  ours vs onnxruntime on a float64 copy:   {ref64:.3g}")
    return lines


def _first_box(spec_path: Path, model_path: Path) -> tuple[Any, Any]:
    """The first input box of the spec, its X/Y counts checked against the model."""
    graph = models.load_onnx(model_path)
    spec = vnnlib.load_vnnlib(
        spec_path,
        n_inputs=math.prod(graph.inputs[0].shape),
        n_outputs=math.prod(graph.outputs[0].shape),
    )
    if not spec.cases:
        raise InputError(f"{spec_path}: the spec has no input box")
    return spec.cases[0].lower, spec.cases[0].upper


def _run_check(args: argparse.Namespace, deadline: Deadline) -> int:
    from verifier.onnx_agreement import check_model

    config = config_from_args(args)
    seed = config.runtime.seed if args.seed is None else args.seed
    if args.points < 1:
        raise InputError("--points must be at least 1")
    for path, what in ((args.model, "model"), (args.spec, "spec")):
        if path is not None and not path.is_file():
            raise InputError(f"{path}: {what} file not found")
    with _as_input_errors():
        box = None if args.spec is None else _first_box(args.spec, args.model)
        report = check_model(
            args.model, box=box, n_points=args.points, seed=seed, tolerance=args.tolerance
        )
    print(_format_check(report))
    return 0 if report.passed else 1


def _run_bounds(args: argparse.Namespace, deadline: Deadline) -> int:
    from verifier import bounds_cmd

    config = config_from_args(args)
    extra = bounds_cmd.overrides(args)
    return bounds_cmd.run(args, deadline, config.with_overrides(**extra) if extra else config)


def _configure_bounds(parser: argparse.ArgumentParser) -> None:
    from verifier import bounds_cmd

    bounds_cmd.configure(parser)
    add_settings(parser)
    _add_common(parser)


def _configure_bench(parser: argparse.ArgumentParser) -> None:
    from verifier.bench import cli as bench_cli

    bench_cli.configure(parser)
    add_settings(parser)
    _add_common(parser)


def _run_bench(args: argparse.Namespace, deadline: Deadline) -> int:
    from verifier.bench import cli as bench_cli

    config = config_from_args(args)  # validated here, applied by every instance run
    return bench_cli.run(args, config)


def _configure_lut(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "rest", nargs=argparse.REMAINDER, help="'build [--out DIR] [--ops A,B] [--check]'"
    )
    _add_common(parser)


def _run_lut(args: argparse.Namespace, deadline: Deadline) -> int:
    from branching import branch_points

    if not args.rest:
        raise InputError("usage: verify lut build [--out DIR] [--ops NAMES] [--check]")
    try:
        return branch_points.main(args.rest)
    except SystemExit as exc:  # argparse inside the lut command: usage already printed
        return int(exc.code or 0) and 2


SUBCOMMANDS: dict[str, Subcommand] = {
    "check": Subcommand(
        "compare our evaluation of a model with onnxruntime on random points",
        _configure_check,
        _run_check,
    ),
    "bounds": Subcommand(
        "print sound bounds of every spec row (per input box)", _configure_bounds, _run_bounds
    ),
    "bench": Subcommand(
        "run VNN-COMP benchmark folders, score them, write reports",
        _configure_bench,
        _run_bench,
    ),
    "lut": Subcommand("build or check the branching-point lookup tables", _configure_lut, _run_lut),
}


# ----------------------------------------------------------------------------- main


def _build_parser(
    argv: Sequence[str],
) -> tuple[argparse.ArgumentParser, Callable[[argparse.Namespace, Deadline], int]]:
    """The parser and runner for ``argv``: a subcommand's when argv[0] names one."""
    if argv and argv[0] in SUBCOMMANDS:
        sub = SUBCOMMANDS[argv[0]]
        parser = _Parser(prog=f"{PROG} {argv[0]}", description=sub.help)
        sub.configure(parser)
        return parser, sub.run
    listing = "\n".join(f"  {PROG} {name} ...  {sub.help}" for name, sub in SUBCOMMANDS.items())
    parser = _Parser(
        prog=PROG,
        description="Verify an ONNX model against a VNN-LIB property (sat/unsat/unknown/timeout).",
        epilog=f"subcommands (see '{PROG} NAME --help'):\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure_verify(parser)
    return parser, _run_verify


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises for bad input).

    As the process's entry point (``argv`` None), the process ends right after the
    answer is flushed: tearing down torch can take a second, which a time budget that
    counts from process start must not pay.
    """
    if argv is None:
        rc = _main(None)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        logging.shutdown()
        os._exit(rc)
    return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    # As the process's entry point, the budget also covers interpreter start-up and
    # imports; called with explicit arguments (from Python), it starts now.
    deadline = Deadline.since_process_start() if argv is None else Deadline.never()
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, run = _build_parser(args_list)
        offset = 1 if args_list and args_list[0] in SUBCOMMANDS else 0
        args = parser.parse_args(args_list[offset:])
        args.owns_process = argv is None
        _setup_logging(args.verbose)
        return run(args, deadline)
    except _ParserExit as exc:
        return exc.status
    except (_UsageError, InputError) as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
