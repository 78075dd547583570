"""Concrete, batched, differentiable evaluation of a :class:`models.Graph` in torch.

``FORWARD`` maps every canonical op (``models.ops.SUPPORTED_OPS``) to its batched
semantics ``fn(node, inputs) -> Tensor``: values that depend on the graph input
carry one extra leading batch dimension (``[B, *shape]``), constants are passed
as tensors without it. The functions are pure torch, so the bounds engine can
differentiate through them (``torch.func.vjp``) for the linear ops.

No ``vmap`` is needed: every op shifts its per-sample axes by one, which is exact
even for ops that move ONNX axis 0 (``Transpose(perm=[1, 0])``, ``MatMul(W, x^T)``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from .forward import BASIC_FORWARD, ForwardFn
from .forward_nn import NN_FORWARD
from .graph import Graph

FORWARD: dict[str, ForwardFn] = {**BASIC_FORWARD, **NN_FORWARD}

__all__ = ["FORWARD", "ForwardFn", "constant_tensors", "evaluate", "evaluate_all"]


def c_array(arr: np.ndarray) -> np.ndarray:
    """``arr`` itself when C-contiguous and writable, else a copy that is (for torch)."""
    if arr.flags.c_contiguous and arr.flags.writeable:
        return arr
    return np.array(arr, order="C")


def constant_tensors(
    graph: Graph, *, device: torch.device | str, dtype: torch.dtype
) -> dict[str, Tensor]:
    """The graph's constants as tensors: floats in ``dtype``, integers and bools unchanged.

    Pass the result to :func:`evaluate` / :func:`evaluate_all` to avoid converting
    the constants on every call (attacks evaluate the same graph many times).
    """
    out: dict[str, Tensor] = {}
    for name, arr in graph.constants.items():
        t = torch.as_tensor(c_array(arr), device=device)
        out[name] = t.to(dtype) if t.is_floating_point() else t
    return out


def _check_input(graph: Graph, x: Tensor) -> None:
    if len(graph.inputs) != 1:
        raise ValueError(f"{graph.name}: evaluation needs exactly one graph input")
    expected = graph.inputs[0].shape
    if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != tuple(expected):
        raise ValueError(
            f"{graph.name}: input must have shape [B, *{list(expected)}] "
            f"(one leading batch dim), got {list(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{graph.name}: input must be a floating-point tensor, got {x.dtype}")


def _last_uses(graph: Graph) -> dict[str, list[str]]:
    """Node name -> values whose last reader it is (to free them early)."""
    last: dict[str, str] = {}
    for node in graph.nodes:
        for i in node.inputs:
            last[i] = node.name
    out: dict[str, list[str]] = {}
    for value, reader in last.items():
        out.setdefault(reader, []).append(value)
    return out


def _run(
    graph: Graph,
    x: Tensor,
    constants: Mapping[str, Tensor] | None,
    keep: set[str] | None,
) -> dict[str, Tensor]:
    """Evaluate the nodes; with ``keep`` given, drop other values after their last use."""
    _check_input(graph, x)
    consts = (
        constants
        if constants is not None
        else constant_tensors(graph, device=x.device, dtype=x.dtype)
    )
    free = _last_uses(graph) if keep is not None else {}
    values: dict[str, Tensor] = {graph.inputs[0].name: x}
    for node in graph.nodes:
        args = [values[i] if i in values else consts[i] for i in node.inputs]
        values[node.name] = FORWARD[node.op](node, args)
        for name in free.get(node.name, ()):
            if keep is not None and name not in keep:
                values.pop(name, None)
    return values


def evaluate_all(
    graph: Graph, x: Tensor, *, constants: Mapping[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """Evaluate every node of ``graph`` on the batch ``x``.

    Args:
        graph: the graph (exactly one input).
        x: ``[B, *graph.inputs[0].shape]``, any float dtype and device.
        constants: optional result of :func:`constant_tensors` for ``x``'s device
            and dtype (computed here when absent).

    Returns:
        Name -> ``[B, *shape]`` tensor for the graph input and every node output.
    """
    return _run(graph, x, constants, keep=None)


def evaluate(
    graph: Graph,
    x: Tensor,
    *,
    output: str | None = None,
    constants: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Evaluate one output of ``graph`` on the batch ``x``.

    Args:
        graph: the graph (exactly one input).
        x: ``[B, *graph.inputs[0].shape]``, any float dtype and device.
        output: name of the output (default: the first graph output).
        constants: optional result of :func:`constant_tensors`.

    Returns:
        ``[B, *output_shape]`` in ``x``'s dtype, differentiable w.r.t. ``x``.
    """
    name = output if output is not None else graph.outputs[0].name
    values = _run(graph, x, constants, keep={name})
    if name in values:
        return values[name]
    if name in graph.constants:
        c = torch.as_tensor(np.asarray(graph.constants[name]), device=x.device)
        c = c.to(x.dtype) if c.is_floating_point() else c
        return c.expand(x.shape[0], *c.shape)
    raise KeyError(f"{graph.name}: no value named {name!r}")
