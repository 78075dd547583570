"""Registry-driven soundness: every op declaration, every method, sampled boxes.

Each :class:`OpExample` of each registered op becomes a one-node graph (and,
for elementwise ops, a Linear -> op -> Linear sandwich so intermediate bounds
are exercised); random boxes are bounded by IBP, CROWN and alpha-CROWN and
10^4 samples per box must lie inside. A new op is covered by adding its
declaration: no test code changes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bounds import AlphaConfig, BoundGraph, compute_bounds
from bounds.decompose import decompose
from bounds.ops import REGISTRY, OpExample
from models.evaluate import evaluate
from models.graph import Graph, Node, ValueInfo, freeze_attrs

TOL = 1e-6
N_SAMPLES = 10_000
METHODS = ("ibp", "crown", "alpha-crown")


def _numel(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else 1


def _single_op_graph(op: str, ex: OpExample) -> Graph:
    """Input x = [1, N] sliced and reshaped into every perturbed slot."""
    slots = [s for s in ex.inputs if not isinstance(s, np.ndarray)]
    total = sum(_numel(s) for s in slots)
    nodes: list[Node] = []
    consts: dict[str, np.ndarray] = {}
    names: list[str] = []
    off = 0
    for k, spec in enumerate(ex.inputs):
        if isinstance(spec, np.ndarray):
            consts[f"c{k}"] = spec
            names.append(f"c{k}")
            continue
        n = _numel(spec)
        nodes.append(
            Node(
                f"s{k}",
                "Slice",
                ("x",),
                freeze_attrs({"starts": (off,), "ends": (off + n,), "axes": (1,), "steps": (1,)}),
                (1, n),
            )
        )
        nodes.append(Node(f"r{k}", "Reshape", (f"s{k}",), freeze_attrs({"shape": spec}), spec))
        names.append(f"r{k}")
        off += n
    out_shape = _infer_shape(op, ex, tuple(nodes), consts, total, names)
    nodes.append(Node("y", op, tuple(names), freeze_attrs(ex.attrs), out_shape))
    return Graph(
        (ValueInfo("x", (1, total)),), (ValueInfo("y", out_shape),), tuple(nodes), consts
    ).validate()


def _infer_shape(op, ex, nodes, consts, total, names) -> tuple[int, ...]:
    g = Graph(
        (ValueInfo("x", (1, total)),),
        (ValueInfo("y", ()),),
        nodes + (Node("y", op, tuple(names), freeze_attrs(ex.attrs), ()),),
        consts,
    )
    y = evaluate(g, torch.zeros(1, 1, total, dtype=torch.float64) + 0.5, output="y")
    return tuple(y.shape[1:])


def _sandwich(
    g: Graph, rng: np.random.Generator, positive_boxes: list[tuple[np.ndarray, ...]] | None = None
) -> Graph:
    """x -> Linear -> (original graph body) -> Linear: exercises intermediate bounds.

    With ``positive_boxes`` (domain-restricted ops such as Log, Reciprocal, Sqrt) the
    first layer gets a bias that puts its output at >= 0.05 on every one of those
    boxes: its weights keep mixed signs, and the bias is computed from the exact range
    of a linear map on a box, so every sample and every bound stays inside the domain.
    """
    n = g.inputs[0].shape[1]
    w1 = rng.standard_normal((n, n)) / np.sqrt(n)
    out = g.outputs[0]
    m = _numel(out.shape)
    w2 = rng.standard_normal((m, 3))
    pre_inputs: tuple[str, ...] = ("x0", "w1")
    consts = dict(g.constants, w1=w1, w2=w2)
    if positive_boxes is not None:
        pre_lower = np.min(
            [lo @ np.maximum(w1, 0) + hi @ np.minimum(w1, 0) for lo, hi in positive_boxes], axis=0
        )
        consts["b1"] = (0.05 - pre_lower).reshape(n)
        pre_inputs += ("b1",)
    nodes = [Node("pre", "Linear", pre_inputs, freeze_attrs({}), (1, n))]
    nodes += [
        Node(nd.name, nd.op, tuple("pre" if i == "x" else i for i in nd.inputs), nd.attrs, nd.shape)
        for nd in g.nodes
    ]
    nodes.append(Node("flat", "Reshape", (out.name,), freeze_attrs({"shape": (1, m)}), (1, m)))
    nodes.append(Node("z", "Linear", ("flat", "w2"), freeze_attrs({}), (1, 3)))
    return Graph(
        (ValueInfo("x0", (1, n)),), (ValueInfo("z", (1, 3)),), tuple(nodes), consts
    ).validate()


def _boxes(rng: np.random.Generator, n: int, positive: bool) -> list[tuple[np.ndarray, ...]]:
    out = []
    for width in (1e-4, 0.3, 2.0, 8.0):
        c = rng.uniform(-3, 3, size=(1, n))
        r = rng.uniform(0, width, size=(1, n))
        lo, hi = c - r, c + r
        if positive:
            lo, hi = np.abs(lo) + 0.05, np.abs(lo) + 0.05 + 2 * r
        out.append((lo, hi))
    return out


def _check(g: Graph, boxes: list[tuple[np.ndarray, np.ndarray]], method: str) -> None:
    """Bound all boxes in one batched call (one domain each) and sample every box."""
    bg = BoundGraph(g)
    shape = bg.input_shape
    l_t = torch.tensor(np.stack([lo.reshape(shape) for lo, _ in boxes]), dtype=torch.float64)
    u_t = torch.tensor(np.stack([hi.reshape(shape) for _, hi in boxes]), dtype=torch.float64)
    res = compute_bounds(bg, l_t, u_t, method=method, alpha=AlphaConfig(iterations=5))
    assert res.upper is not None
    for k in range(len(boxes)):
        t = torch.rand((N_SAMPLES,) + shape, dtype=torch.float64)
        xs = l_t[k] + (u_t[k] - l_t[k]) * t
        xs[0], xs[1] = l_t[k], u_t[k]
        ys = evaluate(g, xs).reshape(N_SAMPLES, -1)
        lo_gap = float((res.lower[k] - ys).max())
        hi_gap = float((ys - res.upper[k]).max())
        assert lo_gap <= TOL, f"box {k}: lower bound above a sample by {lo_gap}"
        assert hi_gap <= TOL, f"box {k}: upper bound below a sample by {hi_gap}"


CASES = [(op.name, i, ex) for op in REGISTRY for i, ex in enumerate(op.examples)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("op", "idx", "ex"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_single_op_bounds_contain_samples(op: str, idx: int, ex: OpExample, method: str) -> None:
    rng = np.random.default_rng(idx)
    g = _single_op_graph(op, ex)
    n = g.inputs[0].shape[1]
    _check(g, _boxes(rng, n, ex.positive_inputs), method)


UNARY = [
    (op, i, ex)
    for op, i, ex in CASES
    if REGISTRY.get(op).kind in ("unary", "composite") or op in ("Mul", "MatMul")
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("op", "idx", "ex"), UNARY, ids=[f"{c[0]}-{c[1]}" for c in UNARY])
def test_sandwiched_op_bounds_contain_samples(op: str, idx: int, ex: OpExample, method: str):
    rng = np.random.default_rng(100 + idx)
    single = _single_op_graph(op, ex)
    n = single.inputs[0].shape[1]
    if ex.positive_inputs:  # domain-restricted op: the first layer's bias keeps it in its domain
        boxes = _boxes(rng, n, False)
        g = _sandwich(single, rng, positive_boxes=boxes)
    else:
        g = _sandwich(single, rng)
        boxes = _boxes(rng, n, False)
    _check(g, boxes, method)


@pytest.mark.parametrize(("op", "idx", "ex"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_decomposition_is_exact(op: str, idx: int, ex: OpExample) -> None:
    g = _single_op_graph(op, ex)
    d = decompose(g)
    x = torch.randn((16,) + g.inputs[0].shape, dtype=torch.float64)
    if ex.positive_inputs:
        x = x.abs() + 0.1
    torch.testing.assert_close(evaluate(d, x), evaluate(g, x), rtol=1e-12, atol=1e-12)


def test_every_registered_op_has_an_example() -> None:
    missing = [op.name for op in REGISTRY if not op.examples]
    assert not missing, f"ops without a soundness example: {missing}"


HAND_WRITTEN = [
    (d.name, i, ex)
    for d in sorted(REGISTRY, key=lambda d: d.name)
    if d.backward is not None
    for i, ex in enumerate(d.examples)
    # Mul of two perturbed operands is a product, not an affine step
    if sum(not isinstance(x, np.ndarray) for x in ex.inputs) == 1 or d.name != "Mul"
]


@pytest.mark.parametrize(("op", "idx", "ex"), HAND_WRITTEN, ids=lambda v: str(v))
def test_hand_written_backward_equals_the_derived_step(op: str, idx: int, ex: OpExample):
    """A hand-written backward step (``OpDef.backward``) equals the vjp-derived one."""
    from bounds.crown import _affine_step

    bg = BoundGraph(_single_op_graph(op, ex))
    info = bg.infos["y"]
    assert info.kind == "affine" and info.opdef.backward is not None
    gen = torch.Generator().manual_seed(idx)
    a = torch.randn((3, 2) + info.node.shape, generator=gen, dtype=torch.float64)
    fast, fast_bias = _affine_step(bg, info, a)
    out0, vjp_fn = bg.linearization(info.node, a)
    derived = torch.func.vmap(vjp_fn)(a.reshape((6, 1) + info.node.shape))
    assert len(fast) == len(derived) == len(info.perturbed_slots)
    for f, d in zip(fast, derived):
        torch.testing.assert_close(f, d.reshape(f.shape), rtol=0, atol=1e-12)
    bias = a.new_zeros(3, 2) if out0 is None else (a * out0).flatten(2).sum(-1)
    torch.testing.assert_close(fast_bias, bias, rtol=0, atol=1e-12)
