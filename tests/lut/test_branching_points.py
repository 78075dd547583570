"""Packaged tables with the engine's relaxations: accuracy against scipy, reproducibility,
loading every table, and the public lookup through the default store.

Loading time is measured by ``tests/benchmarks/bench_lut.py``, not asserted here.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import lut
from branching import branch_points as bp

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_lut.py"
N_INTERVALS = 200


def _bench():
    spec = importlib.util.spec_from_file_location("bench_lut", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def store() -> lut.TableStore:
    s = lut.TableStore()
    bp.register_engine_relaxations(s)
    return s


@pytest.mark.parametrize("name", list(lut.TABLE_NAMES))
def test_table_point_matches_scipy_and_beats_midpoint(store, bench, name):
    ends = bench.sample_intervals(name, N_INTERVALS, seed=7)
    objective = bench.make_objective(name, store.relaxation(name), ends)
    ref = bench.reference_areas(objective, ends[0], scan=64, maxiter=40)
    mid = objective(torch.full_like(ends[0], 0.5))
    if name == lut.MUL:
        p = lut.branching_points_mul(*ends, store=store)
    else:
        p = lut.branching_points(name, ends[0], ends[1], store=store)
    assert ((p > ends[0]) & (p < ends[1])).all()
    area = objective((p - ends[0]) / (ends[1] - ends[0]))
    within = (area <= ref * 1.01 + 1e-300).double().mean().item()
    no_worse = (area <= mid * (1 + 1e-9)).double().mean().item()
    assert within >= 0.99, f"{name}: only {within:.3f} within 1% of the direct optimum"
    assert no_worse >= 0.99, f"{name}: only {no_worse:.3f} no worse than the midpoint"


@pytest.mark.parametrize("name", ["Pow3", "Reciprocal"])
def test_rebuild_reproduces_packaged_table(name):
    """The packaged file is what the code builds: the same fractions, bit for bit (the
    fingerprint's probe points may differ in the last bit between numpy releases)."""
    packaged = lut.load_table(lut.store.table_path(lut.PACKAGED_DIR, name))
    fresh = bp.build_table(name)
    assert np.array_equal(fresh.values, packaged.values)
    assert fresh.same_as(packaged)


def test_same_as_tells_a_changed_fraction_or_fingerprint():
    table = lut.load_table(lut.store.table_path(lut.PACKAGED_DIR, "Reciprocal"))
    assert table.same_as(lut.LookupTable.from_bytes(table.to_bytes()))
    values = table.values.copy()
    values.flat[values.size // 2] ^= 1
    assert not table.same_as(dataclasses.replace(table, values=values, _cache={}))
    fp = copy.deepcopy(table.meta.fingerprint)
    fp["outputs"][0][3] *= 1 + 1e-9
    changed = dataclasses.replace(table.meta, fingerprint=fp)
    assert not table.same_as(dataclasses.replace(table, meta=changed, _cache={}))


def test_loading_all_tables():
    tables = lut.TableStore().load_all()
    assert set(tables) == set(lut.TABLE_NAMES)


def test_packaged_tables_match_the_engine_relaxations(store):
    for name in bp.available_tables():
        store.get(name)  # raises StaleTableError if bounds.relax changed since the build


def test_engine_store_lookup_and_fallback():
    store = bp.engine_store()
    assert store is bp.engine_store()  # created once, passed explicitly
    l = torch.tensor([-1.0, -300.0, 0.0, 2.0, 5.0], dtype=torch.float32)
    u = torch.tensor([3.0, 250.0, 0.0, 2.0 + 2**-20, 1e6], dtype=torch.float32)
    for op in ("Sigmoid", "Tanh", "Gelu", "Sin", "Cos", "Pow2", "Pow3"):
        p = lut.branching_points(op, l, u, store=store)
        assert p.dtype == torch.float32
        assert p[2] == 0.0 and (p[[0, 1, 3, 4]] > l[[0, 1, 3, 4]]).all()
        assert (p[[0, 1, 3, 4]] < u[[0, 1, 3, 4]]).all()
    for op in ("Exp", "Reciprocal", "Sqrt"):
        p = lut.branching_points(op, l[3:], u[3:], store=store)
        assert ((p > l[3:]) & (p < u[3:])).all()


def test_cli_build_and_check(tmp_path, capsys):
    assert bp.main(["build", "--out", str(tmp_path), "--ops", "Pow2,Sqrt"]) == 0
    assert "Pow2" in capsys.readouterr().out
    assert (tmp_path / "Pow2.lut").read_bytes() == (lut.PACKAGED_DIR / "Pow2.lut").read_bytes()
    assert bp.main(["build", "--check", "--out", str(tmp_path), "--ops", "Pow2,Sqrt"]) == 0
    (tmp_path / "Sqrt.lut").unlink()
    assert bp.main(["build", "--check", "--out", str(tmp_path), "--ops", "Pow2,Sqrt"]) == 1
    assert "Sqrt" in capsys.readouterr().out


def test_split_points_for_ops_with_and_without_tables():
    l = torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64)
    u = torch.tensor([1.0, 4.0, 3.0], dtype=torch.float64)
    assert bp.table_name("Pow", {"exponent": 2}) == "Pow2"
    assert bp.table_name("Pow", {"exponent": 0.5}) is None
    assert bp.table_name("Log", {}) is None
    p = bp.split_points("Pow", {"exponent": 2.0}, l, u)
    torch.testing.assert_close(p, lut.branching_points("Pow2", l, u))
    q = bp.split_points("Log", {}, l[1:], u[1:])
    assert l[1] < q[0] < u[1] and q[1] == 3.0
