"""Default table specifications: which grid and optimiser each packaged table uses.

Ranges are parameters (pass other :class:`TableSpec` objects to the builders and
to :class:`~lut.store.TableStore`). Outside a table the lookup optimises directly
(golden section) with the registered relaxation.

Coverage of the defaults, against the input ranges of the nonlinear ops on the
shared benchmarks (values sampled in the VNN-LIB input boxes, widths from interval
propagation; ``tests/benchmarks/bench_lut.py --ranges``): Sigmoid inputs reach
[-82, 68] with interval widths up to ~110 (6x200 MLP, IBP), ml4acopf Sigmoid
[-29, 31], Pow [-14, 14], Sin/Cos [-0.3, 0.3], products of two perturbed values
[-0.3, 1.1]; ViT softmax inputs [-11, 7].

* Sigmoid, Gelu: centre in [-100, 100], width up to 200; Tanh: half of that
  (asinh axes: fine near 0, coarse where the functions are flat or linear).
* Sin, Cos: any centre (periodic reduction), width up to 2*pi.
* Exp: any centre (shift reduction), width up to 40.
* Reciprocal, Sqrt, Pow2, Pow3: every interval at every scale (scale reduction;
  Reciprocal/Sqrt while ``l/u >= 1e-6``); Reciprocal also for negative intervals.
* Mul: both intervals within [-5, 5] (the engine's McCormick optimum is the
  midpoint anyway, see :func:`lut.branching_points_mul`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .grid import Axis, Grid, Reduction

UNARY_OPS = ("Sigmoid", "Tanh", "Sin", "Cos", "Gelu", "Exp", "Reciprocal", "Sqrt", "Pow2", "Pow3")
MUL = "Mul"
TABLE_NAMES = (*UNARY_OPS, MUL)


@dataclass(frozen=True)
class TableSpec:
    """How to build one table.

    Attributes:
        name: table name (ONNX-style op name, ``"Mul"`` for products).
        grid: the grid (axes and reductions).
        coarse: scan cells of the optimiser.
        golden: golden-section steps of the optimiser.
    """

    name: str
    grid: Grid
    coarse: int = 32
    golden: int = 24

    @property
    def kind(self) -> str:
        return "mul" if self.grid.n_intervals == 2 else "unary"


def _centred(
    c_max: float,
    c_count: int,
    c_scale: float,
    w_max: float,
    w_count: int,
    w_scale: float,
) -> Grid:
    """Centre/width keys on asinh axes: fine near a centre of 0 and near a width of 0.

    An even ``c_count`` keeps nodes off the centre 0 (an inflection point, where the
    optimum of narrow intervals is irregular and would spread to neighbouring cells).
    """
    centre = Axis(-c_max, c_max, c_count, "asinh", c_scale)
    width = Axis(0.0, w_max, w_count, "asinh", w_scale)
    return Grid((centre, width), keys=("centre_width",))


def _periodic(cells: int, w_max: float, w_count: int) -> Grid:
    """Centre reduced into [-pi, pi), on nodes at half steps (never on a multiple of
    pi/2, the inflection points, when ``cells`` is a multiple of 4); asinh width axis."""
    half = math.pi / cells
    centre = Axis(-math.pi - half, math.pi + half, cells + 2)
    width = Axis(0.0, w_max, w_count, "asinh", 0.5)
    red = Reduction("periodic", period=2 * math.pi, origin=-math.pi)
    return Grid((centre, width), (red,), ("centre_width",))


def _width(max_width: float, count: int) -> Grid:
    return Grid((Axis(0.0, 0.0, 1), Axis(0.0, max_width, count)), (Reduction("shift"),))


def _ratio(min_ratio: float, count: int, kind: str = "scale") -> Grid:
    return Grid((Axis(min_ratio, 1.0, count, "log"), Axis(1.0, 1.0, 1)), (Reduction(kind),))


def _sym(count: int) -> Grid:
    return Grid((Axis(-1.0, 1.0, count), Axis(1.0, 1.0, 1)), (Reduction("scale_sym"),))


def _mul(lo: float, hi: float, count: int) -> Grid:
    axis = Axis(lo, hi, count)
    return Grid((axis,) * 4)


DEFAULT_SPECS: dict[str, TableSpec] = {
    s.name: s
    for s in (
        TableSpec("Sigmoid", _centred(100.0, 192, 2.0, 200.0, 97, 0.5), coarse=24, golden=16),
        TableSpec("Tanh", _centred(50.0, 192, 1.0, 100.0, 97, 0.25), coarse=24, golden=16),
        TableSpec("Gelu", _centred(100.0, 384, 1.0, 200.0, 129, 0.5), coarse=24, golden=16),
        TableSpec("Sin", _periodic(512, 2 * math.pi, 129), coarse=24, golden=16),
        TableSpec("Cos", _periodic(512, 2 * math.pi, 129), coarse=24, golden=16),
        TableSpec("Exp", _width(40.0, 401), coarse=24, golden=16),
        TableSpec("Reciprocal", _ratio(1e-6, 241, "scale_sym"), coarse=24, golden=16),
        TableSpec("Sqrt", _ratio(1e-6, 241), coarse=24, golden=16),
        TableSpec("Pow2", _sym(401), coarse=24, golden=16),
        TableSpec("Pow3", _sym(401), coarse=24, golden=16),
        TableSpec(MUL, _mul(-5.0, 5.0, 21), coarse=24, golden=16),
    )
}
