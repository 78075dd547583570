"""Shared test fixtures for the verifier tests: a tiny linear ONNX model and specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

W = np.array([[-1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
B = np.array([1.9, 0.0], dtype=np.float32)


def write_model(path: Path, op: str = "Add") -> Path:
    """y = W x + b; on [0, 1]^2, Y_0 <= Y_1 iff x0 + x1 >= 1.9."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    nodes = [
        helper.make_node("MatMul", ["x", "Wt"], ["h"]),
        helper.make_node(op, ["h", "b"], ["y"]),
    ]
    inits = [numpy_helper.from_array(W.T.copy(), "Wt"), numpy_helper.from_array(B, "b")]
    graph = helper.make_graph(nodes, "linear", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def spec_text(n_in: int = 2, n_out: int = 2, hi: float = 1.0, out: str = "(<= Y_0 Y_1)") -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i in range(n_in):
        lines += [f"(assert (>= X_{i} 0.0))", f"(assert (<= X_{i} {hi}))"]
    lines.append(f"(assert {out})")
    return "\n".join(lines) + "\n"
