"""ONNX file -> :class:`models.Graph` (our canonical IR).

Steps: read and check the file (``onnx.checker``); fix the symbolic batch
dimension of the input to 1 (any other dynamic dimension is an error); run
``onnx.shape_inference`` (used to cross-check our own shapes); walk the nodes in
order, evaluating every node whose inputs are all constants (``models.onnx_fold``)
and converting the others with the per-op converters (``models.onnx_ops_*``);
finally run the graph rewrite passes of ``models.passes``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from .builder import GraphBuilder
from .errors import ModelLoadError
from .graph import Graph, GraphError
from .lstm import LSTM_CONVERTERS
from .onnx_context import ConvertContext, Converter
from .onnx_fold import FOLD_ERRORS, fold_node
from .onnx_ops_math import MATH_CONVERTERS
from .onnx_ops_nn import NN_CONVERTERS
from .onnx_ops_shape import SHAPE_CONVERTERS
from .onnx_resize import RESIZE_CONVERTERS
from .passes import DEFAULT_PASSES, run_passes

logger = logging.getLogger(__name__)

CONVERTERS: dict[str, Converter] = {
    **MATH_CONVERTERS,
    **SHAPE_CONVERTERS,
    **NN_CONVERTERS,
    **RESIZE_CONVERTERS,
    **LSTM_CONVERTERS,
}
"""ONNX op type -> converter for nodes that depend on the model input."""

SUPPORTED_ONNX_OPS: tuple[str, ...] = tuple(sorted({*CONVERTERS, "Constant"}))
"""ONNX ops accepted on values that depend on the input (listed in errors)."""

_FLOAT_INPUTS = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}


def load_onnx(path: str | Path, *, fold_constants: bool = True) -> Graph:
    """Load an ONNX model into our canonical graph IR.

    Args:
        path: the ``.onnx`` file (exactly one input, floating point).
        fold_constants: run ``models.passes.DEFAULT_PASSES``, which fold constant
            operands into Linear/Conv weights and biases (bias Add, BatchNorm and
            other per-channel scales, affine ops before a Linear), fuse GELU
            patterns and remove Transposes, Reshapes and identity ops. Constant
            subgraphs (shape arithmetic, weight transforms) are always evaluated
            at import, because our IR has no ops for them.

    Returns:
        A validated graph; shapes are ONNX shapes with the batch fixed to 1.

    Raises:
        UnsupportedOpError: an op, attribute or input form we do not support
            (the message names the node, the op and lists the supported ops).
        ModelLoadError: missing file, not ONNX, checker failure, unresolvable
            dynamic shape or inconsistent model (the message names the file).
    """
    start = time.perf_counter()
    label = str(path)
    model = _read(Path(path), label)
    model = _fix_batch(model, label)
    inferred = _inferred_shapes(model, label)
    graph = _Walker(model, label, inferred).run()
    if fold_constants:
        graph = run_passes(graph, DEFAULT_PASSES)
    logger.debug(
        "loaded %s in %.3fs: %d nodes %s",
        label,
        time.perf_counter() - start,
        len(graph),
        graph.op_counts(),
    )
    return graph


def _read(path: Path, label: str) -> onnx.ModelProto:
    if not path.exists():
        raise ModelLoadError(f"{label}: model file does not exist")
    if not path.is_file():
        raise ModelLoadError(f"{label}: not a regular file")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{label}: empty file, not a valid ONNX model")
    try:
        model = onnx.load(str(path))
    except DecodeError as exc:
        raise ModelLoadError(
            f"{label}: not a valid ONNX model (truncated or corrupt protobuf: {exc})"
        ) from exc
    except OSError as exc:
        raise ModelLoadError(f"{label}: cannot be read ({exc})") from exc
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise ModelLoadError(f"{label}: not a valid ONNX model (checker: {first})") from exc
    return model


def _fix_batch(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    """A copy whose single input has static dims (symbolic leading dim -> 1)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        names = [i.name for i in inputs]
        raise ModelLoadError(f"{label}: needs exactly one (non-initializer) input, has {names}")
    vi = inputs[0]
    ttype = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not ttype.HasField("shape"):
        raise ModelLoadError(f"{label}: input {vi.name!r} has no tensor shape")
    if ttype.elem_type not in _FLOAT_INPUTS:
        kind = onnx.TensorProto.DataType.Name(ttype.elem_type)
        raise ModelLoadError(f"{label}: input {vi.name!r} has type {kind}; it must be float")
    for axis, dim in enumerate(ttype.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            continue
        if axis != 0:
            what = dim.dim_param or "unknown"
            raise ModelLoadError(
                f"{label}: input {vi.name!r} has dynamic dimension {what!r} at axis {axis}; "
                "only a leading batch dimension can be fixed (to 1)"
            )
        dim.Clear()
        dim.dim_value = 1
    del model.graph.value_info[:]
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    return model


def _inferred_shapes(model: onnx.ModelProto, label: str) -> dict[str, tuple[int, ...]]:
    """Static shapes that ONNX shape inference derives (batch fixed to 1)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except onnx.shape_inference.InferenceError as exc:
        raise ModelLoadError(f"{label}: ONNX shape inference failed: {exc}") from exc
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape"):
            if all(d.HasField("dim_value") for d in t.shape.dim):
                shapes[vi.name] = tuple(int(d.dim_value) for d in t.shape.dim)
    return shapes


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        out[a.name] = value
    return out


def _opset(model: onnx.ModelProto, label: str) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ModelLoadError(f"{label}: the model imports no default-domain opset")


class _Walker:
    """Converts the nodes of one model in order into a :class:`GraphBuilder`."""

    def __init__(
        self, model: onnx.ModelProto, label: str, inferred: Mapping[str, tuple[int, ...]]
    ) -> None:
        g = model.graph
        names = {v.name for v in g.input} | {v.name for v in g.output}
        names |= {i.name for i in g.initializer} | {o for n in g.node for o in n.output}
        self.model = model
        self.label = label
        self.inferred = inferred
        self.opset = _opset(model, label)
        self.b = GraphBuilder(label, reserved=names)
        self.ctx = ConvertContext(self.b, label, self.opset, SUPPORTED_ONNX_OPS)
        self.consumed = {i for n in g.node for i in n.input} | {o.name for o in g.output}

    def run(self) -> Graph:
        g = self.model.graph
        for init in g.initializer:
            self.ctx.bind(
                init.name, self.b.add_constant(numpy_helper.to_array(init), name=init.name)
            )
        for vi in g.input:
            if not self.ctx.is_bound(vi.name):
                dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
                self.ctx.bind(vi.name, self.b.add_input(vi.name, dims))
        for node in g.node:
            self._convert(node)
        return self._finish()

    def _convert(self, node: onnx.NodeProto) -> None:
        ctx = self.ctx
        for name in node.input:
            if name and not ctx.is_bound(name):
                raise ctx.error(node, f"reads {name!r}, which is not defined before it")
        if node.domain not in ("", "ai.onnx"):
            raise ctx.unsupported(node, f"op domain {node.domain!r} (only the default ONNX domain)")
        if all(ctx.is_constant(ctx.value(i)) for i in node.input if i):
            self._fold(node)
            return
        conv = CONVERTERS.get(node.op_type)
        if conv is None:
            raise ctx.unsupported(
                node, "the op is not supported on values that depend on the input"
            )
        attrs = _attrs(node)
        extra = sorted(set(attrs) - conv.attrs)
        if extra:
            raise ctx.unsupported(node, f"attribute(s) {extra} not supported")
        try:
            conv.fn(ctx, node, attrs)
        except ModelLoadError:
            raise
        except (RuntimeError, ValueError) as exc:
            raise ctx.error(node, f"cannot be converted ({type(exc).__name__}: {exc})") from exc
        self._check_outputs(node)

    def _fold(self, node: onnx.NodeProto) -> None:
        feeds = {i: self.b.constant(self.ctx.value(i)) for i in node.input if i}
        try:
            values = fold_node(node, feeds, self.opset)
        except FOLD_ERRORS as exc:
            reason = f"cannot evaluate it on constant inputs ({type(exc).__name__}: {exc})"
            raise self.ctx.unsupported(node, reason) from exc
        for name, value in zip(node.output, values, strict=True):
            if name and value is not None:
                self.ctx.bind(name, self.b.add_constant(value, name=name))

    def _check_outputs(self, node: onnx.NodeProto) -> None:
        for k, name in enumerate(node.output):
            if not name:
                continue
            if not self.ctx.is_bound(name):
                if name in self.consumed:
                    raise self.ctx.unsupported(node, f"output {k} ({name!r}) is not supported")
                continue
            self._cross_check(node, name)

    def _cross_check(self, node: onnx.NodeProto, name: str) -> None:
        """Compare our shape of ``name`` with ONNX shape inference.

        A rank mismatch is an error. Dimensions may legitimately differ where
        shape inference and onnxruntime disagree (onnxruntime drops a ceil-mode
        pooling window that would start in the end padding; we follow
        onnxruntime), so those are only logged.
        """
        ours = self.ctx.value(name)
        expected = self.inferred.get(name)
        if expected is None or self.b.is_constant(ours) or self.b.shape(ours) == expected:
            return
        msg = (
            f"converted output {name!r} has shape {list(self.b.shape(ours))}, "
            f"ONNX shape inference says {list(expected)}"
        )
        if len(self.b.shape(ours)) != len(expected):
            raise self.ctx.error(node, msg)
        logger.warning("%s: node %r (%s): %s", self.label, node.name, node.op_type, msg)

    def _finish(self) -> Graph:
        outputs: list[str] = []
        renamed: dict[str, str] = {}
        for vi in self.model.graph.output:
            ours = renamed.get(self.ctx.value(vi.name), self.ctx.value(vi.name))
            if ours != vi.name and ours not in outputs:
                if any(n.name == ours for n in self.b.nodes):
                    self.b.rename(ours, vi.name)
                    renamed[ours] = ours = vi.name
                elif any(i.name == ours for i in self.b.inputs):
                    shape = {"shape": self.b.shape(ours)}
                    ours = self.b.add_node("Reshape", [ours], shape, name=vi.name)
            outputs.append(ours)
        if not outputs:
            raise ModelLoadError(f"{self.label}: the model has no outputs")
        try:
            return self.b.build(outputs)
        except GraphError as exc:
            raise ModelLoadError(f"{self.label}: inconsistent converted graph ({exc})") from exc
