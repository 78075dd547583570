"""Self-contained toy relaxations and small table specs for the lut tests.

These relaxations are simple, sound and written here on purpose: lut/ must work
with any relaxation passed in, independently of bounds/.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

import lut
from lut.grid import Axis, Grid, Reduction


def _chord(f, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    w = (f(u) - f(l)) / (u - l).clamp(min=1e-12)
    return w, f(l) - w * l


def exp_relax(l: Tensor, u: Tensor):
    """Tangent at min(mid, l + 0.99) below, chord above (shift-equivariant)."""
    t = torch.minimum((l + u) / 2, l + 0.99)
    cw, cb = _chord(torch.exp, l, u)
    return torch.exp(t), torch.exp(t) * (1 - t), cw, cb


def exp_relax_clamped(l: Tensor, u: Tensor):
    """Like exp_relax but the tangent point is clamped at an absolute -1: not shift-equivariant."""
    t = torch.maximum((l + u) / 2, torch.full_like(l, -1.0)).clamp(max=u)
    cw, cb = _chord(torch.exp, l, u)
    return torch.exp(t), torch.exp(t) * (1 - t), cw, cb


def square_relax(l: Tensor, u: Tensor):
    """x^2: tangent at the point of [l, u] nearest 0 below, chord above."""
    t = torch.relu(l) - torch.relu(-u)
    return 2 * t, -t * t, l + u, -l * u


def cube_relax(l: Tensor, u: Tensor):
    """x^3 via constant bounds (odd, scale-equivariant; crude but sound)."""
    z = torch.zeros_like(l)
    return z, l**3, z, u**3


def recip_relax(l: Tensor, u: Tensor):
    """1/x for x > 0: tangent at the midpoint below, chord above."""
    m = (l + u) / 2
    return -1 / (m * m), 2 / m, -1 / (l * u), 1 / l + 1 / u


def sin_relax(l: Tensor, u: Tensor):
    """Constant lines at the range of sin on [l, u] (periodic)."""
    lo, hi = torch.minimum(torch.sin(l), torch.sin(u)), torch.maximum(torch.sin(l), torch.sin(u))
    k_max = torch.ceil((l - math.pi / 2) / (2 * math.pi))
    k_min = torch.ceil((l + math.pi / 2) / (2 * math.pi))
    hi = torch.where(math.pi / 2 + 2 * math.pi * k_max <= u, torch.ones_like(hi), hi)
    lo = torch.where(-math.pi / 2 + 2 * math.pi * k_min <= u, -torch.ones_like(lo), lo)
    z = torch.zeros_like(l)
    return z, lo, z, hi


def _d_lower(l: Tensor, u: Tensor) -> Tensor:
    """Largest d <= 0 whose sigmoid tangent stays below sigmoid(u) (bisection)."""
    lo, hi = torch.full_like(l, -40.0), torch.zeros_like(l)
    for _ in range(30):
        mid = (lo + hi) / 2
        s = torch.sigmoid(mid)
        ok = s + s * (1 - s) * (u - mid) <= torch.sigmoid(u)
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return torch.maximum(lo, l)


def sigmoid_relax(l: Tensor, u: Tensor):
    """S-shaped rules of REFERENCE §1.d with exact tangent points (no alpha)."""

    def tangent(t: Tensor) -> tuple[Tensor, Tensor]:
        s = torch.sigmoid(t)
        return s * (1 - s), s - s * (1 - s) * t

    def slope(x: Tensor) -> Tensor:
        return torch.sigmoid(x) * (1 - torch.sigmoid(x))

    cw, cb = _chord(torch.sigmoid, l, u)
    tw, tb = tangent((l + u) / 2)
    lw_x, lb_x = tangent(_d_lower(l, u))
    uw_x, ub_x = tangent(-_d_lower(-u, -l))
    low_chord, up_chord = cw <= slope(l), cw <= slope(u)
    lw, lb = torch.where(low_chord, cw, lw_x), torch.where(low_chord, cb, lb_x)
    uw, ub = torch.where(up_chord, cw, uw_x), torch.where(up_chord, cb, ub_x)
    neg, pos = u <= 0, l >= 0
    lw = torch.where(neg, tw, torch.where(pos, cw, lw))
    lb = torch.where(neg, tb, torch.where(pos, cb, lb))
    uw = torch.where(neg, cw, torch.where(pos, tw, uw))
    ub = torch.where(neg, cb, torch.where(pos, tb, ub))
    return lw, lb, uw, ub


def mul_relax(xl: Tensor, xu: Tensor, yl: Tensor, yu: Tensor):
    """McCormick planes with r = r' = 1 (REFERENCE §1.d)."""
    return yl, xl, -xl * yl, yu, xl, -xl * yu


