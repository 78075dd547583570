"""Precomputed lookup tables: pre-optimised branching points for nonlinear ops.

Pure mechanics over numpy and torch; the relaxations come from the caller as
functions (``lut`` never imports ``bounds``). Typical use::

    import lut
    lut.register_relaxation("Sigmoid", relax)          # done by branching at import
    p = lut.branching_points("Sigmoid", lower, upper)   # strictly inside (lower, upper)

Packaged tables live in ``lut/data`` and are rebuilt (bit for bit) with
``verify lut build`` / ``python -m branching.branch_points build``.
"""

from .builders import build_table_1d, build_table_mul, check_reduction
from .errors import (
    CorruptTableError,
    LutError,
    MissingRelaxationError,
    MissingTableError,
    ReductionError,
    StaleTableError,
)
from .grid import Axis, Grid, Reduction, uniform_grid
from .objective import Relax1D, RelaxMul, optimise_fraction
from .points import (
    branching_points,
    branching_points_mul,
    direct_points,
    register_relaxation,
    register_relaxation_mul,
)
from .specs import DEFAULT_SPECS, MUL, TABLE_NAMES, UNARY_OPS, TableSpec
from .store import DEFAULT_STORE, PACKAGED_DIR, TableStore, load_table, save_table
from .table import SCHEMA_VERSION, LookupTable, TableMeta

__all__ = [
    "DEFAULT_SPECS",
    "DEFAULT_STORE",
    "MUL",
    "PACKAGED_DIR",
    "SCHEMA_VERSION",
    "TABLE_NAMES",
    "UNARY_OPS",
    "Axis",
    "CorruptTableError",
    "Grid",
    "LookupTable",
    "LutError",
    "MissingRelaxationError",
    "MissingTableError",
    "ReductionError",
    "Relax1D",
    "RelaxMul",
    "Reduction",
    "StaleTableError",
    "TableMeta",
    "TableSpec",
    "TableStore",
    "branching_points",
    "branching_points_mul",
    "build_table_1d",
    "build_table_mul",
    "check_reduction",
    "direct_points",
    "load_table",
    "optimise_fraction",
    "register_relaxation",
    "register_relaxation_mul",
    "save_table",
    "uniform_grid",
]
