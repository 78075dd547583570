"""Domains of the search as a struct of tensors, and the store that holds them.

A batch of domains is a flat mapping ``key -> Tensor`` whose first dimension is the domain
index; every per-domain quantity (interval overrides of split nodes, alpha and beta, output
bounds, depth, the pending branching decision) is one entry. Concatenating, slicing and
sorting batches are then single tensor operations, never Python loops over domains.

:class:`DomainStore` keeps the open domains as a stack of such batches: LIFO (depth first,
the default) or worst-margin first, with a cap on the bytes held. Pushing past the cap
raises :class:`DomainMemoryError`, which the search turns into ``unknown`` with the reason
``memory`` instead of letting the process be killed.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

__all__ = ["DomainBatch", "DomainMemoryError", "DomainStore", "cat", "size", "take"]

DomainBatch = dict[str, Tensor]

ORDERS = ("lifo", "worst")


class DomainMemoryError(MemoryError):
    """The open domains would exceed the configured memory cap."""


def size(batch: Mapping[str, Tensor]) -> int:
    """Number of domains in ``batch``."""
    for t in batch.values():
        return int(t.shape[0])
    return 0


def nbytes(batch: Mapping[str, Tensor]) -> int:
    """Bytes held by ``batch``'s tensors."""
    return sum(t.numel() * t.element_size() for t in batch.values())


def take(batch: Mapping[str, Tensor], index: Tensor | slice) -> DomainBatch:
    """Domains ``index`` of ``batch`` (a slice keeps views, an index tensor copies)."""
    return {k: v[index] for k, v in batch.items()}


def cat(batches: list[Mapping[str, Tensor]]) -> DomainBatch:
    """Concatenate batches with the same keys."""
    if len(batches) == 1:
        return dict(batches[0])
    keys = batches[0].keys()
    return {k: torch.cat([b[k] for b in batches]) for k in keys}


class DomainStore:
    """Open domains: push children, pop the next batch.

    Args:
        order: "lifo" (the last pushed domains first: depth first, little memory) or
            "worst" (the domains with the smallest margin first).
        max_bytes: cap on the bytes held; a push beyond it raises
            :class:`DomainMemoryError`.
        margin_key: the ``[N]`` entry ordering "worst" (smaller is worse).
    """

    def __init__(self, order: str = "lifo", max_bytes: int = 1 << 32, margin_key: str = "margin"):
        if order not in ORDERS:
            raise ValueError(f"domain order must be one of {', '.join(ORDERS)}, got {order!r}")
        self.order = order
        self.max_bytes = max_bytes
        self.margin_key = margin_key
        self._chunks: list[DomainBatch] = []
        self._count = 0
        self._bytes = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes currently held."""
        return self._bytes

    def push(self, batch: Mapping[str, Tensor]) -> None:
        """Add domains (a batch with no domain is ignored)."""
        n = size(batch)
        if n == 0:
            return
        add = nbytes(batch)
        if self._bytes + add > self.max_bytes:
            raise DomainMemoryError(
                f"{self._count + n} open domains would take {(self._bytes + add) / 2**20:.0f} MiB "
                f"(cap {self.max_bytes / 2**20:.0f} MiB)"
            )
        self._chunks.append(dict(batch))
        self._count += n
        self._bytes += add

    def chunks(self) -> list[DomainBatch]:
        """The stored domains as they are kept (read them, do not change them)."""
        return list(self._chunks)

    def pop(self, k: int) -> DomainBatch:
        """Remove and return up to ``k`` domains (the next ones in the store's order)."""
        if self._count == 0 or k <= 0:
            return {}
        if self.order == "worst" and len(self._chunks) > 1:
            merged = cat(self._chunks)
            order = torch.argsort(merged[self.margin_key], descending=True)
            self._chunks = [take(merged, order)]
        taken: list[DomainBatch] = []
        need = k
        while need > 0 and self._chunks:
            last = self._chunks[-1]
            n = size(last)
            if n <= need:
                taken.append(self._chunks.pop())
                need -= n
            else:
                taken.append({key: v[n - need :].clone() for key, v in last.items()})
                self._chunks[-1] = {key: v[: n - need] for key, v in last.items()}
                need = 0
        out = cat(taken)
        self._count -= size(out)
        self._bytes = sum(nbytes(c) for c in self._chunks)
        return out

    def open_mass(self, depth_key: str = "depth") -> float:
        """``sum 2^-depth`` over the open domains: the share of the search tree (each
        split halves its parent's share) that is not verified yet."""
        return sum(float(torch.exp2(-c[depth_key].double()).sum()) for c in self._chunks if size(c))

    def worst(self) -> float:
        """The smallest margin among open domains (``inf`` when empty)."""
        vals = [c[self.margin_key].min() for c in self._chunks if size(c)]
        return float(torch.stack(vals).min()) if vals else float("inf")
