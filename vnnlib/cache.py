"""Parsed-spec cache keyed by the sha256 of the file content.

Two levels: an in-memory LRU (``SpecCache``; one process-wide instance is used by
``load_vnnlib``) and an optional on-disk directory passed explicitly. Disk entries are
``<sha256>.npz`` files holding plain arrays (no pickle, so a shared cache directory
cannot execute code), written atomically (temporary file + ``os.replace``). An entry
whose format version or key does not match, or that cannot be read, is ignored and
rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from vnnlib.spec import Spec, SpecCase

logger = logging.getLogger(__name__)

#: Bump when the parser's semantics or the disk layout change; older entries are ignored.
CACHE_FORMAT = "nlverify-vnnlib-1"
DEFAULT_CAPACITY = 64


def content_key(data: bytes) -> str:
    """The cache key of a file's raw bytes (hex sha256, salted with the format)."""
    return hashlib.sha256(CACHE_FORMAT.encode() + b"\0" + data).hexdigest()


class SpecCache:
    """A thread-safe in-memory LRU of parsed specs, keyed by ``content_key``.

    Args:
        capacity: the most specs kept; the least recently used is evicted first.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[str, Spec] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Spec | None:
        """The spec stored under ``key`` (marked most recently used), or None."""
        with self._lock:
            spec = self._entries.get(key)
            if spec is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return spec

    def put(self, key: str, spec: Spec) -> None:
        """Store ``spec`` under ``key``, evicting the least recently used if full."""
        with self._lock:
            self._entries[key] = spec
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


def _pack(spec: Spec, key: str) -> dict[str, np.ndarray]:
    """Flatten a spec into plain arrays (each distinct box stored once)."""
    n_in, n_out = spec.n_inputs, spec.n_outputs
    box_index: dict[tuple[bytes, bytes], int] = {}
    lowers: list[np.ndarray] = []
    uppers: list[np.ndarray] = []
    case_box = []
    for case in spec.cases:
        g = box_index.setdefault((case.lower.tobytes(), case.upper.tobytes()), len(lowers))
        if g == len(lowers):
            lowers.append(case.lower)
            uppers.append(case.upper)
        case_box.append(g)
    return {
        "format": np.array(CACHE_FORMAT),
        "key": np.array(key),
        "source": np.array(spec.source),
        "shape": np.array([n_in, n_out], dtype=np.int64),
        "box_lower": np.array(lowers, dtype=np.float64).reshape(len(lowers), n_in),
        "box_upper": np.array(uppers, dtype=np.float64).reshape(len(uppers), n_in),
        "case_box": np.array(case_box, dtype=np.int64),
        "case_rows": np.array([case.C.shape[0] for case in spec.cases], dtype=np.int64),
        "C": np.concatenate([case.C for case in spec.cases] or [np.zeros((0, n_out))]),
        "d": np.concatenate([case.d for case in spec.cases] or [np.zeros(0)]),
    }


def _unpack(arrays: dict[str, np.ndarray]) -> Spec:
    """Rebuild a spec from ``_pack``'s arrays (boxes shared between cases again)."""
    n_in, n_out = (int(v) for v in arrays["shape"])
    lowers = [_ro(row) for row in arrays["box_lower"]]
    uppers = [_ro(row) for row in arrays["box_upper"]]
    C, d = _ro(arrays["C"]), _ro(arrays["d"])
    ends = np.cumsum(arrays["case_rows"])
    starts = ends - arrays["case_rows"]
    cases = tuple(
        SpecCase(lowers[g], uppers[g], C[s:e], d[s:e])
        for g, s, e in zip(arrays["case_box"].tolist(), starts.tolist(), ends.tolist(), strict=True)
    )
    return Spec(cases, n_in, n_out, str(arrays["source"]))


def _ro(a: np.ndarray) -> np.ndarray:
    """A contiguous read-only float64 copy or view of ``a``."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def read_disk(cache_dir: Path, key: str) -> Spec | None:
    """The spec cached on disk under ``key``, or None if absent, stale or unreadable."""
    path = Path(cache_dir) / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        if str(arrays["format"]) != CACHE_FORMAT or str(arrays["key"]) != key:
            logger.info("ignoring stale spec cache entry %s", path)
            return None
        return _unpack(arrays)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        logger.warning("ignoring unreadable spec cache entry %s: %s", path, exc)
        return None


def write_disk(cache_dir: Path, key: str, spec: Spec) -> Path:
    """Store ``spec`` under ``key`` atomically; returns the entry's path.

    Raises:
        OSError: the directory cannot be created or written.
    """
    directory = Path(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.npz"
    fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **_pack(spec, key))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)  # only still there if writing failed
    return path
