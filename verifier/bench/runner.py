"""Run benchmark instances, each in its own process under a hard timeout, one row each.

Every instance runs ``python -m verifier.vnncomp run ... --json`` (the same code path as
the competition's ``run_instance.sh``) in a fresh process. The engine stops itself at the
instance's timeout (scaled, then capped); the process is killed ``GRACE_S`` later if it
has not exited. The JSON line it prints gives the engine's stop reason and the number of
branch-and-bound domains. Each child gets ``OMP_NUM_THREADS``: ``RunSpec.threads`` when
set, else the caller's value, else 1.

Backends (``BACKENDS``: name -> class, no if/elif):

* ``pool`` (default): ``jobs`` threads on this machine, each waiting on one child process;
* ``ray``: one Ray task per instance (``num_cpus=1``, no retries) on a local or existing
  cluster (``address``); a task whose worker dies gives an ``error`` row, never a lost row.

Rows are handed to ``on_row`` as they finish (the caller appends them to results.csv).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verifier.bench.instances import Instance

__all__ = ["BACKENDS", "GRACE_S", "InstanceRun", "Row", "RunSpec", "run_instances"]

log = logging.getLogger(__name__)

GRACE_S = 10.0
"""Seconds past the timeout before the instance's process is killed."""

RESULT_WORDS = ("sat", "unsat", "timeout", "unknown")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of results.csv.

    Attributes:
        benchmark, onnx, vnnlib: the instance (paths as in instances.csv).
        result: ``sat``, ``unsat``, ``timeout``, ``unknown`` or ``error``.
        time: wall-clock seconds of the run step.
        stop_reason: why it ended (``answered``, ``engine timeout``, ``killed after N s``,
            ``exit code N``, ``worker died: ...``).
        timeout: the budget the run was given (scaled and capped; None when unknown).
        engine_stop: the engine's own stop reason (``proved``, ``counterexample``,
            ``timeout``, ``max_domains``, ... as in ``verify --json``; ``""`` when the run
            gave none).
        domains: branch-and-bound domains bounded (0 when no search ran).
    """

    benchmark: str
    onnx: str
    vnnlib: str
    result: str
    time: float
    stop_reason: str
    timeout: float | None = None
    engine_stop: str = ""
    domains: int = 0

    FIELDS = (
        "benchmark",
        "onnx",
        "vnnlib",
        "result",
        "time",
        "stop_reason",
        "timeout",
        "engine_stop",
        "domains",
    )

    @property
    def key(self) -> tuple[str, str, str]:
        """``(benchmark, onnx, vnnlib)``."""
        return (self.benchmark, self.onnx, self.vnnlib)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """How to run each instance.

    Attributes:
        timeout_scale: multiplies every row's timeout.
        timeout_cap: upper limit of every (scaled) timeout in seconds (None: no cap).
        settings: ``--set`` overrides and ``--config`` files passed to every run
            (``("--set", "k=v", "--config", "f.toml", ...)``).
        python: the interpreter of the child processes.
        threads: ``OMP_NUM_THREADS`` of every child (None: the caller's value, else 1).
        env: extra environment for the children (applied last).
    """

    timeout_scale: float = 1.0
    timeout_cap: float | None = None
    settings: tuple[str, ...] = ()
    python: str = sys.executable
    threads: int | None = None
    env: tuple[tuple[str, str], ...] = ()

    def timeout_for(self, instance: Instance) -> float:
        """The instance's budget: its timeout times the scale, at most the cap."""
        timeout = instance.timeout * self.timeout_scale
        return timeout if self.timeout_cap is None else min(timeout, self.timeout_cap)


@dataclass(frozen=True, slots=True)
class InstanceRun:
    """What a run returns: the row and the results file's text (witness included)."""

    row: Row
    text: str


def _child_env(spec: RunSpec) -> dict[str, str]:
    env = dict(os.environ)
    if spec.threads is not None:
        env["OMP_NUM_THREADS"] = str(spec.threads)
    else:
        env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
    env.update(dict(spec.env))
    return env


def run_one(instance: Instance, spec: RunSpec) -> InstanceRun:
    """Run one instance in a child process under a hard timeout (never raises for it)."""
    timeout = spec.timeout_for(instance)
    with tempfile.TemporaryDirectory(prefix="nlverify-bench-") as tmp:
        results = Path(tmp) / "results.txt"
        cmd = [
            spec.python,
            "-m",
            "verifier.vnncomp",
            "run",
            instance.benchmark,
            str(instance.onnx_path),
            str(instance.vnnlib_path),
            str(results),
            f"{timeout:g}",
            "--json",
            *spec.settings,
        ]
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                env=_child_env(spec),
                capture_output=True,
                text=True,
                timeout=timeout + GRACE_S,
            )
            code: int | None = proc.returncode
            stdout, stderr = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired:
            code, stdout, stderr = None, "", ""
        elapsed = time.perf_counter() - start
        text = results.read_text() if results.is_file() else ""
    row = _row(instance, text, code, stderr, elapsed, timeout, _last_json(stdout))
    return InstanceRun(row, text)


