"""One declaration per canonical op (see ``models.ops.SUPPORTED_OPS``)."""

from __future__ import annotations

import numpy as np

from models.ops import ELEMENTWISE_NONLINEAR

from .backward import BACKWARD
from .base import OpDef, OpExample

_rng = np.random.default_rng(0)


def _w(*shape: int) -> np.ndarray:
    return _rng.standard_normal(shape).astype(np.float64)


_AFFINE = (
    OpDef(
        "Linear",
        "affine",
        "weighted",
        bias_slot=2,
        examples=(OpExample(((1, 5), _w(5, 3), _w(3))), OpExample(((1, 2, 4), _w(4, 3)))),
    ),
    OpDef(
        "Conv",
        "affine",
        "weighted",
        bias_slot=2,
        examples=(
            OpExample(
                ((1, 2, 5, 5), _w(3, 2, 3, 3), _w(3)),
                {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 1},
            ),
            OpExample(
                ((1, 2, 6, 6), _w(2, 1, 2, 2)),
                {"strides": (2, 2), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 2},
            ),
            OpExample(
                ((1, 2, 7, 6), _w(3, 2, 2, 3), _w(3)),
                {"strides": (2, 1), "pads": (0, 1, 2, 0), "dilations": (2, 1), "group": 1},
            ),
            OpExample(((1, 2, 9), _w(4, 2, 3)), {"strides": (2,), "pads": (1, 1)}),
            OpExample(((1, 3, 8, 9), _w(4, 3, 3, 2)), {"strides": (3, 2), "pads": (1, 0, 0, 0)}),
        ),
        backward=BACKWARD["Conv"],
    ),
    OpDef(
        "ConvTranspose",
        "affine",
        "weighted",
        bias_slot=2,
        examples=(
            OpExample(
                ((1, 2, 3, 3), _w(2, 3, 2, 2), _w(3)),
                {
                    "strides": (2, 2),
                    "pads": (0, 0, 0, 0),
                    "dilations": (1, 1),
                    "group": 1,
                    "output_padding": (0, 0),
                },
            ),
        ),
    ),
    OpDef(
        "MatMul",
        "affine",
        "weighted",
        product_when_both_perturbed=True,
        examples=(
            OpExample((_w(4, 3), (3, 2))),
            OpExample(((2, 3), (3, 4))),
            OpExample(((1, 2, 3, 4), (1, 2, 4, 3))),
        ),
    ),
    OpDef(
        "Mul",
        "affine",
        "weighted",
        product_when_both_perturbed=True,
        examples=(
            OpExample(((1, 4), _w(1, 4))),
            OpExample(((1, 4), (1, 4))),
            OpExample(((1, 3, 4), (1, 3, 1))),
            OpExample((_w(3, 1), (1, 3, 4))),
        ),
        backward=BACKWARD["Mul"],
    ),
    OpDef(
        "Add",
        "affine",
        "monotone",
        examples=(OpExample(((1, 4), _w(4))), OpExample(((1, 3, 4), (1, 1, 4)))),
        backward=BACKWARD["Add"],
    ),
    OpDef("Neg", "affine", "negate", examples=(OpExample(((1, 4),)),), backward=BACKWARD["Neg"]),
    OpDef(
        "AveragePool",
        "affine",
        "monotone",
        examples=(
            OpExample(
                ((1, 2, 4, 4),),
                {
                    "kernel_shape": (2, 2),
                    "strides": (2, 2),
                    "pads": (0, 0, 0, 0),
                    "count_include_pad": 0,
                    "ceil_mode": 0,
                },
            ),
        ),
    ),
    OpDef("GlobalAveragePool", "affine", "monotone", examples=(OpExample(((1, 2, 3, 3),)),)),
    OpDef(
        "ReduceMean",
        "affine",
        "monotone",
        examples=(
            OpExample(((1, 3, 4),), {"axes": (2,), "keepdims": 1}),
            OpExample(((1, 3, 4, 2),), {"axes": (1, 3), "keepdims": 0}),
        ),
        backward=BACKWARD["ReduceMean"],
    ),
    OpDef(
        "ReduceSum",
        "affine",
        "monotone",
        examples=(
            OpExample(((1, 3, 4),), {"axes": (1,), "keepdims": 0}),
            OpExample(((1, 3, 4, 2),), {"axes": (2, 3), "keepdims": 1}),
        ),
        backward=BACKWARD["ReduceSum"],
    ),
    OpDef(
        "Reshape",
        "affine",
        "monotone",
        examples=(OpExample(((1, 2, 3),), {"shape": (1, 6)}),),
        backward=BACKWARD["Reshape"],
    ),
    OpDef(
        "Transpose",
        "affine",
        "monotone",
        examples=(
            OpExample(((2, 3),), {"perm": (1, 0)}),
            OpExample(((1, 2, 3, 4),), {"perm": (0, 2, 3, 1)}),
        ),
        backward=BACKWARD["Transpose"],
    ),
    OpDef(
        "Concat",
        "affine",
        "monotone",
        examples=(
            OpExample(((1, 2), (1, 3)), {"axis": 1}),
            OpExample(((1, 2), _w(1, 2)), {"axis": 1}),
            OpExample(((1, 2, 3), _w(1, 1, 3), (1, 2, 3)), {"axis": 1}),
        ),
        backward=BACKWARD["Concat"],
    ),
    OpDef(
        "Slice",
        "affine",
        "monotone",
        examples=(
            OpExample(((1, 6),), {"starts": (1,), "ends": (5,), "axes": (1,), "steps": (2,)}),
            OpExample(
                ((1, 4, 5),), {"starts": (3, 0), "ends": (0, 5), "axes": (1, 2), "steps": (-1, 2)}
            ),
        ),
        backward=BACKWARD["Slice"],
    ),
    OpDef(
        "Gather",
        "affine",
        "monotone",
        examples=(
            OpExample(((1, 5), np.array([4, 0, 2], dtype=np.int64)), {"axis": 1}),
            OpExample(((1, 3, 4), np.array([[1, 2], [0, 0]], dtype=np.int64)), {"axis": 2}),
        ),
        backward=BACKWARD["Gather"],
    ),
    OpDef(
        "Pad",
        "affine",
        "monotone",
        examples=(OpExample(((1, 3),), {"pads": (0, 1, 0, 2), "value": 0.5}),),
    ),
    OpDef(
        "Expand", "affine", "monotone", examples=(OpExample(((1, 1, 3),), {"shape": (1, 2, 3)}),)
    ),
    OpDef(
        "Resize",
        "affine",
        "monotone",
        examples=(OpExample(((1, 1, 2, 2),), {"scales": (1.0, 1.0, 2.0, 2.0), "mode": "nearest"}),),
    ),
)

