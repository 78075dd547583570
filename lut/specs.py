"""Default table specifications: which grid and optimiser each packaged table uses.

Ranges are parameters (pass other :class:`TableSpec` objects to the builders).
Reductions make some tables cover every interval (Reciprocal, Sqrt, Pow: all
scales; Sin/Cos: all periods up to a maximum width); the others cover the
pre-activation ranges listed below and beyond them the lookup optimises directly
(golden section) with the registered relaxation.
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


def _plain(lo: float, hi: float, count: int) -> Grid:
    axis = Axis(lo, hi, count)
    return Grid((axis, axis))


def _periodic(count_l: int, max_width: float) -> Grid:
    lo = Axis(-math.pi, math.pi, count_l)
    step = 2 * math.pi / (count_l - 1)
    n_u = round((2 * math.pi + max_width) / step) + 1
    hi = Axis(-math.pi, -math.pi + step * (n_u - 1), n_u)
    return Grid((lo, hi), (Reduction("periodic", period=2 * math.pi, origin=-math.pi),))


def _width(max_width: float, count: int) -> Grid:
    return Grid((Axis(0.0, 0.0, 1), Axis(0.0, max_width, count)), (Reduction("shift"),))


def _ratio(min_ratio: float, count: int) -> Grid:
    return Grid((Axis(min_ratio, 1.0, count, "log"), Axis(1.0, 1.0, 1)), (Reduction("scale"),))


def _sym(count: int) -> Grid:
    return Grid((Axis(-1.0, 1.0, count), Axis(1.0, 1.0, 1)), (Reduction("scale_sym"),))


def _mul(lo: float, hi: float, count: int) -> Grid:
    axis = Axis(lo, hi, count)
    return Grid((axis,) * 4)


DEFAULT_SPECS: dict[str, TableSpec] = {
    s.name: s
    for s in (
        TableSpec("Sigmoid", _plain(-20.0, 20.0, 321)),
        TableSpec("Tanh", _plain(-10.0, 10.0, 321)),
        TableSpec("Gelu", _plain(-10.0, 10.0, 321)),
        TableSpec("Sin", _periodic(161, 2 * math.pi)),
        TableSpec("Cos", _periodic(161, 2 * math.pi)),
        TableSpec("Exp", _width(40.0, 401)),
        TableSpec("Reciprocal", _ratio(1e-6, 241)),
        TableSpec("Sqrt", _ratio(1e-6, 241)),
        TableSpec("Pow2", _sym(401)),
        TableSpec("Pow3", _sym(401)),
        TableSpec(MUL, _mul(-5.0, 5.0, 21)),
    )
}
