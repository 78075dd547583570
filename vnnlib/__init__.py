"""VNN-LIB specifications: parsing, normalisation to DNF, caching, counterexamples.

Typical use::

    from vnnlib import load_vnnlib

    spec = load_vnnlib("prop.vnnlib", n_inputs=784, n_outputs=10)
    for lower, upper, polytopes in spec.groups():
        ...  # bound the box once; the property is violated iff some C @ y <= d holds

See ``vnnlib.spec`` for the sign convention (cases describe violations).
"""

from vnnlib.cache import SpecCache
from vnnlib.errors import SpecShapeError, VnnlibError
from vnnlib.loader import DEFAULT_CACHE, check_shape, load_vnnlib, parse_vnnlib
from vnnlib.normalize import DEFAULT_MAX_CASES
from vnnlib.spec import Spec, SpecCase
from vnnlib.witness import format_counterexample, parse_counterexample, read_counterexample

__all__ = [
    "DEFAULT_CACHE",
    "DEFAULT_MAX_CASES",
    "Spec",
    "SpecCache",
    "SpecCase",
    "SpecShapeError",
    "VnnlibError",
    "check_shape",
    "format_counterexample",
    "load_vnnlib",
    "parse_counterexample",
    "parse_vnnlib",
    "read_counterexample",
]
