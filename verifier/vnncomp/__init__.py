"""VNN-COMP harness: ``prepare`` (convert and cache, never verify) and ``run`` (one instance).

The competition scripts in ``verifier/vnncomp/scripts`` are thin wrappers over
``python -m verifier.vnncomp prepare|run ...``; see :mod:`verifier.vnncomp.harness`.
"""

from verifier.vnncomp.harness import (
    CacheDir,
    PrepareReport,
    category_profile,
    prepare_instance,
    run_instance,
)

__all__ = ["CacheDir", "PrepareReport", "category_profile", "prepare_instance", "run_instance"]
