"""Pure ``Graph -> Graph`` rewrite passes on the canonical IR.

Every pass keeps the graph's outputs identical up to floating-point rounding
(tests evaluate graphs before and after on random inputs) and returns a
validated graph. Per-op canonicalisation (Sub -> Add, Div -> Mul, Gemm ->
Linear, BatchNormalization -> Mul + Add, ...) happens earlier, in the ONNX
converters; these passes do the rewrites that span several nodes:

* :func:`fold_scale_into_weights`: ``Mul`` by a per-output-channel constant
  after Linear/Conv/ConvTranspose -> scaled weights and bias (BatchNorm folding);
* :func:`fold_bias`: ``Add`` of a per-output-channel constant after
  Linear/Conv/ConvTranspose -> its bias (Gemm/MatMul + Add -> Linear);
* :func:`fold_affine_into_next_linear`: ``Mul``/``Add`` by a constant along the
  last axis read only by Linear nodes -> their weights and biases;
* :func:`fuse_gelu`: Erf- and tanh-based GELU subgraphs -> one ``Gelu`` node;
* :func:`matmul_transposed_to_linear`: ``(C @ x^T)^T`` -> ``Linear(x, C^T)``;
* :func:`sink_transposes`: Transposes moved below constant Add/Mul, merged, cancelled;
* :func:`merge_reshapes`: Reshape of a Reshape -> one Reshape; identity Reshapes removed;
* :func:`remove_identity_ops`: ``Add(x, 0)`` and ``Mul(x, 1)`` removed;
* :func:`eliminate_dead_nodes`: nodes and constants no output depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .gelu_fusion import fuse_gelu
from .graph import Graph, Node
from .rewrite import Rewriter
from .transpose_passes import matmul_transposed_to_linear, sink_transposes

Pass = Callable[[Graph], Graph]

_WEIGHTED = ("Linear", "Conv", "ConvTranspose")

__all__ = [
    "DEFAULT_PASSES",
    "Pass",
    "eliminate_dead_nodes",
    "fold_affine_into_next_linear",
    "fold_bias",
    "fold_scale_into_weights",
    "fuse_gelu",
    "matmul_transposed_to_linear",
    "merge_reshapes",
    "remove_identity_ops",
    "run_passes",
    "sink_transposes",
]


def run_passes(graph: Graph, passes: Sequence[Pass]) -> Graph:
    """Apply ``passes`` in order (each result is validated)."""
    for p in passes:
        graph = p(graph).validate()
    return graph


def _until_fixed(sweep: Callable[[Rewriter], None]) -> Pass:
    """A pass that repeats ``sweep`` until it rewrites nothing."""

    def run(graph: Graph) -> Graph:
        while True:
            rw = Rewriter(graph)
            sweep(rw)
            if not rw.changed:
                return graph
            graph = rw.apply()

    run.__doc__ = sweep.__doc__
    run.__name__ = sweep.__name__.lstrip("_")
    return run


def eliminate_dead_nodes(graph: Graph) -> Graph:
    """Drop nodes and constants that no graph output depends on."""
    needed = {o.name for o in graph.outputs}
    kept: list[Node] = []
    for node in reversed(graph.nodes):
        if node.name in needed:
            kept.append(node)
            needed.update(node.inputs)
    kept.reverse()
    consts = {k: v for k, v in graph.constants.items() if k in needed}
    return graph.replace(nodes=tuple(kept), constants=consts)


def _channel_vector(node: Node, c: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """``c`` as one value per output channel of ``node`` if it broadcasts that way.

    Linear channels are the last axis; Conv/ConvTranspose channels are axis 1.
    Returns None when ``c`` varies along any other axis or changes the shape.
    """
    rank = len(out_shape)
    if c.ndim > rank or c.dtype.kind != "f":
        return None
    full = (1,) * (rank - c.ndim) + tuple(c.shape)
    axis = rank - 1 if node.op == "Linear" else 1
    if axis >= rank or any(d != 1 for i, d in enumerate(full) if i != axis):
        return None
    channels = out_shape[axis]
    if full[axis] not in (1, channels):
        return None
    return np.broadcast_to(c.reshape(-1), (channels,))


def _scaled_weight(node: Node, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Weights of ``node`` with output channel ``k`` multiplied by ``s[k]``."""
    if node.op == "Linear":
        return w * s
    if node.op == "Conv":
        return w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    groups = int(node.attr("group", 1))
    per = w.shape[1]
    grouped = w.reshape(groups, w.shape[0] // groups, per, *w.shape[2:])
    scale = s.reshape(groups, 1, per, *([1] * (w.ndim - 2)))
    return (grouped * scale).reshape(w.shape)


def _weighted_pair(rw: Rewriter, node: Node) -> tuple[Node, np.ndarray] | None:
    """For ``Add``/``Mul(weighted, const)``: the weighted producer and the constant."""
    if node.op not in ("Add", "Mul") or len(node.inputs) != 2:
        return None
    for k in (0, 1):
        prod, other = rw.node(node.inputs[k]), node.inputs[1 - k]
        c = rw.graph.constants.get(other)
        if prod is not None and c is not None and prod.op in _WEIGHTED:
            if rw.sole_consumer(prod.name) is node and prod.shape == node.shape:
                return prod, c
    return None


def _fold_scale(rw: Rewriter) -> None:
    """Fold ``Mul`` by per-channel constants into the preceding Linear/Conv weights."""
    for node in rw.graph.nodes:
        pair = _weighted_pair(rw, node) if node.op == "Mul" else None
        if pair is None or not rw.free(node.name, pair[0].name):
            continue
        prod, c = pair
        s = _channel_vector(prod, c, node.shape)
        if s is None:
            continue
        g = rw.graph
        w = g.constants[prod.inputs[1]]
        scaled = _scaled_weight(prod, w.astype(np.float64), s.astype(np.float64))
        inputs = [prod.inputs[0], rw.add_constant(f"{node.name}.W", scaled)]
        if len(prod.inputs) > 2:
            b = g.constants[prod.inputs[2]]
            inputs.append(rw.add_constant(f"{node.name}.b", b.astype(np.float64) * s))
        new = Node(node.name, prod.op, tuple(inputs), prod.attrs, node.shape)
        rw.claim((prod.name,), node.name, new)


def _fold_bias(rw: Rewriter) -> None:
    """Fold ``Add`` of per-channel constants into the preceding Linear/Conv bias."""
    for node in rw.graph.nodes:
        pair = _weighted_pair(rw, node) if node.op == "Add" else None
        if pair is None or not rw.free(node.name, pair[0].name):
            continue
        prod, c = pair
        s = _channel_vector(prod, c, node.shape)
        if s is None:
            continue
        if len(prod.inputs) > 2:
            b = rw.graph.constants[prod.inputs[2]]
            bias = b.astype(np.float64) + s
        else:
            bias = np.array(s)
        inputs = (prod.inputs[0], prod.inputs[1], rw.add_constant(f"{node.name}.b", bias))
        rw.claim((prod.name,), node.name, Node(node.name, prod.op, inputs, prod.attrs, node.shape))


def _linear_readers(rw: Rewriter, name: str) -> list[Node] | None:
    """The Linear nodes reading ``name`` as input 0, if they are its only readers."""
    readers = rw.consumers.get(name, [])
    if not readers or name in rw.outputs:
        return None
    if any(r.op != "Linear" or r.inputs[0] != name or name in r.inputs[1:] for r in readers):
        return None
    return readers


def _folded_linear(rw: Rewriter, op: str, x: str, c: np.ndarray, lin: Node) -> Node:
    """``lin`` applied to ``op(x, c)`` rewritten as one Linear on ``x``."""
    g = rw.graph
    w = g.constants[lin.inputs[1]]
    inputs = [x]
    if op == "Mul":
        inputs.append(rw.add_constant(f"{lin.name}.W", w.astype(np.float64) * c[:, None]))
        inputs += list(lin.inputs[2:])
    else:
        bias = c.astype(np.float64) @ w.astype(np.float64)
        if len(lin.inputs) > 2:
            bias = bias + g.constants[lin.inputs[2]]
        inputs += [lin.inputs[1], rw.add_constant(f"{lin.name}.b", bias)]
    return Node(lin.name, "Linear", tuple(inputs), lin.attrs, lin.shape)


def _through_reshape(rw: Rewriter, node: Node, var: str) -> tuple[Node, list[Node]] | None:
    """For a scalar Add/Mul read only by a Reshape read only by Linears: both."""
    reshape = rw.sole_consumer(node.name)
    if reshape is None or reshape.op != "Reshape" or not rw.free(reshape.name):
        return None
    readers = _linear_readers(rw, reshape.name)
    return None if readers is None else (reshape, readers)


def _fold_into_next(rw: Rewriter) -> None:
    """Fold ``Mul``/``Add`` by last-axis constants into the Linear nodes that read them.

    A one-element constant may also be folded through a Reshape in between.
    """
    g = rw.graph
    for node in g.nodes:
        if node.op not in ("Mul", "Add") or len(node.inputs) != 2:
            continue
        var = [i for i in node.inputs if i not in g.constants]
        consts = [g.constants[i] for i in node.inputs if i in g.constants]
        if len(var) != 1 or len(consts) != 1 or g.shape_of(var[0]) != node.shape:
            continue
        source, readers, reshape = var[0], _linear_readers(rw, node.name), None
        if readers is None and consts[0].size == 1:
            found = _through_reshape(rw, node, var[0])
            if found is not None:
                reshape, readers = found
        if readers is None or not rw.free(node.name, *(r.name for r in readers)):
            continue
        k = g.constants[readers[0].inputs[1]].shape[0]
        if consts[0].size == 1 and consts[0].dtype.kind == "f":
            c = np.full(k, consts[0].reshape(-1)[0], dtype=consts[0].dtype)
        else:
            c = _channel_vector(Node("", "Linear", ()), consts[0], node.shape)
        if c is None or c.shape[0] != k:
            continue
        if reshape is not None:
            moved = Node(reshape.name, "Reshape", (source,), reshape.attrs, reshape.shape)
            rw.claim((), reshape.name, moved)
            source = reshape.name
        rw.replace[node.name] = None
        for lin in readers:
            rw.claim((), lin.name, _folded_linear(rw, node.op, source, c, lin))


def _merge_reshapes(rw: Rewriter) -> None:
    """Merge Reshape chains and drop Reshapes that do not change the shape."""
    g = rw.graph
    for node in g.nodes:
        if node.op != "Reshape" or not rw.free(node.name):
            continue
        src = node.inputs[0]
        if g.shape_of(src) == node.shape and node.name not in rw.outputs:
            rw.bypass(node.name, src)
            continue
        inner = rw.node(src)
        if inner is not None and inner.op == "Reshape" and rw.private(inner.name):
            if rw.free(inner.name):
                new = Node(node.name, "Reshape", (inner.inputs[0],), node.attrs, node.shape)
                rw.claim((inner.name,), node.name, new)


def _identity_sweep(rw: Rewriter) -> None:
    """Drop ``Add(x, 0)`` and ``Mul(x, 1)`` by constants that do not change the shape."""
    g = rw.graph
    for node in g.nodes:
        if node.op not in ("Add", "Mul") or len(node.inputs) != 2 or node.name in rw.outputs:
            continue
        neutral = 0.0 if node.op == "Add" else 1.0
        for k in (0, 1):
            c = g.constants.get(node.inputs[1 - k])
            x = node.inputs[k]
            if c is None or x in g.constants or g.shape_of(x) != node.shape:
                continue
            if c.dtype.kind == "f" and np.all(c == neutral) and rw.free(node.name):
                rw.bypass(node.name, x)
                break


remove_identity_ops: Pass = _until_fixed(_identity_sweep)
fold_scale_into_weights: Pass = _until_fixed(_fold_scale)
fold_bias: Pass = _until_fixed(_fold_bias)
fold_affine_into_next_linear: Pass = _until_fixed(_fold_into_next)
merge_reshapes: Pass = _until_fixed(_merge_reshapes)

DEFAULT_PASSES: tuple[Pass, ...] = (
    eliminate_dead_nodes,
    remove_identity_ops,
    merge_reshapes,
    fuse_gelu,
    matmul_transposed_to_linear,
    sink_transposes,
    fold_scale_into_weights,
    fold_bias,
    fold_affine_into_next_linear,
    fold_bias,
    merge_reshapes,
    eliminate_dead_nodes,
)
"""The passes ``models.load_onnx`` runs (in this order)."""
