"""Small helpers shared by the graph rewrite passes (``models.passes``)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from .graph import Graph, Node, ValueInfo


def const_value(graph: Graph, name: str) -> np.ndarray | None:
    """The constant ``name`` (None when it is not a constant)."""
    return graph.constants.get(name)


def const_scalar(graph: Graph, name: str) -> float | None:
    """The value of a one-element float constant (None otherwise)."""
    c = graph.constants.get(name)
    if c is None or c.size != 1 or c.dtype.kind != "f":
        return None
    return float(c.reshape(-1)[0])


def close(value: float | None, target: float, rtol: float = 1e-5) -> bool:
    """``value`` is within ``rtol`` (relative) of ``target``."""
    return value is not None and abs(value - target) <= rtol * abs(target)


class Rewriter:
    """Collects node replacements/removals on one graph and applies them at once.

    A node may take part in at most one rewrite per sweep (``claim``); the pass
    loops until no rewrite applies.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.consumers = graph.consumers()
        self.outputs = {o.name for o in graph.outputs}
        self.replace: dict[str, Node | None] = {}
        self.rewire: dict[str, str] = {}
        self.constants: dict[str, np.ndarray] = {}
        self._names = set(graph.constants) | {n.name for n in graph.nodes}
        self._names |= {i.name for i in graph.inputs}

    def node(self, name: str) -> Node | None:
        """The node producing ``name`` (None for inputs and constants)."""
        return self.graph.node(name) if self.graph.has_node(name) else None

    def sole_consumer(self, name: str) -> Node | None:
        """The only reader of ``name`` when it has exactly one and is not an output."""
        readers = self.consumers.get(name, [])
        if len(readers) != 1 or name in self.outputs:
            return None
        return readers[0]

    def private(self, *names: str) -> bool:
        """Every value in ``names`` is read once and is not a graph output."""
        return all(self.sole_consumer(n) is not None for n in names)

    def free(self, *names: str) -> bool:
        """None of the nodes ``names`` is already part of a rewrite in this sweep."""
        return not any(n in self.replace for n in names)

    def claim(self, removed: tuple[str, ...], target: str, new: Node) -> None:
        """Remove the nodes ``removed`` and replace node ``target`` by ``new``."""
        for name in removed:
            self.replace[name] = None
        self.replace[target] = new

    def bypass(self, name: str, source: str) -> None:
        """Drop node ``name`` and make its readers read ``source`` instead."""
        self.replace[name] = None
        self.rewire[name] = source

    def fresh_name(self, base: str) -> str:
        """A value name derived from ``base`` that the graph does not use yet."""
        for k in itertools.count(1):
            name = f"{base}:{k}"
            if name not in self._names:
                self._names.add(name)
                return name
        raise AssertionError("unreachable")

    def add_constant(self, base: str, value: np.ndarray) -> str:
        """A new constant with a fresh name derived from ``base``."""
        name = self.fresh_name(base)
        self.constants[name] = value
        return name

    @property
    def changed(self) -> bool:
        return bool(self.replace)

    def apply(self) -> Graph:
        """The rewritten graph (unused constants dropped, validated)."""
        nodes: list[Node] = []
        for n in self.graph.nodes:
            new = self.replace.get(n.name, n)
            if new is None:
                continue
            if self.rewire:
                inputs = tuple(_follow(self.rewire, i) for i in new.inputs)
                new = Node(new.name, new.op, inputs, new.attrs, new.shape)
            nodes.append(new)
        outputs = tuple(
            ValueInfo(_follow(self.rewire, o.name), o.shape) for o in self.graph.outputs
        )
        consts = {**self.graph.constants, **self.constants}
        used = {i for n in nodes for i in n.inputs} | {o.name for o in outputs}
        consts = {k: v for k, v in consts.items() if k in used}
        return self.graph.replace(nodes=tuple(nodes), outputs=outputs, constants=consts)


def _follow(rewire: Mapping[str, str], name: str) -> str:
    while name in rewire:
        name = rewire[name]
    return name
