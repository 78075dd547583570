"""load_vnnlib: caching by content hash (memory LRU and disk), gzip, shape checks."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pytest

from vnnlib import SpecCache, SpecShapeError, VnnlibError, load_vnnlib, parse_vnnlib
from vnnlib.cache import content_key, read_disk, write_disk

TEXT = (
    "(declare-const X_0 Real)\n(declare-const X_1 Real)\n"
    "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
    "(assert (>= X_0 0))(assert (<= X_0 1))(assert (>= X_1 -1))(assert (<= X_1 1))\n"
    "(assert (or (and (>= X_0 0.5) (<= Y_0 Y_1)) (and (>= Y_0 3) (<= Y_1 -2)) (<= Y_0 -5)))\n"
)


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "prop.vnnlib"
    path.write_text(TEXT)
    return path


def test_memory_cache_hit_returns_equal_spec(spec_file: Path) -> None:
    cache = SpecCache()
    first = load_vnnlib(spec_file, cache=cache)
    second = load_vnnlib(spec_file, cache=cache)
    assert second == first and second == parse_vnnlib(TEXT, str(spec_file))
    assert (cache.hits, cache.misses) == (1, 1)


def test_changed_file_is_parsed_again(spec_file: Path) -> None:
    cache = SpecCache()
    first = load_vnnlib(spec_file, cache=cache)
    spec_file.write_text(TEXT.replace("(<= X_0 1)", "(<= X_0 0.75)"))
    second = load_vnnlib(spec_file, cache=cache)
    assert cache.misses == 2
    assert second != first and second.cases[0].upper[0] == 0.75


def test_same_content_at_another_path_reports_that_path(spec_file: Path, tmp_path: Path) -> None:
    cache = SpecCache()
    load_vnnlib(spec_file, cache=cache)
    other = tmp_path / "copy.vnnlib"
    other.write_text(TEXT)
    spec = load_vnnlib(other, cache=cache)
    assert cache.hits == 1 and spec.source == str(other)


def test_lru_evicts_least_recently_used() -> None:
    cache = SpecCache(capacity=2)
    specs = [parse_vnnlib(TEXT, f"s{i}") for i in range(3)]
    cache.put("a", specs[0])
    cache.put("b", specs[1])
    assert cache.get("a") is specs[0]  # a is now most recent
    cache.put("c", specs[2])
    assert cache.get("b") is None and cache.get("a") is specs[0] and len(cache) == 2
    with pytest.raises(ValueError):
        SpecCache(capacity=0)


def test_disk_cache_round_trip_and_reuse(spec_file: Path, tmp_path: Path) -> None:
    disk = tmp_path / "cache"
    first = load_vnnlib(spec_file, cache=SpecCache(), cache_dir=disk)
    entries = list(disk.glob("*.npz"))
    assert [p.stem for p in entries] == [content_key(spec_file.read_bytes())]
    assert not list(disk.glob("*.tmp"))  # atomic write left no temporary behind
    fresh = SpecCache()
    second = load_vnnlib(spec_file, cache=fresh, cache_dir=disk)
    assert second == first and fresh.misses == 1  # memory missed, disk served it
    assert [len(g[2]) for g in second.groups()] == [1, 2]
    assert second.cases[1].lower is second.cases[2].lower  # shared box restored
    assert not second.cases[0].lower.flags.writeable


def test_disk_entry_is_used_without_parsing(spec_file: Path, tmp_path: Path) -> None:
    """A planted entry under the file's key is returned: proof that disk is consulted."""
    key = content_key(spec_file.read_bytes())
    planted = parse_vnnlib(TEXT.replace("(<= X_0 1)", "(<= X_0 0.125)"), "planted")
    write_disk(tmp_path, key, planted)
    spec = load_vnnlib(spec_file, cache=SpecCache(), cache_dir=tmp_path)
    assert spec.cases[0].upper[0] == 0.125


