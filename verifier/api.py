"""The Python API: ``verify``, ``certify_robustness`` and ``certified_radius``.

Models may be an ONNX path, an ``onnx.ModelProto`` or a torch ``nn.Module``; in-memory
models are held in an anonymous in-memory file (no file on disk), see
:mod:`verifier.loading`. Settings are built once here, like the CLI does
(:func:`verifier.config.build_config`): defaults, then ``profile``, then ``config`` (a
``VerifyConfig`` or a settings file), then ``**options`` (``timeout=5``,
``attack__steps=20``, ``bounds={"method": "crown"}``).

The library never prints: results are typed objects with ``to_dict()`` / ``to_json()``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verifier import loading
from verifier import pipeline as _pipeline
from verifier import robustness as _rob
from verifier.config import InputError, VerifyConfig, build_config
from verifier.deadline import Deadline
from verifier.result import Result

__all__ = ["certified_radius", "certify_robustness", "make_config", "verify"]


def make_config(
    config: VerifyConfig | str | os.PathLike | None = None,
    profile: str | None = None,
    **options: Any,
) -> VerifyConfig:
    """Settings for an API call: defaults -> profile -> ``config`` -> ``options``.

    Raises:
        ConfigError: unknown profile or key, invalid value, unreadable settings file.
    """
    if isinstance(config, VerifyConfig):
        base = config if profile is None else build_config(profile=profile)
        if profile is not None:
            base = base.with_overrides(**config.to_dict())
        return base.with_overrides(**options) if options else base
    files = () if config is None else (config,)
    return build_config(profile=profile, files=files, overrides=options)


def _is_file_path(value: Any) -> bool:
    return isinstance(value, os.PathLike) or (isinstance(value, str) and "(" not in value)


def verify(
    model: Any,
    spec: Any,
    config: VerifyConfig | str | os.PathLike | None = None,
    *,
    profile: str | None = None,
    input_shape: Sequence[int] | None = None,
    deadline: Deadline | None = None,
    stages: tuple[_pipeline.Stage, ...] = _pipeline.DEFAULT_STAGES,
    **options: Any,
) -> Result:
    """Verify ``model`` against ``spec`` (sat / unsat / unknown / timeout, never wrong).

    Args:
        model: ONNX path, ``onnx.ModelProto`` or torch ``nn.Module`` (exported in memory).
        spec: VNN-LIB path, VNN-LIB text or a ``vnnlib.Spec``.
        config: a ``VerifyConfig`` or a settings file (TOML/YAML).
        profile: a shipped profile name (``verifier/profiles``) applied before ``config``.
        input_shape: example input shape (batch included) to export a torch module; by
            default ``(1, n)`` with ``n`` the spec's number of inputs.
        deadline: an already running budget (default: ``config.timeout`` from now).
        stages: the pipeline's stage sequence.
        **options: settings overrides (``timeout=5``, ``attack__steps=20``...).

    Returns:
        The :class:`~verifier.result.Result`.

    Raises:
        InputError: bad model, spec or settings (one-line message).
    """
    cfg = make_config(config, profile, **options)
    if _is_file_path(model) and _is_file_path(spec):
        return _pipeline.verify(model, spec, cfg, deadline=deadline, stages=stages)
    if input_shape is None and not _is_file_path(model) and not _is_onnx(model):
        input_shape = (1, _spec_inputs(spec))
    data = loading.onnx_bytes(model, input_shape)
    label = str(model) if _is_file_path(model) else "<in-memory model>"
    with loading.memory_file(data) as path:

        def load() -> _pipeline.Problem:
            graph = loading.load_graph(path, label)
            n_in = int(math.prod(graph.inputs[0].shape))
            n_out = int(math.prod(graph.outputs[0].shape))
            parsed, spec_path = loading.spec_from(spec, n_in, n_out)
            return loading.make_problem(graph, parsed, path, spec_path)

        return _pipeline.verify_loaded(load, cfg, deadline=deadline, stages=stages)


def _is_onnx(model: Any) -> bool:
    import onnx

    return isinstance(model, onnx.ModelProto)


def _spec_inputs(spec: Any) -> int:
    """Number of inputs a spec declares (to export a torch module without input_shape)."""
    parsed, _ = loading.spec_from(spec, None, None)  # type: ignore[arg-type]
    return parsed.n_inputs


def _robustness_problem(
    path: Path,
    norm: float | str,
    domain: tuple[float, float] | None,
    cfg: VerifyConfig,
    label: str,
) -> _rob.RobustnessProblem:
    p = math.inf if str(norm).lower() in ("inf", "linf") else float(norm)
    if not p >= 1:
        raise InputError(f"norm must be 'inf' or a number >= 1, got {norm!r}")
    if domain is not None and not domain[0] <= domain[1]:
        raise InputError(f"domain must be (lo, hi) with lo <= hi, got {domain!r}")
    graph = loading.load_graph(path, label)
    return _rob.RobustnessProblem(graph, path, cfg, p, domain)


def _prepare(model: Any, x: Any, input_shape: Sequence[int] | None) -> tuple[bytes, str]:
    """The model's ONNX bytes (torch modules exported on ``x``'s per-input shape), label."""
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    if input_shape is None:
        input_shape = (1,) + tuple(arr.shape[1:]) if arr.ndim > 1 else (1, arr.size)
    data = loading.onnx_bytes(model, input_shape)
    label = str(model) if _is_file_path(model) else "<in-memory model>"
    return data, label


def _check_labels(labels: np.ndarray, n_out: int) -> None:
    if np.any(labels < 0) or np.any(labels >= n_out):
        raise InputError(f"labels must be in [0, {n_out}), got {labels.tolist()}")


def certify_robustness(
    model: Any,
    x: Any,
    eps: float,
    label: Any,
    *,
    norm: float | str = "inf",
    domain: tuple[float, float] | None = None,
    input_shape: Sequence[int] | None = None,
    config: VerifyConfig | str | os.PathLike | None = None,
    profile: str | None = None,
    **options: Any,
) -> _rob.Certificate:
    """Certify that every point within ``eps`` of each input keeps its label.

    Args:
        model: ONNX path, ``onnx.ModelProto`` or torch ``nn.Module`` (exported in memory).
        x: ``[N, ...]`` inputs (numpy or torch), or one input of the model's input shape.
        eps: the radius; norm: ``"inf"`` or ``2`` (any ``p >= 1``).
        label: ``[N]`` labels (or one label for every input).
        domain: valid-input box ``(lo, hi)`` intersected with every ball.
        input_shape: export shape for torch modules (default ``(1, *x.shape[1:])``).
        config, profile, **options: settings, as for :func:`verify` (``timeout`` bounds the
            whole call).

    Returns:
        A :class:`~verifier.robustness.Certificate` (per-input status, margin lower
        bounds, confirmed counterexamples, time).
    """
    cfg = make_config(config, profile, **options)
    if not (math.isfinite(eps) and eps >= 0):
        raise InputError(f"eps must be a finite number >= 0, got {eps!r}")
    data, name = _prepare(model, x, input_shape)
    with loading.memory_file(data) as path:
        problem = _robustness_problem(path, norm, domain, cfg, name)
        xs, labels = _rob.as_batch(x, label, problem.input_shape)
        _check_labels(labels, problem.n_out)
        return _rob.certify(problem, xs, eps, labels)


def certified_radius(
    model: Any,
    x: Any,
    label: int,
    *,
    norm: float | str = "inf",
    domain: tuple[float, float] | None = None,
    upper: float | None = None,
    rel_tol: float = 0.01,
    input_shape: Sequence[int] | None = None,
    config: VerifyConfig | str | os.PathLike | None = None,
    profile: str | None = None,
    **options: Any,
) -> _rob.Radius:
    """The largest radius this engine proves for one input, bracketed within ``rel_tol``.

    Several radii are bounded per round in one batched call (multisection); the result's
    ``certified`` is proved, ``refuted`` is not, and ``refuted - certified <= rel_tol *
    refuted`` unless the time budget (``timeout``) ran out first. The falsifier then runs at
    ``refuted``; a counterexample there shows the model itself is not robust at that radius.

    Args:
        model, x (one input), label, norm, domain, input_shape, config, profile, options:
            as for :func:`certify_robustness`.
        upper: a first radius to try (default: the domain's width, or 1), doubled until it
            is not proved.
        rel_tol: relative width of the final bracket.
    """
    cfg = make_config(config, profile, **options)
    if not 0 < rel_tol < 1:
        raise InputError(f"rel_tol must be in (0, 1), got {rel_tol!r}")
    data, name = _prepare(model, x, input_shape)
    with loading.memory_file(data) as path:
        problem = _robustness_problem(path, norm, domain, cfg, name)
        xs, labels = _rob.as_batch(x, label, problem.input_shape)
        if len(xs) != 1:
            raise InputError(f"certified_radius takes one input, got {len(xs)}")
        _check_labels(labels, problem.n_out)
        return _rob.radius(problem, xs[0], int(labels[0]), upper=upper, rel_tol=rel_tol)
