"""Small deterministic test networks, exported to ONNX, each with a VNN-LIB spec.

Public API:

* ``ZOO``: network name -> ``ZooEntry`` (builder, input shape, description, spec settings).
* ``build(name)``: the deterministic torch module.
* ``export(name, out_dir)`` / ``export_all(out_dir)``: write ``<name>.onnx`` and
  ``<name>.vnnlib``; return the ONNX paths.
* ``data_dir()``, ``zoo_model_path(name)``, ``zoo_spec_path(name)``: the shipped files
  in ``models/zoo_data`` (regenerate them with ``python -m models.zoo``).

Note: the name ``export`` on this package is the function, not the ``export`` submodule;
import the module's other names with ``from models.zoo.export import ...``.
"""

from models.zoo.export import (
    data_dir,
    export,
    export_all,
    make_spec,
    zoo_model_path,
    zoo_spec_path,
)
from models.zoo.networks import ZOO, UnknownNetworkError, ZooEntry, build, get_entry
from models.zoo.specs import residual_spec, robustness_spec

__all__ = [
    "ZOO",
    "UnknownNetworkError",
    "ZooEntry",
    "build",
    "data_dir",
    "export",
    "export_all",
    "get_entry",
    "make_spec",
    "residual_spec",
    "robustness_spec",
    "zoo_model_path",
    "zoo_spec_path",
]