_UNARY_NAMES = tuple(sorted(ELEMENTWISE_NONLINEAR))
_UNARY_ATTRS = {
    "LeakyRelu": ({"alpha": 0.1},),
    "Gelu": ({"approximate": "none"}, {"approximate": "tanh"}),
    "Pow": ({"exponent": 2.0}, {"exponent": 3.0}),
    "Clip": ({"min": -0.5, "max": 0.5},),
}
_POSITIVE = {"Log", "Reciprocal", "Sqrt"}

_UNARY = tuple(
    OpDef(
        name,
        "unary",
        examples=tuple(
            OpExample(((1, 6),), attrs, positive_inputs=name in _POSITIVE)
            for attrs in _UNARY_ATTRS.get(name, ({},))
        ),
    )
    for name in _UNARY_NAMES
)

_COMPOSITE = (
    OpDef(
        "Softmax",
        "composite",
        examples=(
            OpExample(((1, 2, 4),), {"axis": 2}),
            OpExample(((1, 3, 2),), {"axis": 1}),
            OpExample(((1, 3, 1),), {"axis": 2}),
        ),
    ),
    OpDef(
        "LayerNormalization",
        "composite",
        examples=(OpExample(((1, 3, 4), _w(4), _w(4)), {"axis": 2, "epsilon": 1e-5}),),
    ),
    OpDef(
        "MaxPool",
        "composite",
        examples=(
            OpExample(
                ((1, 1, 4, 4),),
                {
                    "kernel_shape": (2, 2),
                    "strides": (2, 2),
                    "pads": (0, 0, 0, 0),
                    "dilations": (1, 1),
                    "ceil_mode": 0,
                },
            ),
        ),
    ),
)

DECLARATIONS: tuple[OpDef, ...] = _AFFINE + _UNARY + _COMPOSITE
