"""Public entry points: ``parse_vnnlib`` (text) and ``load_vnnlib`` (file, cached)."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
from collections.abc import Iterator
from pathlib import Path

from vnnlib.cache import SpecCache, content_key, read_disk, write_disk
from vnnlib.errors import SpecShapeError
from vnnlib.files import decode, read_bytes
from vnnlib.normalize import DEFAULT_MAX_CASES, normalize
from vnnlib.parser import parse
from vnnlib.spec import Spec

logger = logging.getLogger(__name__)

#: The process-wide in-memory cache used by ``load_vnnlib`` unless one is passed.
DEFAULT_CACHE = SpecCache()


def parse_vnnlib(
    text: str, source: str = "<string>", *, max_cases: int = DEFAULT_MAX_CASES
) -> Spec:
    """Parse VNN-LIB text into a normalised ``Spec`` (no caching).

    Args:
        text: the VNN-LIB source.
        source: name used in error messages and stored in ``Spec.source``.
        max_cases: the largest number of disjunctive-normal-form cases accepted.

    Raises:
        VnnlibError: the text is malformed, unsupported, or too large.
    """
    with cyclic_gc_paused():
        return normalize(parse(text, source), max_cases)


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (if enabled) for the duration of the block.

    Parsing allocates millions of small tuples for large specs and creates no reference
    cycles, so the collector's repeated scans of the growing heap are pure overhead (about
    45% of the time on a 20 MB spec). Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_vnnlib(
    path: str | Path,
    *,
    n_inputs: int | None = None,
    n_outputs: int | None = None,
    cache_dir: str | Path | None = None,
    cache: SpecCache | None = None,
    max_cases: int = DEFAULT_MAX_CASES,
) -> Spec:
    """Load a ``.vnnlib`` (or gzip-compressed ``.vnnlib.gz``) file, with caching.

    Specs are cached by the sha256 of the file's bytes: first in memory, then, when
    ``cache_dir`` is given, on disk. A changed file has a new hash and is parsed again.

    Args:
        path: the spec file.
        n_inputs: the model's flattened input size, checked against the declared X_i.
        n_outputs: the model's flattened output size, checked against the declared Y_j.
        cache_dir: optional directory for on-disk cache entries (created if missing).
        cache: the in-memory cache to use (default: the process-wide ``DEFAULT_CACHE``).
        max_cases: the largest number of disjunctive-normal-form cases accepted.

    Returns:
        The spec, with ``source`` set to ``str(path)``.

    Raises:
        VnnlibError: the file is missing, unreadable or malformed.
        SpecShapeError: the declared sizes differ from ``n_inputs``/``n_outputs``.
    """
    source = str(path)
    data = read_bytes(path)
    key = content_key(data)
    memory = DEFAULT_CACHE if cache is None else cache
    spec = memory.get(key)
    if spec is None and cache_dir is not None:
        spec = read_disk(Path(cache_dir), key)
        if spec is not None:
            memory.put(key, spec)
    if spec is None or len(spec.cases) > max_cases:
        spec = parse_vnnlib(decode(data, source), source, max_cases=max_cases)
        memory.put(key, spec)
        if cache_dir is not None:
            _store(Path(cache_dir), key, spec)
    if spec.source != source:
        spec = dataclasses.replace(spec, source=source)
    check_shape(spec, n_inputs, n_outputs)
    return spec


def _store(cache_dir: Path, key: str, spec: Spec) -> None:
    """Write a disk cache entry; a failure only costs a re-parse later, so just log it."""
    try:
        write_disk(cache_dir, key, spec)
    except OSError as exc:
        logger.warning("could not write spec cache entry in %s: %s", cache_dir, exc)


def check_shape(spec: Spec, n_inputs: int | None, n_outputs: int | None) -> None:
    """Check the declared variable counts against a model's sizes.

    Raises:
        SpecShapeError: a count differs (the message names both sizes).
    """
    for expected, declared, word, letter in (
        (n_inputs, spec.n_inputs, "inputs", "X"),
        (n_outputs, spec.n_outputs, "outputs", "Y"),
    ):
        if expected is not None and expected != declared:
            names = f"{letter}_0..{letter}_{declared - 1}" if declared else f"no {letter}_i"
            raise SpecShapeError(
                spec.source,
                None,
                None,
                f"spec declares {declared} {word} {names} but the model has {expected}",
            )
