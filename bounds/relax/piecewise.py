"""Placeholder: relaxations are being written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .base import UnaryRelaxation

RELAXATIONS: dict[str, Callable[[Mapping[str, Any]], UnaryRelaxation]] = {}