def test_corrupt_disk_entry_is_ignored_and_rewritten(
    spec_file: Path, tmp_path: Path, caplog
) -> None:
    key = content_key(spec_file.read_bytes())
    (tmp_path / f"{key}.npz").write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="vnnlib"):
        spec = load_vnnlib(spec_file, cache=SpecCache(), cache_dir=tmp_path)
    assert spec == parse_vnnlib(TEXT, str(spec_file))
    assert "unreadable spec cache entry" in caplog.text
    assert read_disk(tmp_path, key) is not None


def test_gzip_files_load_transparently(tmp_path: Path) -> None:
    path = tmp_path / "prop.vnnlib.gz"
    path.write_bytes(gzip.compress(TEXT.encode()))
    assert load_vnnlib(path, cache=SpecCache()) == parse_vnnlib(TEXT, str(path))
    bad = tmp_path / "bad.vnnlib.gz"
    bad.write_bytes(gzip.compress(TEXT.encode())[:-10])
    with pytest.raises(VnnlibError, match="corrupt gzip"):
        load_vnnlib(bad, cache=SpecCache())


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(VnnlibError, match="file not found") as info:
        load_vnnlib(tmp_path / "nope.vnnlib", cache=SpecCache())
    assert info.value.source == str(tmp_path / "nope.vnnlib")
    bad = tmp_path / "latin1.vnnlib"
    bad.write_bytes(b"; ok\n; caf\xe9\n")
    with pytest.raises(VnnlibError, match="not UTF-8") as info:
        load_vnnlib(bad, cache=SpecCache())
    assert (info.value.line, info.value.col) == (2, 6)


def test_shape_check(spec_file: Path) -> None:
    spec = load_vnnlib(spec_file, n_inputs=2, n_outputs=2, cache=SpecCache())
    assert spec.n_inputs == 2
    with pytest.raises(SpecShapeError, match="spec declares 2 inputs X_0..X_1 but the model has 3"):
        load_vnnlib(spec_file, n_inputs=3, cache=SpecCache())
    with pytest.raises(SpecShapeError, match="2 outputs Y_0..Y_1 but the model has 10"):
        load_vnnlib(spec_file, n_outputs=10, cache=SpecCache())
    assert issubclass(SpecShapeError, VnnlibError)


def test_default_cache_is_used(spec_file: Path) -> None:
    from vnnlib import DEFAULT_CACHE

    DEFAULT_CACHE.clear()
    load_vnnlib(spec_file)
    load_vnnlib(spec_file)
    assert DEFAULT_CACHE.hits == 1
    DEFAULT_CACHE.clear()


def test_cache_respects_a_smaller_case_limit(spec_file: Path) -> None:
    cache = SpecCache()
    assert len(load_vnnlib(spec_file, cache=cache).cases) == 3
    with pytest.raises(VnnlibError, match="more than 2 cases"):
        load_vnnlib(spec_file, cache=cache, max_cases=2)
    np.testing.assert_array_equal(load_vnnlib(spec_file, cache=cache).cases[1].d, [-3.0, -2.0])


def test_disk_round_trip_of_a_spec_without_cases(tmp_path: Path) -> None:
    text = "(declare-const X_0 Real)(declare-const Y_0 Real)(assert (>= X_0 1))(assert (<= X_0 0))"
    spec = parse_vnnlib(text, "empty")
    assert spec.cases == ()
    write_disk(tmp_path, "k", spec)
    again = read_disk(tmp_path, "k")
    assert again == spec and (again.n_inputs, again.n_outputs) == (1, 1)


def test_stale_format_entry_is_ignored(spec_file: Path, tmp_path: Path) -> None:
    key = content_key(spec_file.read_bytes())
    write_disk(tmp_path, key, parse_vnnlib(TEXT, "x"))
    path = tmp_path / f"{key}.npz"
    with np.load(path) as data:
        arrays = dict(data)
    arrays["format"] = np.array("some-older-format")
    np.savez(path, **arrays)
    assert read_disk(tmp_path, key) is None
