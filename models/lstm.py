"""The ONNX LSTM op, unrolled over its (static) sequence into primitive nodes.

Per direction: one ``Linear`` projects the whole input sequence (``X W^T + Wb +
Rb``); each step then takes its row with ``Gather``, adds ``Linear(h, R^T)``,
slices the gates (ONNX order i, o, f, c), applies Sigmoid/Tanh, and updates
``c = f*c + i*g`` and ``h = o*tanh(c)`` with ``Mul`` of two perturbed values.
Peepholes (``P``) are supported; ``sequence_lens`` must be absent or full,
activations must be the defaults (Sigmoid, Tanh, Tanh) and ``clip`` absent.
Outputs that nothing reads are removed later by dead-node elimination.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from .onnx_context import Attrs, ConvertContext, Converter

_DEFAULT_ACTS = ("sigmoid", "tanh", "tanh")


@dataclass
class _State:
    """The running ``h``/``c`` of one direction (None: zero initial state)."""

    h: str | None
    c: str | None


def _check(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs, steps: int, dirs: int) -> None:
    acts = tuple(a.lower() for a in attrs.get("activations", _DEFAULT_ACTS * dirs))
    if acts != _DEFAULT_ACTS * dirs:
        raise ctx.unsupported(node, f"activations {list(acts)} (only Sigmoid, Tanh, Tanh)")
    for key in ("clip", "activation_alpha", "activation_beta"):
        if key in attrs:
            raise ctx.unsupported(node, f"attribute {key!r}")
    if int(attrs.get("input_forget", 0)):
        raise ctx.unsupported(node, "input_forget=1")
    if ctx.input(node, 4) is not None:
        lens = ctx.const(node, 4)
        if lens is None or np.any(lens != steps):
            raise ctx.unsupported(node, "sequence_lens other than the full sequence length")


def _initial(
    ctx: ConvertContext, node: onnx.NodeProto, index: int, d: int, layout: int
) -> str | None:
    """Initial h or c of direction ``d`` as ``[N, H]`` (None when absent)."""
    name = ctx.input(node, index)
    if name is None:
        return None
    axis = 1 if layout else 0
    if ctx.is_constant(name):
        return ctx.constant(node, np.take(ctx.b.constant(name), d, axis=axis), f"init{index}_{d}")
    idx = ctx.constant(node, np.array(d, dtype=np.int64), f"dir{d}")
    return ctx.emit(node, "Gather", [name, idx], {"axis": axis}, tag=f"init{index}_{d}")


def _step(
    ctx: ConvertContext,
    node: onnx.NodeProto,
    proj: str,
    t: int,
    weights: dict[str, str | None],
    state: _State,
    hidden: int,
) -> _State:
    """One LSTM time step of one direction; returns the new state."""
    tag = f"{weights['tag']}t{t}"
    row = ctx.constant(node, np.array(t, dtype=np.int64), f"{tag}/index")
    gates = ctx.emit(node, "Gather", [proj, row], {"axis": 0}, tag=f"{tag}/x")
    if state.h is not None:
        rec = ctx.emit(node, "Linear", [state.h, weights["rt"]], tag=f"{tag}/rec")
        gates = ctx.emit(node, "Add", [gates, rec], tag=f"{tag}/gates")

    def gate(k: int, name: str, peephole: str | None, cell: str | None) -> str:
        spec = {"starts": [k * hidden], "ends": [(k + 1) * hidden], "axes": [1], "steps": [1]}
        pre = ctx.emit(node, "Slice", [gates], spec, tag=f"{tag}/{name}_pre")
        if peephole is not None and cell is not None:
            peep = ctx.emit(node, "Mul", [cell, peephole], tag=f"{tag}/{name}_peep")
            pre = ctx.emit(node, "Add", [pre, peep], tag=f"{tag}/{name}_sum")
        act = "Tanh" if name == "g" else "Sigmoid"
        return ctx.emit(node, act, [pre], tag=f"{tag}/{name}")

    i = gate(0, "i", weights["pi"], state.c)
    f = gate(2, "f", weights["pf"], state.c)
    g = gate(3, "g", None, None)
    c = ctx.emit(node, "Mul", [i, g], tag=f"{tag}/ig")
    if state.c is not None:
        kept = ctx.emit(node, "Mul", [f, state.c], tag=f"{tag}/fc")
        c = ctx.emit(node, "Add", [kept, c], tag=f"{tag}/c")
    o = gate(1, "o", weights["po"], c)
    tanh_c = ctx.emit(node, "Tanh", [c], tag=f"{tag}/tanh_c")
    h = ctx.emit(node, "Mul", [o, tanh_c], tag=f"{tag}/h")
    return _State(h, c)


def _direction_weights(
    ctx: ConvertContext, node: onnx.NodeProto, d: int, hidden: int
) -> tuple[str, str, dict[str, str | None]]:
    """Constants of direction ``d``: W^T, bias (or ""), and R^T / peepholes."""
    w = ctx.require_const(node, 1, "W")[d]
    r = ctx.require_const(node, 2, "R")[d]
    wt = ctx.constant(node, np.ascontiguousarray(w.T), f"d{d}/Wt")
    bias = ""
    if ctx.input(node, 3) is not None:
        b = ctx.require_const(node, 3, "B")[d]
        bias = ctx.constant(
            node, b[: 4 * hidden].astype(np.float64) + b[4 * hidden :], f"d{d}/bias"
        )
    weights: dict[str, str | None] = {
        "tag": f"d{d}",
        "rt": ctx.constant(node, np.ascontiguousarray(r.T), f"d{d}/Rt"),
        "pi": None,
        "po": None,
        "pf": None,
    }
    if ctx.input(node, 7) is not None:
        p = ctx.require_const(node, 7, "P")[d]
        for k, key in enumerate(("pi", "po", "pf")):
            weights[key] = ctx.constant(node, p[k * hidden : (k + 1) * hidden], f"d{d}/{key}")
    return wt, bias, weights


def convert_lstm(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Unroll an ONNX LSTM (forward, reverse or bidirectional)."""
    layout = int(attrs.get("layout", 0))
    x = ctx.var(node, 0)
    if layout:
        x = ctx.emit(node, "Transpose", [x], {"perm": (1, 0, 2)}, tag="x_seq")
    steps, batch, _ = ctx.shape(x)
    hidden = int(attrs["hidden_size"])
    direction = attrs.get("direction", "forward")
    reverse = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}.get(direction)
    if reverse is None:
        raise ctx.unsupported(node, f"direction={direction!r}")
    _check(ctx, node, attrs, steps, len(reverse))
    results = []
    for d, rev in enumerate(reverse):
        wt, bias, weights = _direction_weights(ctx, node, d, hidden)
        proj = ctx.emit(node, "Linear", [x, wt] + ([bias] if bias else []), tag=f"d{d}/proj")
        state = _State(_initial(ctx, node, 5, d, layout), _initial(ctx, node, 6, d, layout))
        hs: dict[int, str] = {}
        for t in reversed(range(steps)) if rev else range(steps):
            state = _step(ctx, node, proj, t, weights, state, hidden)
            hs[t] = state.h or ""
        results.append(([hs[t] for t in range(steps)], state))
    _emit_outputs(ctx, node, results, (steps, batch, hidden), layout)


