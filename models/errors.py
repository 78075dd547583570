"""Errors raised while loading a model into our graph IR."""

from __future__ import annotations

from collections.abc import Iterable


class ModelLoadError(ValueError):
    """A model file cannot be loaded (missing, not ONNX, invalid, dynamic shapes).

    The message always names the file.
    """


class UnsupportedOpError(ModelLoadError):
    """The model uses an ONNX op, attribute or input form that we do not support.

    Attributes:
        path: the model file.
        node: the ONNX node name (or its first output when unnamed).
        op_type: the ONNX op type.
        reason: what exactly is unsupported.
    """

    def __init__(
        self, path: str, node: str, op_type: str, reason: str, supported: Iterable[str]
    ) -> None:
        self.path = path
        self.node = node
        self.op_type = op_type
        self.reason = reason
        listed = ", ".join(sorted(supported))
        super().__init__(
            f"{path}: node {node!r} (op {op_type}): {reason}. "
            f"Supported ONNX ops: {listed} (any op whose inputs are all constants is "
            "evaluated at import)."
        )
