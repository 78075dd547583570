"""Builders and the objective: closed forms, optimiser, brute force, reductions, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lut
from lut.builders import build_table_1d, build_table_mul, check_reduction
from lut.grid import Axis, Grid, Reduction
from lut.objective import gap_area, gap_volume, split_objective_1d, split_objective_mul
from lut.table import QUANT

F64 = torch.float64


def test_gap_area_and_volume_match_numerical_integration(toy):
    l, u = torch.tensor([-1.0, 0.5], dtype=F64), torch.tensor([2.0, 3.0], dtype=F64)
    lw, lb, uw, ub = toy["Exp"](l, u)
    xs = l + (u - l) * torch.linspace(0, 1, 20001, dtype=F64)[:, None]
    numeric = torch.trapezoid((uw - lw) * xs + (ub - lb), xs, dim=0)
    torch.testing.assert_close(gap_area(toy["Exp"], l, u), numeric, rtol=1e-8, atol=0)
    xl, xu, yl, yu = (torch.tensor([v], dtype=F64) for v in (-1.0, 2.0, 0.5, 3.0))
    gx = torch.linspace(-1, 2, 401, dtype=F64)
    gy = torch.linspace(0.5, 3, 401, dtype=F64)
    X, Y = torch.meshgrid(gx, gy, indexing="ij")
    lx, ly, lc, ux, uy, uc = toy["Mul"](xl, xu, yl, yu)
    gap = (ux - lx) * X + (uy - ly) * Y + (uc - lc)
    numeric = torch.trapezoid(torch.trapezoid(gap, gy, dim=1), gx)
    torch.testing.assert_close(gap_volume(toy["Mul"], xl, xu, yl, yu), numeric.reshape(1))


def test_optimise_fraction_finds_minima_and_prefers_midpoint_on_ties():
    target = torch.tensor([0.03, 0.3, 0.5, 0.77, 0.99], dtype=F64)
    t, v = lut.optimise_fraction(lambda t: (t - target) ** 2, target, coarse=16, golden=30)
    torch.testing.assert_close(t, target, atol=1e-5, rtol=0)
    flat, _ = lut.optimise_fraction(lambda t: torch.zeros_like(t), target)
    assert (flat == 0.5).all()
    nan, _ = lut.optimise_fraction(lambda t: torch.full_like(t, math.nan), target)
    assert (nan == 0.5).all()


def _brute_force(objective, like: torch.Tensor, n: int = 401) -> torch.Tensor:
    ts = torch.linspace(0, 1, n, dtype=F64)[1:-1]
    return torch.stack([objective(torch.full_like(like, float(t))) for t in ts]).amin(0)


def _node_ends(grid: Grid) -> tuple[list[torch.Tensor], np.ndarray]:
    ends, valid = [], np.ones(grid.size, dtype=bool)
    for lo, hi in grid.node_intervals():
        ends += [torch.from_numpy(lo.ravel()), torch.from_numpy(hi.ravel())]
        valid &= hi.ravel() > lo.ravel()
    return [e[torch.from_numpy(valid)] for e in ends], valid


@pytest.mark.parametrize("name", ["Sigmoid", "Sin", "Pow2", "Reciprocal"])
def test_vectorised_builder_matches_brute_force(small_tables, toy, name):
    table = small_tables[name]
    ends, valid = _node_ends(table.grid)
    t = torch.from_numpy(table.values.ravel()[valid].astype(np.float64) / QUANT)
    objective = split_objective_1d(toy[name], ends[0], ends[1])
    brute = _brute_force(objective, ends[0])
    got = objective(t)
    assert (got <= brute * (1 + 1e-3) + 1e-12).all()
    assert (got <= objective(torch.full_like(t, 0.5)) * (1 + 1e-9)).all()


def test_plain_grid_builder_matches_brute_force(toy):
    grid = lut.uniform_grid(-4.0, 4.0, 17)
    table = build_table_1d(toy["Exp"], grid, "Exp", coarse=16, golden=16)
    ends, valid = _node_ends(grid)
    t = torch.from_numpy(table.values.ravel()[valid].astype(np.float64) / QUANT)
    objective = split_objective_1d(toy["Exp"], ends[0], ends[1])
    assert (objective(t) <= _brute_force(objective, ends[0]) * (1 + 1e-3)).all()
    assert (table.values.ravel()[~valid] == QUANT // 2).all()


def test_mul_builder_mccormick_optimum_is_the_midpoint(small_tables, toy):
    table = small_tables["Mul"]
    assert (table.values == QUANT // 2).all()
    ends, _ = _node_ends(table.grid)
    objective = split_objective_mul(toy["Mul"], *ends)
    mid = objective(torch.full_like(ends[0], 0.5))
    assert (mid <= _brute_force(objective, ends[0], 501) * (1 + 1e-12)).all()


def test_check_reduction_rejects_a_non_equivariant_relaxation(toy):
    grid = Grid((Axis(0.0, 0.0, 1), Axis(0.0, 8.0, 9)), (Reduction("shift"),))
    with pytest.raises(lut.ReductionError, match="shift"):
        build_table_1d(toy["ExpClamped"], grid, "Exp")

    def factory(ends):
        return split_objective_1d(toy["Exp"], ends[0], ends[1])

    check_reduction(factory, grid)


def test_builds_are_bit_for_bit_reproducible(toy, small_specs):
    spec = small_specs["Sin"]
    a = build_table_1d(toy["Sin"], spec.grid, "Sin", spec.coarse, spec.golden)
    b = build_table_1d(toy["Sin"], spec.grid, "Sin", spec.coarse, spec.golden)
    assert a.to_bytes() == b.to_bytes()
    mul = small_specs["Mul"]
    assert (
        build_table_mul(toy["Mul"], mul.grid, coarse=4, golden=2).to_bytes()
        == build_table_mul(toy["Mul"], mul.grid, coarse=4, golden=2).to_bytes()
    )


def test_grid_serialisation_and_axes():
    grid = Grid(
        (Axis(-50.0, 50.0, 33, "asinh", 2.0), Axis(0.0, 100.0, 9, "asinh", 0.5)),
        (Reduction("periodic", period=2 * math.pi, origin=-math.pi),),
        ("centre_width",),
    )
    assert Grid.from_dict(grid.to_dict()) == grid
    for axis in grid.axes + (Axis(1e-6, 1.0, 13, "log"), Axis(-1.0, 1.0, 5)):
        nodes = axis.nodes()
        assert nodes[0] == axis.start and nodes[-1] == axis.stop
        coords = axis.coord(torch.from_numpy(nodes))
        torch.testing.assert_close(coords, torch.arange(axis.count, dtype=F64), atol=1e-9, rtol=0)
    with pytest.raises(ValueError):
        Axis(0.0, 1.0, 1)
    with pytest.raises(ValueError):
        Grid((Axis(0.0, 1.0, 3),))
