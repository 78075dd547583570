"""Compiled (numba) lines of Sigmoid, Tanh, Erf and (Leaky)Relu on CPU tensors.

The same lines as the torch path of :mod:`bounds.relax.s_shaped` (slope from the relative
slope ``p`` over the range of ``f'``, rigorous bias from the closed-form stationary point,
outward margins of :func:`bounds.relax.tangents.relax_lines`), computed in one pass per
element instead of ~80 tensor operations of 25,600 elements each: on a CPU those are bound
by memory traffic, not arithmetic. Soundness does not depend on the compiled code agreeing
with torch to the last bit: every bias is the rigorous extremum of ``f - a x`` for the slope
``a`` actually returned, computed in float64 with the same margins (``2^-40`` absolute
covers the few ulps of ``exp``/``log``/``tanh``/``erf`` here as in torch).

Gradients (alpha-CROWN) follow the envelope theorem, as in the torch path: the kernel also
returns ``da/dp`` and the point ``x*`` where the bias is attained, and
``d(lb)/dp = -x* da/dp``. Only ``p`` gets a gradient; callers that need ``d/dl`` or ``d/du``
(intermediate-bound optimisation) use the torch path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import Lines

__all__ = [
    "ENABLED",
    "applicable",
    "kernel_default_p",
    "kernel_lines",
    "leaky_lines",
]

# Switch for tests and debugging: False sends every call to the torch path.
ENABLED = True

# numba's import and first dispatch cost about a second per process: the kernels take over
# only once the relaxations have cost this many seconds on the torch path (estimated with
# the costs per element below, measured on a 2-core CPU), so that short runs do not pay it
# and long searches do from their first seconds on.
WARMUP_S = 1.0
CALL_COST = 100e-6  # seconds per call (a dozen or more tensor operations)
S_COST = 150e-9  # Sigmoid/Tanh/Erf lines, seconds per element
LEAKY_COST = 20e-9  # (Leaky)Relu lines
_spent = 0.0

# Function codes of the S-shape kernels.
SIGMOID, TANH, ERF = 0, 1, 2

_TABLES: dict[int, Any] = {}


class _LinesFn(torch.autograd.Function):
    """Lines with the envelope-theorem gradient in ``p`` (``[2, *shape]``)."""

    @staticmethod
    def forward(ctx, p, lw, lb, uw, ub, dl, xl, du, xu, shape):  # noqa: D102
        ctx.save_for_backward(dl, xl, du, xu)
        ctx.p_shape = p.shape[1:]
        ctx.shape = shape
        return lw, lb, uw, ub

    @staticmethod
    def backward(ctx, g_lw, g_lb, g_uw, g_ub):  # noqa: D102
        dl, xl, du, xu = ctx.saved_tensors
        g0 = _grad(g_lw, g_lb, dl, xl, ctx.shape)
        g1 = _grad(g_uw, g_ub, du, xu, ctx.shape)
        grad = torch.stack([g0.sum_to_size(ctx.p_shape), g1.sum_to_size(ctx.p_shape)])
        return (grad,) + (None,) * 9


def _grad(g_w: Tensor | None, g_b: Tensor | None, da: Tensor, x: Tensor, shape) -> Tensor:
    """``(dL/dw - x* dL/db) da/dp`` (missing output gradients count as 0)."""
    out = torch.zeros(shape, dtype=da.dtype) if g_w is None else g_w.to(da.dtype)
    if g_b is not None:
        out = out - x.reshape(shape) * g_b
    return out * da.reshape(shape)


def applicable(l: Tensor, u: Tensor, p: Tensor | None, cost: float = S_COST) -> bool:
    """Whether the kernels serve this call: CPU float32/float64, no gradient to ``l``/``u``,
    and the work seen so far pays for loading them (:data:`WARMUP_S`).

    ``cost``: the torch path's seconds per element of this relaxation (estimated)."""
    if not ENABLED or l.device.type != "cpu" or l.dtype not in _DTYPES or u.dtype != l.dtype:
        return False
    if p is not None and p.device.type != "cpu":
        return False
    if torch.is_grad_enabled() and (l.requires_grad or u.requires_grad):
        return False
    return _warm(CALL_COST + cost * l.numel())


def _warm(seconds: float) -> bool:
    """Count torch-path work; True once it reaches :data:`WARMUP_S` (then always)."""
    global _spent
    if _spent < WARMUP_S:
        _spent += seconds
    return _spent >= WARMUP_S


_DTYPES = (torch.float32, torch.float64)


def _numba() -> Any:
    """The numba kernels module (imported on first use)."""
    from . import _kernels

    return _kernels


