"""Op registry of the bounds engine.

``REGISTRY`` is the default, populated at import and read-only afterwards;
:class:`Registry` objects can be copied and extended and passed to the engine
(``BoundGraph(graph, registry=...)``). A new op is one :class:`OpDef` in
``declarations.py`` (plus its forward in ``models.evaluate`` and, if nonlinear,
a relaxation in ``bounds.relax``); ``tests/bounds/test_ops_soundness.py`` picks
it up from the registry with no extra test code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..types import BoundsError
from .base import IntervalRule, OpDef, OpExample, OpKind
from .declarations import DECLARATIONS


class MissingBoundRuleError(BoundsError):
    """No bound rule is registered for an op (an internal gap: the front-end's one
    :class:`models.UnsupportedOpError` is what users see for ops we do not support)."""


class Registry:
    """A name -> :class:`OpDef` mapping with helpful errors."""

    def __init__(self, defs: Iterable[OpDef] = ()) -> None:
        self._defs: dict[str, OpDef] = {}
        for d in defs:
            self.register(d)

    def register(self, op: OpDef) -> OpDef:
        self._defs[op.name] = op
        return op

    def get(self, name: str, *, node: str = "") -> OpDef:
        try:
            return self._defs[name]
        except KeyError:
            where = f" (node {node!r})" if node else ""
            raise MissingBoundRuleError(
                f"no bound rule for op {name!r}{where}; supported: {', '.join(sorted(self._defs))}"
            ) from None

    def copy(self) -> Registry:
        return Registry(self._defs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._defs

    def __iter__(self) -> Iterator[OpDef]:
        return iter(self._defs.values())

    def names(self) -> list[str]:
        return sorted(self._defs)


REGISTRY = Registry(DECLARATIONS)

__all__ = [
    "REGISTRY",
    "IntervalRule",
    "OpDef",
    "OpExample",
    "OpKind",
    "Registry",
    "MissingBoundRuleError",
]
