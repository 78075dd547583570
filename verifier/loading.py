"""Problems from other sources than two files: in-memory models and specs, cached graphs.

* :func:`memory_file` holds ONNX bytes in an anonymous in-memory file (Linux ``memfd``) and
  yields a path the importer and onnxruntime can open; nothing is written to disk. Where
  ``memfd_create`` does not exist, a private temporary file is used and removed after.
* :func:`onnx_bytes` turns an ONNX path, an ``onnx.ModelProto`` or a torch ``nn.Module``
  (exported in memory with an example input of ``input_shape``) into ONNX bytes.
* :func:`make_problem` builds a :class:`~verifier.pipeline.Problem` from an already imported
  graph and a parsed spec, with the same checks as ``load_problem``.
* :func:`graph_to_bytes` / :func:`graph_from_bytes` serialise our graph IR (for the
  VNN-COMP harness cache); the graph is validated again when read back.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import pickle
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import models
import vnnlib
from models.graph import Graph, Node, ValueInfo, freeze_attrs
from verifier.attack import group_cases
from verifier.config import InputError
from verifier.pipeline import Problem

__all__ = [
    "GRAPH_FORMAT",
    "graph_from_bytes",
    "graph_to_bytes",
    "make_problem",
    "memory_file",
    "onnx_bytes",
    "spec_from",
]

log = logging.getLogger(__name__)

GRAPH_FORMAT = 1
"""Version of the serialised graph layout; a different version is not read."""


@contextlib.contextmanager
def memory_file(data: bytes, name: str = "model.onnx") -> Iterator[Path]:
    """A path whose content is ``data``, held in memory (no file on disk where possible)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(name)
        try:
            os.write(fd, data)
            yield Path(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="nlverify-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        yield path


def _export_torch(module: Any, input_shape: Sequence[int]) -> bytes:
    """ONNX bytes of a torch module traced on zeros of ``input_shape`` (batch included)."""
    import torch

    example = torch.zeros(tuple(int(s) for s in input_shape), dtype=torch.float32)
    buffer = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                buffer,
                dynamo=False,
                opset_version=17,
                input_names=["input"],
                output_names=["output"],
            )
    except Exception as exc:  # torch raises many unrelated types for unexportable code
        raise InputError(f"the torch model cannot be exported to ONNX: {exc}") from exc
    finally:
        module.train(was_training)
    return buffer.getvalue()


def onnx_bytes(model: Any, input_shape: Sequence[int] | None = None) -> bytes:
    """ONNX bytes of ``model``: a path, an ``onnx.ModelProto`` or a torch ``nn.Module``.

    Args:
        model: the model.
        input_shape: the example input shape used to export a torch module, batch
            dimension included (e.g. ``(1, 1, 28, 28)``); required for torch modules.

    Raises:
        InputError: unreadable file, unexportable module, missing ``input_shape``, or an
            object of another type.
    """
    import onnx

    if isinstance(model, (str, os.PathLike)):
        try:
            return Path(model).read_bytes()
        except OSError as exc:
            raise InputError(f"{model}: cannot read the model: {exc.strerror or exc}") from exc
    if isinstance(model, onnx.ModelProto):
        return model.SerializeToString()
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        torch = None
    if torch is not None and isinstance(model, torch.nn.Module):
        if input_shape is None:
            raise InputError("a torch model needs input_shape (batch included) to be exported")
        return _export_torch(model, input_shape)
    raise InputError(
        f"model must be an ONNX path, an onnx.ModelProto or a torch.nn.Module, "
        f"not {type(model).__name__}"
    )


def spec_from(spec: Any, n_inputs: int, n_outputs: int) -> tuple[vnnlib.Spec, Path]:
    """A parsed spec and its source path from a VNN-LIB path, VNN-LIB text or a Spec.

    Text is recognised by a ``(`` (every VNN-LIB file declares variables); anything else
    that is a string is a path.

    Raises:
        InputError: unreadable or malformed spec, or X/Y counts that differ from the model.
    """
    try:
        if isinstance(spec, vnnlib.Spec):
            vnnlib.check_shape(spec, n_inputs, n_outputs)
            return spec, Path(spec.source or "<spec>")
        if isinstance(spec, str) and "(" in spec:
            parsed = vnnlib.parse_vnnlib(spec, "<vnnlib text>")
            vnnlib.check_shape(parsed, n_inputs, n_outputs)
            return parsed, Path("<vnnlib text>")
        if isinstance(spec, (str, os.PathLike)):
            path = Path(spec)
            if not path.is_file():
                raise InputError(f"{path}: spec file not found")
            return vnnlib.load_vnnlib(path, n_inputs=n_inputs, n_outputs=n_outputs), path
    except (vnnlib.VnnlibError, vnnlib.SpecShapeError) as exc:
        raise InputError(str(exc)) from exc
    raise InputError(f"spec must be a VNN-LIB path, text or a Spec, not {type(spec).__name__}")


def load_graph(path: Path, label: str | None = None) -> Graph:
    """``models.load_onnx`` with load failures turned into InputError (naming ``label``)."""
    try:
        graph = models.load_onnx(path)
    except models.ModelLoadError as exc:
        message = str(exc)
        if label is not None:
            message = message.replace(str(path), label)
        raise InputError(message) from exc
    return graph


def make_problem(graph: Graph, spec: vnnlib.Spec, model_path: Path, spec_path: Path) -> Problem:
    """A Problem from an imported graph and a spec (single input and output, counts checked).

    Raises:
        InputError: the graph does not have exactly one input and one output, or the
            spec's X/Y counts differ from the graph's flat input/output sizes.
    """
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise InputError(
            f"{graph.name}: expected one input and one output, found "
            f"{len(graph.inputs)} input(s) and {len(graph.outputs)} output(s)"
        )
    n_in = int(math.prod(graph.inputs[0].shape))
    n_out = int(math.prod(graph.outputs[0].shape))
    try:
        vnnlib.check_shape(spec, n_in, n_out)
    except vnnlib.SpecShapeError as exc:
        raise InputError(str(exc)) from exc
    return Problem(model_path, spec_path, graph, spec, group_cases(spec.cases))


def graph_to_bytes(graph: Graph) -> bytes:
    """Serialise a graph (inputs, outputs, nodes, constants) with its format version."""
    payload = {
        "format": GRAPH_FORMAT,
        "name": graph.name,
        "inputs": [(v.name, tuple(v.shape)) for v in graph.inputs],
        "outputs": [(v.name, tuple(v.shape)) for v in graph.outputs],
        "nodes": [(n.name, n.op, tuple(n.inputs), dict(n.attrs), tuple(n.shape)) for n in graph],
        "constants": {k: np.asarray(v) for k, v in graph.constants.items()},
    }
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


def graph_from_bytes(data: bytes) -> Graph | None:
    """The graph serialised by :func:`graph_to_bytes`, or None for another format version.

    Only read data this process (or the harness's prepare step) wrote: it is a pickle.
    """
    payload = pickle.loads(data)
    if not isinstance(payload, dict) or payload.get("format") != GRAPH_FORMAT:
        return None
    graph = Graph(
        inputs=tuple(ValueInfo(n, tuple(s)) for n, s in payload["inputs"]),
        outputs=tuple(ValueInfo(n, tuple(s)) for n, s in payload["outputs"]),
        nodes=tuple(
            Node(name, op, tuple(ins), freeze_attrs(attrs), tuple(shape))
            for name, op, ins, attrs, shape in payload["nodes"]
        ),
        constants=payload["constants"],
        name=payload["name"],
    )
    return graph.validate()
