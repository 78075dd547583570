"""A graph prepared for bound propagation.

:class:`BoundGraph` decomposes composite ops, classifies every node (affine,
unary nonlinearity, product of perturbed values), finds the nodes whose
intervals relaxations need, and caches constants as tensors per device/dtype.
It holds no per-domain state: bounds, alphas and split data live in the
records that the methods pass around.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from models.evaluate import FORWARD
from models.graph import Graph, Node

from .decompose import decompose, perturbed_names
from .ops import REGISTRY, OpDef, Registry
from .products import matmul_shapes
from .relax import UnaryRelaxation, get_relaxation
from .types import BoundsError


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """How one node enters bound propagation.

    Attributes:
        node: the IR node.
        kind: "affine", "unary" or "product".
        opdef: its registry declaration.
        perturbed_slots: input slots that depend on the network input.
        relaxation: for unary nodes, the relaxation (attributes applied).
    """

    node: Node
    kind: str
    opdef: OpDef
    perturbed_slots: tuple[int, ...]
    relaxation: UnaryRelaxation | None = None


class BoundGraph:
    """A :class:`models.Graph` ready for IBP / CROWN / alpha-CROWN.

    Args:
        graph: the imported graph (one perturbed input, first output is bounded).
        registry: op declarations (default :data:`bounds.ops.REGISTRY`).
    """

    def __init__(self, graph: Graph, *, registry: Registry | None = None) -> None:
        if len(graph.inputs) != 1:
            raise BoundsError(
                f"{graph.name}: bounds need exactly one input, got {len(graph.inputs)}"
            )
        self.registry = registry or REGISTRY
        self.source = graph
        self.graph = decompose(graph)
        self.input_name = self.graph.inputs[0].name
        self.input_shape = self.graph.inputs[0].shape
        self.output_name = self.graph.outputs[0].name
        self.perturbed = perturbed_names(self.graph)
        self.infos: dict[str, NodeInfo] = {}
        for node in self.graph.nodes:
            if node.name in self.perturbed:
                self.infos[node.name] = self._classify(node)
        if self.output_name not in self.perturbed:
            raise BoundsError(f"{graph.name}: output {self.output_name!r} does not depend on input")
        self.order: tuple[str, ...] = tuple(self.infos)
        self.needs_bounds: tuple[str, ...] = self._relaxed_inputs()
        self._const_cache: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}
        self._lin_cache: dict[tuple[str, torch.device, torch.dtype], tuple] = {}

    def _classify(self, node: Node) -> NodeInfo:
        opdef = self.registry.get(node.op, node=node.name)
        slots = tuple(i for i, name in enumerate(node.inputs) if name in self.perturbed)
        kind = opdef.kind
        if opdef.product_when_both_perturbed and len(slots) == 2:
            kind = "product"
        if kind == "composite":
            raise BoundsError(f"node {node.name!r}: composite op {node.op} was not decomposed")
        if kind == "unary":
            if slots != (0,):
                raise BoundsError(f"node {node.name!r} ({node.op}): only input 0 may be perturbed")
            relax = get_relaxation(node.op, node.attrs)
            return NodeInfo(node, kind, opdef, slots, relax)
        if kind == "product" and node.op not in ("Mul", "MatMul"):
            raise BoundsError(f"node {node.name!r}: product op {node.op} was not decomposed")
        if kind == "product" and node.op == "MatMul":
            try:
                matmul_shapes(*(self.shape(name) for name in node.inputs))
            except BoundsError as err:
                raise BoundsError(f"MatMul {node.name!r}: {err}") from err
        return NodeInfo(node, kind, opdef, slots)

    def _relaxed_inputs(self) -> tuple[str, ...]:
        need: set[str] = set()
        for info in self.infos.values():
            if info.kind in ("unary", "product"):
                need.update(info.node.inputs[s] for s in info.perturbed_slots)
        ordered = [self.input_name] if self.input_name in need else []
        ordered += [name for name in self.order if name in need]
        return tuple(ordered)

    # ---------------------------------------------------------------- helpers
    def shape(self, name: str) -> tuple[int, ...]:
        return self.graph.shape_of(name)

    def const(self, name: str, like: Tensor) -> Tensor:
        """Constant ``name`` as a tensor on ``like``'s device (float consts in its dtype)."""
        key = (name, like.device, like.dtype)
        t = self._const_cache.get(key)
        if t is None:
            arr = self.graph.constants[name]
            t = torch.as_tensor(arr, device=like.device)
            if t.is_floating_point():
                t = t.to(like.dtype)
            self._const_cache[key] = t
        return t

    def abs_const(self, name: str, like: Tensor) -> Tensor:
        """``|const(name)|``, cached like :meth:`const` (every interval pass of a weighted
        node needs it)."""
        key = ("|" + name + "|", like.device, like.dtype)
        t = self._const_cache.get(key)
        if t is None:
            t = self.const(name, like).abs()
            self._const_cache[key] = t
        return t

    def forward_node(self, node: Node, values: Sequence[Tensor | None], like: Tensor) -> Tensor:
        """Apply ``node`` to batched perturbed ``values`` (None for constant slots)."""
        args = [
            self.const(name, like) if name in self.graph.constants else values[i]
            for i, name in enumerate(node.inputs)
        ]
        return FORWARD[node.op](node, args)

    def linearization(
        self, node: Node, like: Tensor
    ) -> tuple[Tensor | None, Callable[[Tensor], tuple[Tensor, ...]]]:
        """``(f(0), vjp)`` of an affine node, cached per device/dtype.

        ``f(0)`` is ``[1, *shape]`` (None when identically zero); ``vjp`` maps a
        cotangent ``[1, *shape]`` to one ``[1, *input_shape]`` per perturbed slot.
        Both are exact for any point because the node is affine.
        """
        key = (node.name, like.device, like.dtype)
        hit = self._lin_cache.get(key)
        if hit is None:
            slots = self.infos[node.name].perturbed_slots
            zeros = [like.new_zeros((1,) + self.shape(node.inputs[s])) for s in slots]
            out0, vjp_fn = torch.func.vjp(self.affine_fn(node, like), *zeros)
            out0 = out0.detach()
            hit = (out0 if bool(out0.any()) else None, vjp_fn)
            self._lin_cache[key] = hit
        return hit

    def affine_fn(self, node: Node, like: Tensor) -> Callable[..., Tensor]:
        """``f(*perturbed inputs)`` for an affine node with constants closed over."""
        slots = self.infos[node.name].perturbed_slots

        def fn(*xs: Tensor) -> Tensor:
            vals: list[Tensor | None] = [None] * len(node.inputs)
            for s, x in zip(slots, xs):
                vals[s] = x
            return self.forward_node(node, vals, like)

        return fn


def bound_graph(graph: Graph | BoundGraph) -> BoundGraph:
    """``graph`` prepared for bounding (returned as is when already prepared)."""
    return graph if isinstance(graph, BoundGraph) else BoundGraph(graph)
