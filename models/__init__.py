"""What the network is: our immutable graph IR, ONNX import, passes, evaluation.

Public API:

* :func:`load_onnx` -- ONNX file -> :class:`Graph` (canonical ops of ``models.ops``);
* :func:`evaluate` / :func:`evaluate_all` -- batched, differentiable torch evaluation;
* :class:`ModelLoadError` / :class:`UnsupportedOpError` -- load failures.
"""

from .errors import ModelLoadError, UnsupportedOpError
from .evaluate import FORWARD, constant_tensors, evaluate, evaluate_all
from .graph import Graph, GraphError, Node, ValueInfo
from .onnx_import import SUPPORTED_ONNX_OPS, load_onnx
from .ops import SUPPORTED_OPS

__all__ = [
    "FORWARD",
    "SUPPORTED_ONNX_OPS",
    "SUPPORTED_OPS",
    "Graph",
    "GraphError",
    "ModelLoadError",
    "Node",
    "UnsupportedOpError",
    "ValueInfo",
    "constant_tensors",
    "evaluate",
    "evaluate_all",
    "load_onnx",
]
