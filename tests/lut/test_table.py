"""LookupTable/TableStore: file round trip, integrity errors, and the lookup guarantees."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lut
from lut.table import MAGIC


def _rewrite_header(data: bytes, **changes) -> bytes:
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(data[start : start + n])
    header.update(changes)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + data[start + n :]


def test_round_trip_is_exact_and_deterministic(small_tables, tmp_path):
    for table in small_tables.values():
        data = table.to_bytes()
        assert data == table.to_bytes()
        back = lut.LookupTable.from_bytes(data)
        assert np.array_equal(back.values, table.values)
        assert back.grid == table.grid and back.meta == table.meta
        assert back.checksum == table.checksum
        path = lut.save_table(table, tmp_path)
        assert path.read_bytes() == data
        assert lut.load_table(path).checksum == table.checksum
    assert not list(tmp_path.glob(".*.tmp"))


def test_corrupt_body_or_header_raises(small_tables):
    data = bytearray(small_tables["Pow2"].to_bytes())
    data[-5] ^= 0xFF
    with pytest.raises(lut.CorruptTableError):
        lut.LookupTable.from_bytes(bytes(data))
    good = small_tables["Pow2"].to_bytes()
    tampered = _rewrite_header(good, shape=[41, 1], checksum="0" * 64)
    with pytest.raises(lut.CorruptTableError, match="checksum"):
        lut.LookupTable.from_bytes(tampered)
    with pytest.raises(lut.CorruptTableError):
        lut.LookupTable.from_bytes(b"not a table")


def test_schema_version_mismatch_raises_stale(small_tables):
    data = _rewrite_header(small_tables["Pow2"].to_bytes(), schema_version=lut.SCHEMA_VERSION + 1)
    with pytest.raises(lut.StaleTableError, match="schema version.*verify lut build"):
        lut.LookupTable.from_bytes(data, source="Pow2.lut")


def test_missing_table_names_table_and_command(tmp_path):
    store = lut.TableStore(tmp_path)
    with pytest.raises(lut.MissingTableError, match="'Tanh'.*verify lut build"):
        store.get("Tanh")


def test_changed_relaxation_is_stale_then_rebuilt_on_request(toy_store, toy, tmp_path, caplog):
    toy_store.register_relaxation("Exp", toy["ExpClamped"])
    with pytest.raises(lut.StaleTableError, match="'Exp'.*different relaxation"):
        toy_store.get("Exp")
    cache = tmp_path / "cache"
    store = lut.TableStore(
        toy_store.directory, specs=toy_store.specs, auto_rebuild=True, cache_dir=cache
    )
    store.register_relaxation("Exp", toy["Exp"])
    store.register_relaxation("Sigmoid", toy["Sigmoid"])
    (toy_store.directory / "Sigmoid.lut").unlink()
    with caplog.at_level("WARNING"):
        table = store.get("Sigmoid")
    assert table.name == "Sigmoid" and "rebuilding" in caplog.text
    assert (cache / "Sigmoid.lut").is_file()


def test_load_all_returns_every_table(toy_store, small_specs):
    toy_store.clear()
    tables = toy_store.load_all(small_specs)
    assert set(tables) == set(small_specs)


EDGE_L = [-3.0, 0.0, 1.0, 1e-30, -1e30, -math.inf, 2.0, -math.inf, math.inf, 5.0, -1e-38, 7.0]
EDGE_U = [2.0, 0.0, 1.0 + 2**-20, 2e-30, 1e30, 3.0, math.inf, math.inf, math.inf, 5.0, 1e-38, 1e4]


def _check_inside(p: torch.Tensor, l: torch.Tensor, u: torch.Tensor) -> None:
    nan = torch.isnan(l) | torch.isnan(u)
    assert torch.isnan(p[nan]).all()
    p, l, u = p[~nan], l[~nan], u[~nan]
    assert not torch.isnan(p).any()
    equal = l == u
    assert (p[equal] == l[equal]).all()
    room = torch.nextafter(l, torch.full_like(l, math.inf)) < u
    assert ((p[room] > l[room]) & (p[room] < u[room])).all()
    assert torch.isfinite(p[room]).all()
    assert ((p[~equal] >= l[~equal]) & (p[~equal] <= u[~equal])).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
@pytest.mark.parametrize("op", ["Exp", "Pow2", "Pow3", "Sin", "Sigmoid"])
@pytest.mark.parametrize("mode", ["interp", "inner"])
def test_points_strictly_inside_on_edge_cases(toy_store, op, dtype, mode):
    l = torch.tensor(EDGE_L + [math.nan, 1.0], dtype=dtype)
    u = torch.tensor(EDGE_U + [1.0, math.nan], dtype=dtype)
    p = lut.branching_points(op, l, u, store=toy_store, mode=mode)
    assert p.dtype == dtype and p.shape == l.shape
    _check_inside(p, l, u)


def test_reciprocal_and_mul_edge_cases(toy_store):
    l = torch.tensor([1e-30, 1e-3, 0.5, 3.0, 1e20, 1.0])
    u = torch.tensor([1.0, 1e-3 * (1 + 1e-6), 0.6, math.inf, 1e30, 1.0 + 2**-23])
    _check_inside(lut.branching_points("Reciprocal", l, u, store=toy_store), l, u)
    xl = torch.tensor([-1.0, 0.0, -1e30, 2.0, -math.inf])
    xu = torch.tensor([2.0, 1.0, 1e30, 2.0, 1.0])
    yl = torch.tensor([-1.0, 3.0, 0.0, -1.0, 0.0])
    yu = torch.tensor([1.0, 3.0, math.inf, 1.0, 1.0])
    _check_inside(lut.branching_points_mul(xl, xu, yl, yu, store=toy_store), xl, xu)


def test_invalid_interval_returns_lower(toy_store):
    p = lut.branching_points("Exp", torch.tensor([2.0]), torch.tensor([1.0]), store=toy_store)
    assert p.item() == 2.0


def test_outside_table_without_relaxation_raises(toy_store, small_tables, tmp_path):
    for table in small_tables.values():
        lut.save_table(table, tmp_path / "bare")
    bare = lut.TableStore(tmp_path / "bare")
    inside = lut.branching_points("Sigmoid", torch.tensor([-1.0]), torch.tensor([2.0]), store=bare)
    assert -1.0 < inside.item() < 2.0
    with pytest.raises(lut.MissingRelaxationError, match="'Sigmoid'.*register"):
        lut.branching_points("Sigmoid", torch.tensor([-60.0]), torch.tensor([2.0]), store=bare)


def test_unknown_op_raises(toy_store):
    with pytest.raises(KeyError, match="Relu"):
        lut.branching_points("Relu", torch.zeros(1), torch.ones(1), store=toy_store)


def test_periodic_reduction_gives_same_fraction(toy_store):
    l = torch.tensor([-2.0, 0.3, 1.0], dtype=torch.float64)
    u = l + torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    base = lut.branching_points("Sin", l, u, store=toy_store, polish=False)
    for k in (-7, 3, 100):
        shifted = lut.branching_points(
            "Sin", l + 2 * math.pi * k, u + 2 * math.pi * k, store=toy_store, polish=False
        )
        torch.testing.assert_close(shifted - 2 * math.pi * k, base, atol=1e-6, rtol=0)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(allow_nan=False, width=32), st.floats(allow_nan=False, width=32)),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(["Exp", "Pow2", "Pow3", "Sigmoid", "Sin"]),
)
def test_property_points_inside(toy_store_session, pairs, op):
    lt = torch.tensor([min(a, b) for a, b in pairs])
    ut = torch.tensor([max(a, b) for a, b in pairs])
    _check_inside(lut.branching_points(op, lt, ut, store=toy_store_session), lt, ut)


def test_configure_enables_rebuild_of_a_missing_table(toy_store):
    (toy_store.directory / "Pow3.lut").unlink()
    toy_store.clear()
    with pytest.raises(lut.MissingTableError):
        toy_store.get("Pow3")
    toy_store.configure(auto_rebuild=True)
    assert toy_store.get("Pow3").name == "Pow3"


def test_polish_is_never_worse_than_the_midpoint(toy_store, toy):
    gen = torch.Generator().manual_seed(3)
    l = torch.rand(300, generator=gen, dtype=torch.float64) * 16 - 8
    u = l + torch.rand(300, generator=gen, dtype=torch.float64) * 6
    objective = lut.objective.split_objective_1d(toy["Sigmoid"], l, u)
    p = lut.branching_points("Sigmoid", l, u, store=toy_store, polish=True)
    area = objective((p - l) / (u - l))
    assert (area <= objective(torch.full_like(l, 0.5)) * (1 + 1e-12)).all()
