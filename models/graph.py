"""Our own immutable computation graph (the IR every other package works on).

Conventions, stated once:

* Every value has a static shape equal to its ONNX shape with symbolic batch
  dimensions fixed to 1. ``Node.shape`` is that shape.
* At run time tensors carry extra *leading* batch dimensions in front of that
  shape (``[B, *node.shape]``). Op semantics are defined per sample and batched
  with ``torch.func.vmap`` where needed, so ops that move ONNX axis 0 (for
  example ``Transpose(perm=[1, 0])``) stay correct.
* Nodes are in topological order and each node has exactly one output, named
  after the ONNX output it comes from. Multi-output ONNX ops (Split, LSTM) are
  rewritten into single-output nodes at import.
* Constants (initializers, folded subgraphs) live in ``Graph.constants`` and are
  referenced from ``Node.inputs`` by name, like values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np


class GraphError(ValueError):
    """A graph is malformed (dangling input, duplicate name, shape mismatch)."""


def freeze_attrs(attrs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Return a read-only copy of an attribute mapping (lists become tuples)."""

    def _freeze(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(_freeze(x) for x in v)
        return v

    return MappingProxyType({k: _freeze(v) for k, v in (attrs or {}).items()})


@dataclass(frozen=True, slots=True)
class Node:
    """One operation with a single output.

    Attributes:
        name: the output name (unique in the graph; stable across passes).
        op: canonical op type (see ``models.ops.SUPPORTED_OPS``).
        inputs: names of graph inputs, constants or earlier nodes.
        attrs: read-only attributes, already typed (ints, floats, tuples).
        shape: static output shape (ONNX shape, batch fixed to 1).
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    shape: tuple[int, ...] = ()

    def attr(self, key: str, default: Any = None) -> Any:
        """Attribute ``key`` or ``default``."""
        return self.attrs.get(key, default)


@dataclass(frozen=True, slots=True)
class ValueInfo:
    """A graph input or output: name and static shape."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Graph:
    """An immutable, topologically ordered computation graph.

    Attributes:
        inputs: the perturbed inputs (usually exactly one).
        outputs: the outputs, each the name of a node, input or constant.
        nodes: single-output nodes in topological order.
        constants: name -> numpy array (float32/float64/int64/bool).
        name: a label (file name) used in messages.
    """

    inputs: tuple[ValueInfo, ...]
    outputs: tuple[ValueInfo, ...]
    nodes: tuple[Node, ...]
    constants: Mapping[str, np.ndarray]
    name: str = "graph"

    def __post_init__(self) -> None:
        object.__setattr__(self, "constants", MappingProxyType(dict(self.constants)))
        object.__setattr__(self, "_by_name", {n.name: n for n in self.nodes})

    # ------------------------------------------------------------------ lookup
    def node(self, name: str) -> Node:
        """The node producing ``name`` (KeyError if it is an input or constant)."""
        return self._by_name[name]  # type: ignore[attr-defined]

    def has_node(self, name: str) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    def is_input(self, name: str) -> bool:
        return any(i.name == name for i in self.inputs)

    def shape_of(self, name: str) -> tuple[int, ...]:
        """Static shape of any value in the graph."""
        if name in self.constants:
            return tuple(self.constants[name].shape)
        for i in self.inputs:
            if i.name == name:
                return i.shape
        return self.node(name).shape

    def consumers(self) -> dict[str, list[Node]]:
        """Map from value name to the nodes that read it."""
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                out.setdefault(i, []).append(n)
        return out

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return dict(sorted(counts.items()))

    # -------------------------------------------------------------- validation
    def validate(self) -> Graph:
        """Check names resolve, are unique and topologically ordered; return self."""
        known: set[str] = set(self.constants) | {i.name for i in self.inputs}
        for n in self.nodes:
            if n.name in known:
                raise GraphError(f"{self.name}: duplicate value name {n.name!r} ({n.op})")
            for i in n.inputs:
                if i and i not in known:
                    raise GraphError(
                        f"{self.name}: node {n.name!r} ({n.op}) reads {i!r}, "
                        "which is not defined before it"
                    )
            if any(d < 0 for d in n.shape):
                raise GraphError(f"{self.name}: node {n.name!r} has unresolved shape {n.shape}")
            known.add(n.name)
        for o in self.outputs:
            if o.name not in known:
                raise GraphError(f"{self.name}: output {o.name!r} is not produced by the graph")
        return self

    def replace(self, **changes: Any) -> Graph:
        """A copy with some fields changed (validated)."""
        fields = {
            "inputs": self.inputs,
            "outputs": self.outputs,
            "nodes": self.nodes,
            "constants": self.constants,
            "name": self.name,
        }
        fields.update(changes)
        return Graph(**fields).validate()
