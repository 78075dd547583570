"""Incremental construction of a :class:`models.Graph` with shape tracing.

The builder appends canonical nodes in topological order and computes each
node's static shape by running its ``models.evaluate.FORWARD`` function on a
zero sample (batch of one, float64, CPU), so shapes and evaluation semantics
can never disagree.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .evaluate import FORWARD, c_array
from .graph import Graph, Node, ValueInfo, freeze_attrs

_CONSTANT_SLOTS: dict[str, frozenset[int]] = {
    "Linear": frozenset({1, 2}),
    "Conv": frozenset({1, 2}),
    "ConvTranspose": frozenset({1, 2}),
    "Gather": frozenset({1}),
    "LayerNormalization": frozenset({1, 2}),
}


def _probe_constant(arr: np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(c_array(arr))
    return t.to(torch.float64) if t.is_floating_point() else t


def normalize_constant(arr: Any) -> np.ndarray:
    """A constant as stored in a graph: float32/float64, int64 or bool numpy array."""
    a = np.asarray(arr)
    if a.dtype.kind == "f" and a.dtype not in (np.float32, np.float64):
        return a.astype(np.float32)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    return a if a.flags.writeable else a.copy()


class GraphBuilder:
    """Collects inputs, constants and single-output nodes; traces their shapes.

    Args:
        name: label of the graph (the model file).
        reserved: names that generated names must avoid (all names of the source model).
    """

    def __init__(self, name: str, reserved: Iterable[str] = ()) -> None:
        self.name = name
        self.inputs: list[ValueInfo] = []
        self.nodes: list[Node] = []
        self.constants: dict[str, np.ndarray] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._reserved = set(reserved)
        self._taken: set[str] = set()

    # ----------------------------------------------------------------- names
    def fresh(self, base: str) -> str:
        """A new unique name derived from ``base``."""
        for k in itertools.count(1):
            name = f"{base}:{k}"
            if name not in self._taken and name not in self._reserved:
                return name
        raise AssertionError("unreachable")

    def _claim(self, name: str | None, base: str) -> str:
        if name is None:
            name = self.fresh(base)
        if name in self._taken:
            raise ValueError(f"{self.name}: value name {name!r} is defined twice")
        self._taken.add(name)
        return name

    # ---------------------------------------------------------------- values
    def add_input(self, name: str, shape: Sequence[int]) -> str:
        """Declare a graph input of static per-sample ``shape``."""
        self._claim(name, name)
        self.inputs.append(ValueInfo(name, tuple(int(d) for d in shape)))
        self._shapes[name] = tuple(int(d) for d in shape)
        return name

    def add_constant(self, value: Any, *, name: str | None = None, base: str = "const") -> str:
        """Add a constant (exactly ``name`` when given, else a fresh name from ``base``)."""
        arr = normalize_constant(value)
        name = self._claim(name, base)
        self.constants[name] = arr
        self._shapes[name] = tuple(arr.shape)
        return name

    def add_node(
        self,
        op: str,
        inputs: Sequence[str],
        attrs: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        base: str = "node",
    ) -> str:
        """Append a node; its shape is traced with ``FORWARD[op]`` on a zero sample."""
        frozen = freeze_attrs(dict(attrs or {}))
        if inputs and all(i in self.constants for i in inputs):
            value = self._fold(Node(name or base, op, tuple(inputs), frozen, ()))
            return self.add_constant(value, name=name, base=base)
        probe = Node(self.fresh(base) if name is None else name, op, tuple(inputs), frozen, ())
        args = [
            _probe_constant(self.constants[i])
            if i in self.constants
            else torch.zeros((1, *self._shapes[i]), dtype=torch.float64)
            for i in inputs
        ]
        with torch.no_grad():
            out = FORWARD[op](probe, args)
        if out.dim() == 0 or out.shape[0] != 1:
            raise ValueError(f"{self.name}: node {probe.name!r} ({op}) lost its batch dimension")
        shape = tuple(int(d) for d in out.shape[1:])
        node_name = self._claim(probe.name, base)
        self.nodes.append(Node(node_name, op, tuple(inputs), frozen, shape))
        self._shapes[node_name] = shape
        return node_name

    def _fold(self, node: Node) -> np.ndarray:
        """Evaluate a node whose inputs are all constants (as a batch of one sample).

        Inputs in weight/index slots stay unbatched; the others are rank-aligned
        (leading size-1 axes) and given a batch axis, as the IR invariant requires.
        """
        arrays = [self.constants[i] for i in node.inputs]
        fixed = _CONSTANT_SLOTS.get(node.op, frozenset())
        rank = max(a.ndim for k, a in enumerate(arrays) if k not in fixed)
        args = []
        for k, a in enumerate(arrays):
            t = torch.as_tensor(c_array(a))
            t = t.to(torch.float64) if t.is_floating_point() else t
            if k not in fixed:
                t = t.reshape((1,) * (rank - a.ndim + 1) + tuple(a.shape))
            args.append(t)
        out = FORWARD[node.op](node, args)[0].numpy()
        dtype = next((a.dtype for a in arrays if a.dtype.kind == "f"), out.dtype)
        return out.astype(dtype)

    # --------------------------------------------------------------- queries
    def shape(self, name: str) -> tuple[int, ...]:
        """Static (per-sample) shape of a value."""
        return self._shapes[name]

    def is_constant(self, name: str) -> bool:
        """``name`` is a constant (not an input or node)."""
        return name in self.constants

    def constant(self, name: str) -> np.ndarray:
        """The value of constant ``name``."""
        return self.constants[name]

    # ----------------------------------------------------------------- build
    def build(self, outputs: Sequence[str]) -> Graph:
        """The graph computing ``outputs``; unreachable nodes and constants are dropped."""
        needed = set(outputs)
        kept: list[Node] = []
        for node in reversed(self.nodes):
            if node.name in needed:
                kept.append(node)
                needed.update(node.inputs)
        kept.reverse()
        consts = {k: v for k, v in self.constants.items() if k in needed}
        outs = tuple(ValueInfo(o, self._shapes[o]) for o in outputs)
        return Graph(tuple(self.inputs), outs, tuple(kept), consts, self.name).validate()

    def rename(self, old: str, new: str) -> None:
        """Rename node ``old`` to the unused name ``new`` (consumers follow)."""
        self._claim(new, new)
        self.nodes = [
            Node(
                new if n.name == old else n.name,
                n.op,
                tuple(new if i == old else i for i in n.inputs),
                n.attrs,
                n.shape,
            )
            for n in self.nodes
        ]
        self._shapes[new] = self._shapes[old]