TOY = {
    "Exp": exp_relax,
    "Pow2": square_relax,
    "Pow3": cube_relax,
    "Reciprocal": recip_relax,
    "Sin": sin_relax,
    "Sigmoid": sigmoid_relax,
    "Mul": mul_relax,
}

SMALL_SPECS = {
    "Exp": lut.TableSpec(
        "Exp",
        Grid((Axis(0.0, 0.0, 1), Axis(0.0, 12.0, 49)), (Reduction("shift"),)),
        coarse=16,
        golden=16,
    ),
    "Pow2": lut.TableSpec(
        "Pow2",
        Grid((Axis(-1.0, 1.0, 41), Axis(1.0, 1.0, 1)), (Reduction("scale_sym"),)),
        coarse=16,
        golden=16,
    ),
    "Pow3": lut.TableSpec(
        "Pow3",
        Grid((Axis(-1.0, 1.0, 41), Axis(1.0, 1.0, 1)), (Reduction("scale_sym"),)),
        coarse=16,
        golden=16,
    ),
    "Reciprocal": lut.TableSpec(
        "Reciprocal",
        Grid((Axis(1e-4, 1.0, 33, "log"), Axis(1.0, 1.0, 1)), (Reduction("scale"),)),
        coarse=16,
        golden=16,
    ),
    "Sin": lut.TableSpec(
        "Sin",
        Grid(
            (Axis(-math.pi, math.pi, 17), Axis(0.0, 2 * math.pi, 17)),
            (Reduction("periodic", period=2 * math.pi, origin=-math.pi),),
            ("centre_width",),
        ),
        coarse=16,
        golden=16,
    ),
    "Sigmoid": lut.TableSpec(
        "Sigmoid",
        Grid(
            (Axis(-20.0, 20.0, 25, "asinh", 2.0), Axis(0.0, 40.0, 17, "asinh", 0.5)),
            keys=("centre_width",),
        ),
        coarse=16,
        golden=16,
    ),
    "Mul": lut.TableSpec("Mul", Grid((Axis(-2.0, 2.0, 5),) * 4), coarse=8, golden=8),
}


@pytest.fixture(scope="session")
def small_tables() -> dict[str, lut.LookupTable]:
    """Small tables built once per session from the toy relaxations."""
    from lut.store import build_from_spec

    return {name: build_from_spec(spec, TOY[name]) for name, spec in SMALL_SPECS.items()}


@pytest.fixture
def toy_store(tmp_path: Path, small_tables) -> lut.TableStore:
    """A store over a temporary directory holding the small tables, relaxations registered."""
    for table in small_tables.values():
        lut.save_table(table, tmp_path)
    store = lut.TableStore(tmp_path, specs=SMALL_SPECS)
    for name, relax in TOY.items():
        store.register_relaxation(name, relax)
    return store


@pytest.fixture(scope="session")
def toy() -> dict:
    """Toy relaxations by table name (``"Mul"``: a product relaxation)."""
    return dict(TOY, ExpClamped=exp_relax_clamped)


@pytest.fixture(scope="session")
def small_specs() -> dict[str, lut.TableSpec]:
    """Small specs matching :func:`small_tables`."""
    return dict(SMALL_SPECS)


@pytest.fixture(scope="session")
def toy_store_session(tmp_path_factory, small_tables) -> lut.TableStore:
    """Session-wide variant of :func:`toy_store` (for hypothesis tests)."""
    directory = tmp_path_factory.mktemp("tables")
    for table in small_tables.values():
        lut.save_table(table, directory)
    store = lut.TableStore(directory, specs=SMALL_SPECS)
    for name, relax in TOY.items():
        store.register_relaxation(name, relax)
    return store
