"""Evaluation of ONNX nodes whose inputs are all constants (constant folding).

Shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, the
ConstantOfShape/Equal/Where/Expand chains of exported PyTorch code) and weight
transforms are computed here at import with ``onnx.reference`` (Constant nodes
directly), so the canonical graph only contains computations on the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Errors the reference evaluator raises for nodes it cannot evaluate.
FOLD_ERRORS = (NotImplementedError, RuntimeError, TypeError, ValueError, IndexError, KeyError)


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value of a ``Constant`` node given as a dense attribute (None otherwise)."""
    if len(node.attribute) != 1:
        return None
    attr = node.attribute[0]
    value = helper.get_attribute_value(attr)
    if attr.name == "value":
        return numpy_helper.to_array(value)
    if attr.name == "value_float":
        return np.array(value, dtype=np.float32)
    if attr.name == "value_floats":
        return np.array(value, dtype=np.float32)
    if attr.name in ("value_int", "value_ints"):
        return np.array(value, dtype=np.int64)
    return None


def fold_node(
    node: onnx.NodeProto, inputs: Mapping[str, np.ndarray], opset: int
) -> Sequence[np.ndarray | None]:
    """Outputs of ``node`` evaluated on constant ``inputs`` (name -> array).

    Raises:
        One of ``FOLD_ERRORS`` when the reference evaluator cannot run the node.
    """
    if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
        value = _constant_value(node)
        if value is not None:
            return [value]
    graph = helper.make_graph(
        [node],
        "fold",
        [helper.make_value_info(name, onnx.TypeProto()) for name in inputs],
        [helper.make_value_info(name, onnx.TypeProto()) for name in node.output if name],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    results = ReferenceEvaluator(model).run(None, dict(inputs))
    values = iter(results)
    return [np.asarray(next(values)) if name else None for name in node.output]
