"""The op declaration type: one stateless record per canonical op."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .backward import BackwardFn

# How an op enters bound propagation.
#   "affine": linear in its perturbed inputs (backward derived by autodiff);
#   "unary": elementwise nonlinearity relaxed by bounds.relax;
#   "product": product of two perturbed tensors (McCormick planes);
#   "composite": rewritten into primitives by bounds.decompose before bounding.
OpKind = Literal["affine", "unary", "product", "composite"]

# Interval rule of an affine op:
#   "monotone": nondecreasing in every perturbed input (selections, sums, averages);
#   "negate": y = -x;
#   "weighted": y = f(x; W) with constant weights that may be negative: centre/radius
#               form with |W| (and no bias) for the radius.
IntervalRule = Literal["monotone", "negate", "weighted"]


@dataclass(frozen=True, slots=True)
class OpExample:
    """One test case for the registry-driven soundness suite.

    ``inputs`` holds, per ONNX input slot, either a shape (a perturbed input of
    that per-sample shape) or a numpy array (a constant).
    """

    inputs: tuple[tuple[int, ...] | np.ndarray, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    output_shape: tuple[int, ...] = ()
    positive_inputs: bool = False


@dataclass(frozen=True)
class OpDef:
    """Declaration of an op for the bounds engine.

    Concrete semantics come from ``models.evaluate.FORWARD[name]`` (one
    definition for evaluation and bounds); the linear backward step of affine
    ops is derived from it with ``torch.func.vjp``; relaxations of unary ops come
    from ``bounds.relax.get_relaxation``.

    Attributes:
        name: canonical op name.
        kind: see :data:`OpKind`.
        interval_rule: for affine ops, how IBP treats them.
        bias_slot: for "weighted" ops, the input slot of an additive bias
            (dropped when propagating radii), else None.
        examples: cases for the registry-driven soundness tests.
        product_when_both_perturbed: "Mul"/"MatMul" become products when both
            operands depend on the input, otherwise affine.
        backward: for affine ops, an optional hand-written backward step
            (:mod:`bounds.ops.backward`) used instead of the derived one.
    """

    name: str
    kind: OpKind
    interval_rule: IntervalRule | None = None
    bias_slot: int | None = None
    examples: tuple[OpExample, ...] = ()
    product_when_both_perturbed: bool = False
    check: Callable[..., None] | None = None
    backward: BackwardFn | None = None
