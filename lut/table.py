"""The lookup-table type: grid, stored split fractions, metadata, file format, lookup.

A table stores, at every node of its :class:`~lut.grid.Grid`, the optimal split
position as a fraction ``t`` of the (reduced) interval, quantised to ``uint16``
(``t = value / 65534``, so 0.5 is exact). Nodes that are not intervals (lower end >= upper end)
hold 0.5.

File format (schema :data:`SCHEMA_VERSION`), deterministic so that rebuilding
reproduces a file bit for bit::

    MAGIC | uint32 little-endian header length | UTF-8 JSON header (sorted keys)
          | zlib(level 9) of the uint16 values, delta-encoded along the last axis

The header holds the grid, the metadata and a SHA-256 checksum over the header
(without the checksum) and the raw values.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import REBUILD_COMMAND, CorruptTableError, StaleTableError
from .grid import Grid

SCHEMA_VERSION = 1
MAGIC = b"NLVLUT\r\n"
QUANT = 65534  # even, so that the midpoint 0.5 is stored exactly
MODES = ("interp", "inner")
JUMP = 0.2


@dataclass(frozen=True)
class TableMeta:
    """What a table holds and how it was made.

    Attributes:
        name: table name, the ONNX-style op name (``"Sigmoid"``, ``"Pow2"``, ``"Mul"``).
        kind: ``"unary"`` (one interval) or ``"mul"`` (``x*y``; ``x`` is split).
        objective: description of the minimised quantity.
        optimiser: parameters of :func:`lut.objective.optimise_fraction`.
        fingerprint: relaxation outputs on fixed probe intervals (``{"inputs":
            [[...]], "outputs": [[...]]}``), used to detect a changed relaxation.
        schema_version: file-format version.
    """

    name: str
    kind: str
    objective: str
    optimiser: dict[str, int]
    fingerprint: dict[str, list[list[float]]] | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "objective": self.objective,
            "optimiser": dict(self.optimiser),
            "fingerprint": self.fingerprint,
            "schema_version": self.schema_version,
        }


@dataclass(frozen=True, eq=False)
class LookupTable:
    """Split fractions on a grid of reduced interval endpoints (see module docstring)."""

    grid: Grid
    values: np.ndarray
    meta: TableMeta
    _cache: dict[tuple[str, torch.dtype], Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.values.dtype != np.uint16 or self.values.shape != self.grid.shape:
            raise ValueError(
                f"table {self.meta.name!r}: values must be uint16 of shape {self.grid.shape}, "
                f"got {self.values.dtype} {self.values.shape}"
            )
        self.values.setflags(write=False)

    @property
    def name(self) -> str:
        return self.meta.name

    def same_as(self, other: LookupTable) -> bool:
        """Same grid, same stored fractions and the same metadata, the fingerprint's floats
        up to a relative 1e-12: its probe points go through ``exp`` of the grid's log axes,
        whose last bit differs between numpy releases (the fractions do not)."""
        mine, theirs = self.meta.to_dict(), other.meta.to_dict()
        fp_a, fp_b = mine.pop("fingerprint"), theirs.pop("fingerprint")
        if mine != theirs or self.grid != other.grid:
            return False
        if not np.array_equal(self.values, other.values):
            return False
        if fp_a is None or fp_b is None:
            return fp_a is fp_b
        if fp_a.keys() != fp_b.keys():
            return False
        for key in fp_a:
            a, b = np.asarray(fp_a[key], np.float64), np.asarray(fp_b[key], np.float64)
            if a.shape != b.shape or not np.allclose(a, b, rtol=1e-12, atol=0.0):
                return False
        return True

    @property
    def checksum(self) -> str:
        """SHA-256 over the canonical header (without checksum) and the values."""
        return _checksum(self._header_body(), self.values)

    def _header_body(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "grid": self.grid.to_dict(),
            "meta": self.meta.to_dict(),
            "shape": list(self.grid.shape),
            "dtype": "uint16",
            "encoding": "delta-last-axis+zlib9",
        }

    def to_bytes(self) -> bytes:
        """The deterministic file representation."""
        header = dict(self._header_body(), checksum=self.checksum)
        head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        delta = np.diff(self.values.astype("<u2"), axis=-1, prepend=np.uint16(0))
        body = zlib.compress(delta.astype("<u2").tobytes(), 9)
        return MAGIC + struct.pack("<I", len(head)) + head + body

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> LookupTable:
        """Parse and verify a table; raises :class:`StaleTableError` on a schema mismatch
        and :class:`CorruptTableError` on a bad file or checksum."""
        header, body = _split_file(data, source)
        version = header.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StaleTableError(
                f"table {source}: schema version {version}, this code reads {SCHEMA_VERSION}; "
                f"rebuild with `{REBUILD_COMMAND}`"
            )
        try:
            grid = Grid.from_dict(header["grid"])
            meta = TableMeta(**header["meta"])
            raw = np.frombuffer(zlib.decompress(body), dtype="<u2").reshape(header["shape"])
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise CorruptTableError(f"table {source}: unreadable ({exc})") from exc
        values = np.cumsum(raw, axis=-1, dtype=np.uint16).astype(np.uint16)
        body_header = {k: v for k, v in header.items() if k != "checksum"}
        if _checksum(body_header, values) != header.get("checksum"):
            raise CorruptTableError(
                f"table {source}: checksum mismatch; rebuild with `{REBUILD_COMMAND}`"
            )
        return cls(grid, values, meta)

    def fractions_on(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The flattened fractions as a tensor on ``device`` (memoised)."""
        key = (str(device), dtype)
        if key not in self._cache:
            flat = torch.from_numpy(self.values.astype(np.float64).ravel() / QUANT)
            self._cache[key] = flat.to(device=device, dtype=dtype)
        return self._cache[key]

    def contains(self, keys: list[Tensor]) -> Tensor:
        """Mask of elements whose reduced endpoints all lie within the grid."""
        mask = torch.ones_like(keys[0], dtype=torch.bool)
        for axis, key in zip(self.grid.axes, keys, strict=True):
            mask &= axis.contains(key) & torch.isfinite(key)
        return mask

    def lookup(self, keys: list[Tensor], mode: str = "interp") -> Tensor:
        """Split fraction of the first interval, relative to that reduced interval.

        Args:
            keys: axis coordinates of the reduced intervals (:meth:`Grid.key_values`),
                one tensor per axis, all of one shape; only elements inside the grid.
            mode: ``"interp"``: multilinear interpolation of the stored fractions
                (across a jump of the optimum, the nearest corner's value);
                ``"inner"``: the reference rule, the optimum of the inner grid
                interval (lower ends rounded up, upper ends down; for centre/width
                keys the nearest centre and the width rounded down) used as an
                absolute point; intervals narrower than one grid step get 0.5.

        Returns:
            fractions in ``[0, 1]`` with the shape of the keys.
        """
        if mode not in MODES:
            raise ValueError(f"lookup mode {mode!r} not in {MODES}")
        if mode == "interp":
            return self._interp(keys)
        return self._inner(keys)

    def _strides(self) -> list[int]:
        return [int(s) // self.values.itemsize for s in self.values.strides]

    def corners(self, keys: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Stored fractions at the grid cell's corners and their multilinear weights.

        Returns:
            ``(values, weights)``, each of shape ``[2**m, *keys[0].shape]`` where ``m``
            is the number of axes with more than one node; weights sum to 1.
        """
        flat = self.fractions_on(keys[0].device, keys[0].dtype)
        base = torch.zeros_like(keys[0], dtype=torch.long)
        moving: list[tuple[int, Tensor]] = []
        for axis, key, stride in zip(self.grid.axes, keys, self._strides(), strict=True):
            if axis.count == 1:
                continue
            c = axis.coord(key).clamp(0.0, axis.count - 1.0)
            i0 = torch.floor(c).clamp(max=axis.count - 2)
            base = base + i0.long() * stride
            moving.append((stride, c - i0))
        values, weights = [], []
        for corner in range(1 << len(moving)):
            idx, weight = base, torch.ones_like(keys[0])
            for bit, (stride, frac) in enumerate(moving):
                if corner >> bit & 1:
                    idx, weight = idx + stride, weight * frac
                else:
                    weight = weight * (1.0 - frac)
            values.append(flat[idx])
            weights.append(weight)
        return torch.stack(values), torch.stack(weights)

    def _interp(self, keys: list[Tensor]) -> Tensor:
        values, weights = self.corners(keys)
        # Offsets from the first corner: equal corners (e.g. all 0.5) give that value exactly.
        out = values[0] + (weights * (values - values[0])).sum(0)
        # Across a jump of the optimum (two equally good local minima) a blend can land
        # on the maximum in between: take the nearest corner's value there instead.
        jump = (values.amax(0) - values.amin(0)) > JUMP
        nearest = values.gather(0, weights.argmax(0, keepdim=True)).squeeze(0)
        return torch.where(jump, nearest, out).clamp(0.0, 1.0)

    def _inner(self, keys: list[Tensor]) -> Tensor:
        flat = self.fractions_on(keys[0].device, keys[0].dtype)
        idx = torch.zeros_like(keys[0], dtype=torch.long)
        centre_width = [k == "centre_width" for k in self.grid.keys]
        nodes_at: list[Tensor] = []
        for k, (axis, key, stride) in enumerate(
            zip(self.grid.axes, keys, self._strides(), strict=True)
        ):
            c = axis.coord(key)
            if centre_width[k // 2]:
                i = torch.round(c) if k % 2 == 0 else torch.floor(c + 1e-6)
            else:
                i = torch.ceil(c - 1e-6) if k % 2 == 0 else torch.floor(c + 1e-6)
            i = i.clamp(0, axis.count - 1).long()
            idx = idx + i * stride
            if k < 2:
                nodes = torch.as_tensor(axis.nodes(), device=key.device, dtype=key.dtype)
                nodes_at.append(nodes[i])
        if centre_width[0]:
            l, u = keys[0] - keys[1] / 2, keys[0] + keys[1] / 2
            gl, gu = nodes_at[0] - nodes_at[1] / 2, nodes_at[0] + nodes_at[1] / 2
        else:
            (l, u), (gl, gu) = keys[:2], nodes_at
        t = (gl + flat[idx] * (gu - gl) - l) / (u - l)
        return torch.where(gu > gl, t, torch.full_like(t, 0.5)).clamp(0.0, 1.0)


def _checksum(header_body: dict[str, Any], values: np.ndarray) -> str:
    h = hashlib.sha256(json.dumps(header_body, sort_keys=True, separators=(",", ":")).encode())
    h.update(np.ascontiguousarray(values, dtype="<u2").tobytes())
    return h.hexdigest()


def _split_file(data: bytes, source: str) -> tuple[dict[str, Any], bytes]:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise CorruptTableError(f"table {source}: not a lookup-table file")
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        header = json.loads(data[start : start + n].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptTableError(f"table {source}: bad header ({exc})") from exc
    if not isinstance(header, dict):
        raise CorruptTableError(f"table {source}: bad header")
    return header, data[start + n :]