def _table(kind: int) -> Any:
    """The ``d_L`` table of ``kind`` (built on first use, about 10 ms)."""
    if kind not in _TABLES:
        k = _numba()
        _TABLES[kind] = k.d_lower_table(kind, k.CAPS[kind], k.TAB_SIZE)
    return _TABLES[kind]


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Broadcast shape of ``a`` and ``b`` (``torch.broadcast_shapes`` costs ~0.5 ms)."""
    if a == b:
        return a
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b, strict=True):
        if x != y and 1 not in (x, y):
            raise ValueError(f"shapes {a} and {b} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(out)


def kernel_lines(kind: int, l: Tensor, u: Tensor, p: Tensor | None, eps: float) -> Lines:
    """Lines of ``f`` on CPU ``[l, u]`` (float32/float64) for relative slopes ``p``.

    ``p`` is ``[2, *S]`` with ``S`` broadcasting against ``l.shape`` (None: the default
    slopes); ``eps`` is the dtype's rounding unit of the outward margins. Gradients flow to
    ``p`` only.
    """
    dtype = l.dtype
    if p is None:
        shape = l.shape
        p0 = p1 = l
    else:
        shape = _broadcast(tuple(l.shape), tuple(p.shape[1:]))
        p0, p1 = p[0].detach(), p[1].detach()
        if p0.dtype != dtype:
            p0, p1 = p0.to(dtype), p1.to(dtype)
        p0, p1 = p0.expand(shape).contiguous(), p1.expand(shape).contiguous()
    lc = l.detach().expand(shape).contiguous()
    uc = u.detach().expand(shape).contiguous()
    outs = [torch.empty(shape, dtype=dtype) for _ in range(8)]
    flat = [t.view(-1).numpy() for t in (lc, uc, p0, p1, *outs)]
    k = _numba()
    lim = k.LIMITS[kind]
    k.lines(
        kind, k.CAPS[kind], _table(kind), lim[0], lim[1], eps, *flat[:4], p is not None, *flat[4:]
    )
    lw, lb, uw, ub, dl, xl, du, xu = outs
    if p is not None and p.requires_grad and torch.is_grad_enabled():
        lw, lb, uw, ub = _LinesFn.apply(p, lw, lb, uw, ub, dl, xl, du, xu, shape)
    return Lines(lw=lw, lb=lb, uw=uw, ub=ub)


def kernel_default_p(kind: int, l: Tensor, u: Tensor) -> Tensor:
    """``[2, *l.shape]`` relative default slopes in ``l``'s dtype (CPU float32/float64)."""
    lc, uc = l.detach().contiguous(), u.detach().contiguous()
    out = torch.empty((2,) + tuple(l.shape), dtype=l.dtype)
    k = _numba()
    k.default_p(
        kind,
        k.CAPS[kind],
        _table(kind),
        lc.view(-1).numpy(),
        uc.view(-1).numpy(),
        out[0].view(-1).numpy(),
        out[1].view(-1).numpy(),
    )
    return out


class _SlopeFn(torch.autograd.Function):
    """A line slope ``lw`` (computed by a kernel) with gradient ``g`` to ``alpha``."""

    @staticmethod
    def forward(ctx, alpha, lw, g):  # noqa: D102
        ctx.save_for_backward(g)
        ctx.alpha_shape = alpha.shape
        return lw

    @staticmethod
    def backward(ctx, g_lw):  # noqa: D102
        (g,) = ctx.saved_tensors
        return (g_lw * g).reshape(ctx.alpha_shape), None, None


# Below this many elements the torch path is as fast (and numba's first-use cost is saved).
LEAKY_MIN_ELEMENTS = 2048


def _squeeze_front(shape: tuple[int, ...]) -> tuple[int, ...]:
    i = 0
    while i < len(shape) and shape[i] == 1:
        i += 1
    return shape[i:]


def leaky_lines(a: float, l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines | None:
    """LeakyRelu (``a <= 1``) lines on finite ``[l, u]`` by the kernel, or None where it does
    not apply (then the torch path runs): gradients to the bounds, other devices or dtypes,
    small tensors, or ``alpha`` with its own (spec) dimensions."""
    if l.numel() < LEAKY_MIN_ELEMENTS or not applicable(l, u, alpha, LEAKY_COST):
        return None
    if u.shape != l.shape:
        return None
    if alpha is not None:
        if alpha.dtype != l.dtype or alpha.shape[0] != 1:
            return None
        if _squeeze_front(tuple(alpha.shape[1:])) != _squeeze_front(tuple(l.shape)):
            return None
    shape = l.shape if alpha is None else _broadcast(tuple(l.shape), tuple(alpha.shape[1:]))
    lc, uc = l.detach().contiguous(), u.detach().contiguous()
    s = lc if alpha is None else alpha.detach().contiguous()
    lw = torch.empty(shape, dtype=l.dtype)
    uw, ub, g = (torch.empty(l.shape, dtype=l.dtype) for _ in range(3))
    flat = [t.view(-1).numpy() for t in (lc, uc, s, lw, uw, ub, g)]
    up = 2.0**-23 if l.dtype == torch.float32 else 0.0
    _numba().leaky_lines(float(a), up, *flat[:3], alpha is not None, *flat[3:])
    if alpha is not None and alpha.requires_grad and torch.is_grad_enabled():
        lw = _SlopeFn.apply(alpha, lw, g.reshape(shape))
    zero = l.new_zeros(())
    return Lines(lw, zero.expand(shape), uw.expand(shape), ub.expand(shape))
