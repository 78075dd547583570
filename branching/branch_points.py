"""Branching points for general nonlinearities: the engine's relaxations wired into lut.

lut/ cannot import bounds/ (layering), so this module adapts ``bounds.relax`` to the
function signatures lut expects and builds :func:`engine_store`: a table store with the
engine's relaxations registered (so lookups outside a table, fingerprint checks and
rebuilds use exactly the engine's relaxations). Nothing is registered at import time;
the store is created on first use and passed explicitly to every lookup. It also
provides the build command::

    python -m branching.branch_points build [--out DIR] [--ops Sigmoid,Tanh] [--check]
    verify lut build ...                                  (same, through the CLI)

``build`` writes the tables (deterministic, bit for bit on the same platform);
``--check`` rebuilds into memory and compares with the files instead of writing.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import lut
from bounds.relax import FACTORIES, get_relaxation
from bounds.relax.bilinear import relax_mul

log = logging.getLogger(__name__)

#: lut table name -> (bounds.relax op name, node attributes)
RELAXATION_SOURCES: dict[str, tuple[str, dict[str, Any]]] = {
    "Sigmoid": ("Sigmoid", {}),
    "Tanh": ("Tanh", {}),
    "Sin": ("Sin", {}),
    "Cos": ("Cos", {}),
    "Gelu": ("Gelu", {}),
    "Exp": ("Exp", {}),
    "Reciprocal": ("Reciprocal", {}),
    "Sqrt": ("Sqrt", {}),
    "Pow2": ("Pow", {"exponent": 2.0}),
    "Pow3": ("Pow", {"exponent": 3.0}),
}


def available_tables() -> list[str]:
    """Table names whose relaxation the engine currently provides."""
    names = [n for n, (op, _) in RELAXATION_SOURCES.items() if op in FACTORIES]
    return [*names, lut.MUL]


def relaxation_for_table(name: str) -> Callable[..., tuple[Tensor, ...]]:
    """The engine's default relaxation of table ``name`` in lut's calling convention.

    Unary: ``(l, u) -> (lw, lb, uw, ub)``; ``"Mul"``: ``(xl, xu, yl, yu) ->
    (lx, ly, lc, ux, uy, uc)``.

    Raises:
        KeyError: for an unknown table or an op bounds/ does not relax.
    """
    if name == lut.MUL:

        def mul(xl: Tensor, xu: Tensor, yl: Tensor, yu: Tensor) -> tuple[Tensor, ...]:
            p = relax_mul(xl, xu, yl, yu, None)
            return p.lx, p.ly, p.lc, p.ux, p.uy, p.uc

        return mul
    if name not in RELAXATION_SOURCES:
        raise KeyError(f"no table {name!r}; known: {', '.join(RELAXATION_SOURCES)}, Mul")
    op, attrs = RELAXATION_SOURCES[name]
    relaxation = get_relaxation(op, attrs)

    def unary(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        lines = relaxation.relax(l, u, None)
        return lines.lw, lines.lb, lines.uw, lines.ub

    return unary


def table_name(op: str, attrs: Mapping[str, Any] | None = None) -> str | None:
    """The lut table for node ``op`` with ``attrs`` (``"Pow"`` with exponent 2 is
    ``"Pow2"``), or None when no table exists for it."""
    if op == "Pow":
        exponent = float((attrs or {}).get("exponent", math.nan))
        return {2.0: "Pow2", 3.0: "Pow3"}.get(exponent)
    if op == lut.MUL or op in lut.UNARY_OPS:
        return op
    return None


def split_points(
    op: str,
    attrs: Mapping[str, Any] | None,
    lower: Tensor,
    upper: Tensor,
    store: lut.TableStore | None = None,
) -> Tensor:
    """Branching points of a unary node's input intervals.

    Uses the op's table when one exists (:func:`lut.branching_points`), else
    optimises the same objective directly (coarse scan + golden section) with the
    engine's relaxation of ``op``. Points lie strictly inside ``(lower, upper)``
    where ``lower < upper`` (see :mod:`lut.points` for the edge cases).
    """
    name = table_name(op, attrs)
    if name is not None and name != lut.MUL:
        return lut.branching_points(name, lower, upper, store=store or engine_store())
    relaxation = get_relaxation(op, attrs)

    def relax(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        lines = relaxation.relax(l, u, None)
        return lines.lw, lines.lb, lines.uw, lines.ub

    return lut.direct_points(relax, lower, upper)


_ENGINE_STORE: lut.TableStore | None = None


def engine_store() -> lut.TableStore:
    """The packaged tables with the engine's relaxations registered (created once)."""
    global _ENGINE_STORE
    if _ENGINE_STORE is None:
        store = lut.TableStore()
        register_engine_relaxations(store)
        _ENGINE_STORE = store
    return _ENGINE_STORE