def _emit_outputs(
    ctx: ConvertContext,
    node: onnx.NodeProto,
    results: list[tuple[list[str], _State]],
    dims: tuple[int, int, int],
    layout: int,
) -> None:
    steps, batch, hidden = dims
    outs = list(node.output) + [""] * (3 - len(node.output))
    if outs[0]:
        per_dir = []
        for d, (hs, _) in enumerate(results):
            rows = [
                ctx.reshape(node, h, (1, 1, batch, hidden), f"d{d}/y{t}") for t, h in enumerate(hs)
            ]
            per_dir.append(_concat(ctx, node, rows, 0, f"d{d}/Y"))
        y = _concat(ctx, node, per_dir, 1, "Y")
        _bind(ctx, node, 0, y, (2, 0, 1, 3) if layout else None)
    for k, attr in ((1, "h"), (2, "c")):
        if outs[k]:
            finals = [
                ctx.reshape(node, getattr(s, attr), (1, batch, hidden), f"d{d}/{attr}_last")
                for d, (_, s) in enumerate(results)
            ]
            _bind(
                ctx,
                node,
                k,
                _concat(ctx, node, finals, 0, f"Y_{attr}"),
                (1, 0, 2) if layout else None,
            )


def _concat(
    ctx: ConvertContext, node: onnx.NodeProto, parts: list[str], axis: int, tag: str
) -> str:
    if len(parts) == 1:
        return parts[0]
    return ctx.emit(node, "Concat", parts, {"axis": axis}, tag=tag)


def _bind(
    ctx: ConvertContext, node: onnx.NodeProto, k: int, value: str, perm: tuple[int, ...] | None
) -> None:
    if perm is not None:
        value = ctx.emit(node, "Transpose", [value], {"perm": perm}, tag=f"out{k}")
    ctx.bind(node.output[k], value)


LSTM_CONVERTERS: dict[str, Converter] = {
    "LSTM": Converter(
        convert_lstm,
        frozenset(
            {
                "activation_alpha",
                "activation_beta",
                "activations",
                "clip",
                "direction",
                "hidden_size",
                "input_forget",
                "layout",
            }
        ),
    ),
}