def _last_json(stdout: str) -> dict[str, Any]:
    """The JSON object on the last line of the child's stdout ({} when there is none)."""
    lines = stdout.strip().splitlines()
    if not lines:
        return {}
    try:
        data = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _domains(data: dict[str, Any]) -> int:
    stats = data.get("stats")
    value = stats.get("bab_domains", 0) if isinstance(stats, dict) else 0
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _row(
    instance: Instance,
    text: str,
    code: int | None,
    stderr: str,
    elapsed: float,
    timeout: float,
    data: dict[str, Any] | None = None,
) -> Row:
    word = text.split("\n", 1)[0].strip() if text else ""
    if code is None:
        result, reason = "timeout", f"killed after {timeout + GRACE_S:g} s"
    elif code != 0:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        result, reason = "error", f"exit code {code}: {last}"[:200]
    elif word not in RESULT_WORDS:
        result, reason = "error", f"no result in the results file ({word!r})"
    else:
        result = word
        reason = "engine timeout" if word == "timeout" else "answered"
    data = data or {}
    return Row(
        *instance.key,
        result,
        round(elapsed, 3),
        reason,
        round(timeout, 3),
        str(data.get("stop") or ""),
        _domains(data),
    )


class PoolBackend:
    """``jobs`` threads on this machine, each running one instance process at a time."""

    def __init__(self, jobs: int = 1, **_: Any) -> None:
        self.jobs = max(1, int(jobs))

    def run(
        self,
        instances: Sequence[Instance],
        spec: RunSpec,
        on_done: Callable[[InstanceRun], None],
    ) -> None:
        """Run everything; ``on_done`` is called in this thread as runs finish."""
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(run_one, inst, spec) for inst in instances]
            for fut in as_completed(futures):
                on_done(fut.result())


class RayBackend:
    """One Ray task per instance (``num_cpus=1``, ``max_retries=0``).

    ``address``: an existing cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
    None starts a local Ray with ``jobs`` CPUs. The model and spec paths must be readable
    on the workers (a shared filesystem, or the same layout on every node).
    """

    def __init__(self, jobs: int = 1, address: str | None = None, **_: Any) -> None:
        self.jobs = max(1, int(jobs))
        self.address = address

    def run(
        self,
        instances: Sequence[Instance],
        spec: RunSpec,
        on_done: Callable[[InstanceRun], None],
    ) -> None:
        """Submit every instance, then collect rows as tasks finish."""
        import ray  # optional dependency: pip install "nlverify[ray]"

        started_here = not ray.is_initialized()
        if started_here:
            kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
            if self.address is None:
                kwargs["num_cpus"] = self.jobs
            ray.init(address=self.address, **kwargs)
        try:
            task = ray.remote(num_cpus=1, max_retries=0)(run_one)
            pending = {task.remote(inst, spec): inst for inst in instances}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                inst = pending.pop(done[0])
                on_done(_collect(ray, done[0], inst, spec))
        finally:
            if started_here:
                ray.shutdown()


def _collect(ray: Any, ref: Any, inst: Instance, spec: RunSpec) -> InstanceRun:
    """The task's result, or an ``error`` row when the worker or the task failed."""
    try:
        return ray.get(ref)
    except (ray.exceptions.RayError, OSError) as exc:
        reason = f"worker died: {type(exc).__name__}: {' '.join(str(exc).split())}"[:200]
        return InstanceRun(Row(*inst.key, "error", 0.0, reason, spec.timeout_for(inst)), "")


BACKENDS: dict[str, type] = {"pool": PoolBackend, "ray": RayBackend}


def run_instances(
    instances: Iterable[Instance],
    spec: RunSpec,
    on_done: Callable[[InstanceRun], None],
    *,
    backend: str = "pool",
    jobs: int = 1,
    address: str | None = None,
) -> None:
    """Run ``instances`` with the named backend, calling ``on_done`` once per instance.

    Raises:
        ValueError: unknown backend name.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    BACKENDS[backend](jobs=jobs, address=address).run(list(instances), spec, on_done)