def register_engine_relaxations(store: lut.TableStore | None = None) -> list[str]:
    """Register the engine's relaxations for every available table; returns their names."""
    names = available_tables()
    for name in names:
        lut.register_relaxation(name, relaxation_for_table(name), store=store)
    return names


def build_table(name: str, spec: lut.TableSpec | None = None) -> lut.LookupTable:
    """Build one table with the engine's relaxation (default spec from lut)."""
    spec = spec or lut.DEFAULT_SPECS[name]
    return lut.store.build_from_spec(spec, relaxation_for_table(name))


def build_all_tables(
    out_dir: Path | None = None, names: Iterable[str] | None = None
) -> list[tuple[str, float, int]]:
    """Build and save tables (default: all available, into the packaged ``lut/data``).

    Returns:
        ``(name, build seconds, file bytes)`` per table.
    """
    out = Path(out_dir) if out_dir is not None else lut.PACKAGED_DIR
    report = []
    for name in names if names is not None else available_tables():
        start = time.perf_counter()
        table = build_table(name)
        seconds = time.perf_counter() - start
        path = lut.save_table(table, out)
        log.info("table %s: %.2f s, %d bytes -> %s", name, seconds, path.stat().st_size, path)
        report.append((name, seconds, path.stat().st_size))
    lut.DEFAULT_STORE.clear()
    if _ENGINE_STORE is not None:
        _ENGINE_STORE.clear()
    return report


def check_tables(directory: Path | None = None, names: Iterable[str] | None = None) -> list[str]:
    """Rebuild tables in memory and list those whose files differ (or are missing)."""
    directory = Path(directory) if directory is not None else lut.PACKAGED_DIR
    differing = []
    for name in names if names is not None else available_tables():
        path = lut.store.table_path(directory, name)
        if not path.is_file() or not build_table(name).same_as(lut.load_table(path)):
            differing.append(name)
    return differing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verify lut", description="branching-point tables")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the lookup tables")
    build.add_argument("--out", type=Path, default=None, help="output folder (default lut/data)")
    build.add_argument("--ops", default=None, help="comma-separated table names (default all)")
    build.add_argument(
        "--check",
        action="store_true",
        help="rebuild in memory and compare with the files; write nothing",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry (``verify lut ...``); returns the exit code."""
    args = _parser().parse_args(argv)
    names = args.ops.split(",") if args.ops else None
    if args.check:
        differing = check_tables(args.out, names)
        for name in differing:
            print(f"{name}: differs from a fresh build (or missing)")
        print("all tables reproduce bit for bit" if not differing else "tables differ")
        return 1 if differing else 0
    total = 0
    for name, seconds, size in build_all_tables(args.out, names):
        print(f"{name:<11} {seconds:7.2f} s {size:9d} bytes")
        total += size
    print(f"{'total':<11} {'':9}   {total:9d} bytes")
    return 0


if __name__ == "__main__":
    # One intra-op thread: faster on a busy machine at these chunk sizes; the tables
    # are identical either way (elementwise kernels).
    torch.set_num_threads(1)
    sys.exit(main())
