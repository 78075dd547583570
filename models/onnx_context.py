"""What an ONNX-op converter sees: value lookup, constants, node emission, errors.

A converter turns one ONNX node whose inputs are not all constant into
canonical nodes (``models.ops``) and binds the ONNX outputs it produces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from .builder import GraphBuilder
from .errors import ModelLoadError, UnsupportedOpError

Attrs = dict[str, Any]


@dataclass(frozen=True)
class Converter:
    """One ONNX op's converter and the attributes it understands.

    Attributes:
        fn: ``fn(ctx, node, attrs)``; emits nodes and binds the node's outputs.
        attrs: attribute names accepted (anything else is an unsupported attribute).
    """

    fn: Callable[[ConvertContext, onnx.NodeProto, Attrs], None]
    attrs: frozenset[str] = frozenset()


def node_label(node: onnx.NodeProto) -> str:
    """The node's name, or its first output when it has no name."""
    return node.name or (node.output[0] if node.output else node.op_type)


class ConvertContext:
    """Conversion state shared by the converters of one model.

    Args:
        builder: receives canonical nodes and constants.
        path: the model file (for messages).
        opset: the default-domain opset version of the model.
        supported: names of the ONNX ops with a converter (listed in errors).
    """

    def __init__(
        self, builder: GraphBuilder, path: str, opset: int, supported: Sequence[str]
    ) -> None:
        self.b = builder
        self.path = path
        self.opset = opset
        self.supported = tuple(supported)
        self._env: dict[str, str] = {}

    # --------------------------------------------------------------- errors
    def unsupported(self, node: onnx.NodeProto, reason: str) -> UnsupportedOpError:
        """The error to raise for an unsupported feature of ``node``."""
        return UnsupportedOpError(self.path, node_label(node), node.op_type, reason, self.supported)

    def error(self, node: onnx.NodeProto, reason: str) -> ModelLoadError:
        """A load error about ``node`` that is not about support (invalid model)."""
        return ModelLoadError(f"{self.path}: node {node_label(node)!r} ({node.op_type}): {reason}")

    # --------------------------------------------------------------- values
    def bind(self, onnx_name: str, value: str) -> None:
        """ONNX value ``onnx_name`` is our value ``value``."""
        self._env[onnx_name] = value

    def is_bound(self, onnx_name: str) -> bool:
        """The ONNX value ``onnx_name`` has been defined (bound to one of ours)."""
        return onnx_name in self._env

    def value(self, onnx_name: str) -> str:
        """Our name of an ONNX value (it must already be defined)."""
        return self._env[onnx_name]

    def input(self, node: onnx.NodeProto, i: int) -> str | None:
        """Our name of input ``i`` of ``node`` (None when absent or empty)."""
        if i >= len(node.input) or not node.input[i]:
            return None
        return self._env[node.input[i]]

    def const(self, node: onnx.NodeProto, i: int) -> np.ndarray | None:
        """The constant value of input ``i`` (None when absent, empty or variable)."""
        name = self.input(node, i)
        if name is None or not self.b.is_constant(name):
            return None
        return self.b.constant(name)

    def require_const(self, node: onnx.NodeProto, i: int, what: str) -> np.ndarray:
        """Input ``i`` as a constant, or an unsupported-op error naming ``what``."""
        value = self.const(node, i)
        if value is None:
            if self.input(node, i) is None:
                raise self.error(node, f"missing required input {what}")
            raise self.unsupported(node, f"{what} (input {i}) must be a constant")
        return value

    def var(self, node: onnx.NodeProto, i: int) -> str:
        """Our name of input ``i``, which must be present."""
        name = self.input(node, i)
        if name is None:
            raise self.error(node, f"missing required input {i}")
        return name

    def shape(self, value: str) -> tuple[int, ...]:
        """Static shape of our value ``value``."""
        return self.b.shape(value)

    def is_constant(self, value: str) -> bool:
        """Our value ``value`` is a constant."""
        return self.b.is_constant(value)

    # ------------------------------------------------------------- emission
    def emit(
        self,
        node: onnx.NodeProto,
        op: str,
        inputs: Sequence[str],
        attrs: Mapping[str, Any] | None = None,
        *,
        output: int | None = None,
        tag: str = "",
    ) -> str:
        """Emit a canonical node; named (and bound) as ONNX output ``output`` if given.

        Intermediate nodes (``output=None``) get fresh names derived from the
        node's first output and ``tag``.
        """
        if output is not None:
            name = node.output[output]
            out = self.b.add_node(op, inputs, attrs, name=name)
            self.bind(name, out)
            return out
        base = f"{node.output[0]}/{tag or op}"
        return self.b.add_node(op, inputs, attrs, base=base)

    def constant(self, node: onnx.NodeProto, value: Any, tag: str) -> str:
        """Add a derived constant named after the node."""
        return self.b.add_constant(value, base=f"{node.output[0]}/{tag}")

    def reshape(self, node: onnx.NodeProto, value: str, shape: Sequence[int], tag: str) -> str:
        """``value`` reshaped to ``shape`` (constants are reshaped in place, no node)."""
        shape = tuple(int(d) for d in shape)
        if self.is_constant(value):
            return self.constant(node, self.b.constant(value).reshape(shape), tag)
        if self.shape(value) == shape:
            return value
        return self.emit(node, "Reshape", [value], {"shape": shape}, tag=tag)

    def align_rank(self, node: onnx.NodeProto, value: str, rank: int) -> str:
        """A variable of lower rank gets leading size-1 axes (IR broadcasting invariant)."""
        shape = self.shape(value)
        if self.is_constant(value) or len(shape) >= rank:
            return value
        return self.reshape(node, value, (1,) * (rank - len(shape)) + shape, "rank")
