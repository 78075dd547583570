"""Export zoo networks to ONNX and write their VNN-LIB specifications.

``python -m models.zoo [--out DIR] [--only NAME ...]`` regenerates the shipped files
``<name>.onnx`` and ``<name>.vnnlib`` (default: the packaged ``models/zoo_data``
directory). ``python -m models.zoo.export`` works too, but Python's runpy then warns that
the module was already imported by the package (``models.zoo`` re-exports ``export``).

Exports use the ``torch.export``-based exporter (``dynamo=True``) at opset 18, with the
graph input named ``"input"`` and the output ``"output"``. Exporter metadata (stack
traces with file paths, producer version, doc strings) is stripped, so exporting the
same network twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from models.zoo.networks import (
    ZOO,
    PowerFlowResidual,
    ZooEntry,
    acopf_nominal_state,
    build,
    get_entry,
    power_injections,
)
from models.zoo.specs import residual_spec, robustness_spec

OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "output"
PRODUCER = "nlverify.models.zoo"
N_CENTER_CANDIDATES = 16
"""Robustness specs: seeded candidate centres; the one with the largest margin is used."""

_EXPORTER_LOGGERS = ("torch.onnx._internal.exporter._registration",)
_BENIGN_WARNINGS = (
    r"The tensor attributes .* were assigned during export",
    r".*isinstance\(treespec, LeafSpec\)",
)


# --------------------------------------------------------------------------- paths
def data_dir() -> Path:
    """The packaged directory holding the shipped zoo files (``models/zoo_data``)."""
    return Path(__file__).resolve().parent.parent / "zoo_data"


def zoo_model_path(name: str) -> Path:
    """Path of the shipped ONNX file of network ``name`` (checked against ``ZOO``)."""
    return data_dir() / f"{get_entry(name).name}.onnx"


def zoo_spec_path(name: str) -> Path:
    """Path of the shipped VNN-LIB file of network ``name`` (checked against ``ZOO``)."""
    return data_dir() / f"{get_entry(name).name}.vnnlib"


# --------------------------------------------------------------------------- ONNX
def example_input(name: str) -> torch.Tensor:
    """A deterministic float32 input of the network's shape (used for tracing)."""
    entry = get_entry(name)
    rng = np.random.default_rng(entry.seed)
    lo, hi = (max(entry.input_range[0], -1.0), min(entry.input_range[1], 1.0))
    return torch.from_numpy(rng.uniform(lo, hi, entry.input_shape).astype(np.float32))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's known-benign warnings and log lines, restoring them after."""
    loggers = [logging.getLogger(n) for n in _EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for pattern in _BENIGN_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _clear(message: object) -> None:
    """Empty ``doc_string`` and ``metadata_props`` of a proto where it has those fields."""
    fields = message.DESCRIPTOR.fields_by_name  # type: ignore[attr-defined]
    if "doc_string" in fields:
        message.doc_string = ""  # type: ignore[attr-defined]
    if "metadata_props" in fields:  # absent before onnx 1.16
        message.ClearField("metadata_props")  # type: ignore[attr-defined]


def _strip_graph(graph: onnx.GraphProto) -> None:
    """Clear doc strings and metadata on a graph, its values, nodes and subgraphs."""
    _clear(graph)
    for seq in (graph.input, graph.output, graph.value_info, graph.initializer):
        for item in seq:
            _clear(item)
    for node in graph.node:
        _clear(node)
        for attr in node.attribute:
            if attr.HasField("g"):
                _strip_graph(attr.g)
            for sub in attr.graphs:
                _strip_graph(sub)


def strip_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove exporter metadata (stack traces, versions, doc strings) in place; return it."""
    model.producer_name = PRODUCER
    model.producer_version = ""
    _clear(model)
    _strip_graph(model.graph)
    for function in model.functions:
        _clear(function)
        for node in function.node:
            _clear(node)
    return model


def to_onnx(model: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    """Export ``model`` traced at ``example`` to a checked, metadata-free ONNX model.

    Uses ``torch.onnx.export(dynamo=True, opset_version=OPSET)`` (needs onnxscript).
    """
    with _quiet_exporter():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            external_data=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            verbose=False,
            optimize=True,
        )
    proto = strip_metadata(program.model_proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def op_types(model: onnx.ModelProto) -> list[str]:
    """Sorted distinct op types of the model's main graph."""
    return sorted({node.op_type for node in model.graph.node})


# --------------------------------------------------------------------------- specs
def _predict(model: nn.Module, x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """Outputs ``[K, n_out]`` (float64) of ``model`` for ``K`` inputs given as rows of ``x``."""
    batch = torch.from_numpy(x.astype(np.float32).reshape(len(x), *input_shape[1:]))
    with torch.no_grad():
        return model(batch).reshape(len(x), -1).double().numpy()


def _robustness_text(entry: ZooEntry, model: nn.Module) -> str:
    """Robustness spec around the seeded candidate centre with the largest top-2 margin."""
    rng = np.random.default_rng(entry.seed)
    lo, hi = entry.input_range
    size = math.prod(entry.input_shape)
    centers = np.round(rng.uniform(lo + entry.eps, hi - entry.eps, (N_CENTER_CANDIDATES, size)), 4)
    scores = _predict(model, centers, entry.input_shape)
    top2 = np.sort(scores, axis=1)[:, -2:]
    best = int(np.argmax(top2[:, 1] - top2[:, 0]))
    label = int(np.argmax(scores[best]))
    comment = (
        f"zoo network {entry.name}: {entry.description}\n"
        f"Linf robustness, eps={entry.eps}, label={label}, input shape {list(entry.input_shape)}"
    )
    return robustness_spec(
        centers[best], label, entry.n_outputs, entry.eps, lo=lo, hi=hi, comment=comment
    )


def _residual_text(entry: ZooEntry, model: nn.Module) -> str:
    """ACOPF spec: box around the nominal state; tolerance 1.5x the largest |residual|.

    The largest residual is taken over the box's corners and seeded uniform samples (on
    such a small box the residuals are nearly linear, so corners dominate).
    """
    if not isinstance(model, PowerFlowResidual):
        raise TypeError(f"{entry.name}: residual specs need a PowerFlowResidual module")
    state = acopf_nominal_state(entry.input_shape[-1] // 2, seed=entry.seed)
    lower, upper = state - entry.eps, state + entry.eps
    rng = np.random.default_rng(entry.seed)
    corners = np.array(list(itertools.product(*zip(lower, upper, strict=True))))
    samples = np.concatenate([corners, rng.uniform(lower, upper, (1024, state.size))])
    residual = np.abs(_acopf_residuals(model, samples)).max(axis=0)
    tol = np.array([float(f"{1.5 * r:.2g}") for r in residual])
    comment = (
        f"zoo network {entry.name}: {entry.description}\n"
        f"residual bands around the nominal state, eps={entry.eps}"
    )
    return residual_spec(lower, upper, tol, n_outputs=entry.n_outputs, comment=comment)


def _acopf_residuals(model: PowerFlowResidual, states: np.ndarray) -> np.ndarray:
    """Float64 residuals ``[K, 2n]`` of the ``PowerFlowResidual`` ``model`` (numpy reference)."""
    n = states.shape[1] // 2
    g = (model.g_off + torch.diag(model.g_diag)).double().numpy()
    b = (model.b_off + torch.diag(model.b_diag)).double().numpy()
    p_d, q_d = model.p_d.double().numpy(), model.q_d.double().numpy()
    out = []
    for s in states:
        p, q = power_injections(s[:n], s[n:], g, b)
        out.append(np.concatenate([p - p_d, q - q_d]))
    return np.stack(out)


def make_spec(name: str, model: nn.Module | None = None) -> str:
    """The VNN-LIB text shipped with network ``name`` (``model`` defaults to ``build(name)``)."""
    entry = get_entry(name)
    model = build(name) if model is None else model
    if entry.spec_kind == "residual":
        return _residual_text(entry, model)
    return _robustness_text(entry, model)


# --------------------------------------------------------------------------- files
def export(name: str, out_dir: str | Path, *, with_spec: bool = True) -> Path:
    """Write ``<out_dir>/<name>.onnx`` (and ``<name>.vnnlib`` unless ``with_spec=False``).

    Returns:
        The path of the ONNX file.
    """
    entry = get_entry(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = entry.builder()
    proto = to_onnx(model, example_input(name))
    path = out / f"{entry.name}.onnx"
    onnx.save_model(proto, path)
    if with_spec:
        (out / f"{entry.name}.vnnlib").write_text(
            make_spec(name, model), encoding="ascii", newline="\n"
        )
    return path


def export_all(out_dir: str | Path) -> list[Path]:
    """Export every zoo network with its spec into ``out_dir``; return the ONNX paths."""
    return [export(name, out_dir) for name in ZOO]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: export the zoo and print one summary line per network."""
    parser = argparse.ArgumentParser(
        prog="python -m models.zoo",
        description="Export the zoo networks to ONNX and write their VNN-LIB specs.",
    )
    parser.add_argument(
        "--out", type=Path, default=data_dir(), help="output directory (default: %(default)s)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(ZOO),
        metavar="NAME",
        help=f"export only NAME (repeatable); one of {', '.join(ZOO)}",
    )
    args = parser.parse_args(argv)
    for name in args.only or list(ZOO):
        start = time.perf_counter()
        path = export(name, args.out)
        seconds = time.perf_counter() - start
        ops = ",".join(op_types(onnx.load(path)))
        print(f"{name:12s} {path.stat().st_size:7d} B {seconds:5.2f} s  {ops}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
