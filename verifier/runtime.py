"""Process-level torch settings, applied in one context manager at entry and restored after.

Nothing here runs at import time. Inside ``runtime_context(cfg)``:

* torch's global RNGs are seeded with ``cfg.seed`` (their previous state is restored on exit);
* the default floating dtype is ``cfg.dtype``;
* with ``cfg.deterministic``: TF32 matmuls are disabled (``float32_matmul_precision =
  "highest"``) and, on CUDA, deterministic algorithms are requested (warn-only, so ops
  without a deterministic kernel still run) with cuDNN benchmarking off. On CPU the
  deterministic-algorithms switch is left alone: torch's CPU kernels used here are
  deterministic already, and flipping the switch imports torch's compiler stack (seconds).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from verifier.config import InputError, RuntimeConfig

__all__ = ["Runtime", "resolve_device", "runtime_context"]

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True, slots=True)
class Runtime:
    """The resolved device and dtype every tensor of a run uses."""

    device: torch.device
    dtype: torch.dtype


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``.

    Raises:
        InputError: CUDA was requested but is not available (or the index does not exist).
    """
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s)"
            )
    return device


@contextlib.contextmanager
def runtime_context(cfg: RuntimeConfig) -> Iterator[Runtime]:
    """Apply ``cfg`` to torch for the duration of the block and yield the resolved Runtime.

    Raises:
        InputError: the requested device is unavailable (raised before anything changes).
    """
    device = resolve_device(cfg.device)
    dtype = _DTYPES[cfg.dtype]
    saved_dtype = torch.get_default_dtype()
    saved_precision = torch.get_float32_matmul_precision()
    cuda_devices = [device] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=cuda_devices),
        _cuda_determinism(cfg.deterministic and device.type == "cuda"),
    ):
        try:
            torch.manual_seed(cfg.seed)
            torch.set_default_dtype(dtype)
            if cfg.deterministic:
                torch.set_float32_matmul_precision("highest")
            log.debug("runtime: device=%s dtype=%s seed=%d", device, cfg.dtype, cfg.seed)
            yield Runtime(device=device, dtype=dtype)
        finally:
            torch.set_default_dtype(saved_dtype)
            torch.set_float32_matmul_precision(saved_precision)


@contextlib.contextmanager
def _cuda_determinism(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms (warn-only) and no cuDNN benchmarking, restored after."""
    if not enabled:
        yield
        return
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2:]
