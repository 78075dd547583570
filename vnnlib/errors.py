"""Exceptions raised by the VNN-LIB parser, normaliser, loader and witness reader."""

from __future__ import annotations


class VnnlibError(ValueError):
    """A VNN-LIB (or counterexample) text is malformed or unsupported.

    The message always starts with the location, ``"{source}:{line}:{col}: "``, or
    ``"{source}: "`` when the problem has no single place in the text (a missing
    file, a shape mismatch). Lines and columns are 1-based.

    Attributes:
        source: the file name or ``"<string>"``.
        line: 1-based line number, or ``None``.
        col: 1-based column number, or ``None``.
        what: the bare description, without the location prefix.
    """

    def __init__(self, source: str, line: int | None, col: int | None, what: str) -> None:
        self.source = source
        self.line = line
        self.col = col
        self.what = what
        if line is None:
            where = source
        else:
            where = f"{source}:{line}:{col}"
        super().__init__(f"{where}: {what}")

    def __reduce__(self) -> tuple[type, tuple[str, int | None, int | None, str]]:
        return (type(self), (self.source, self.line, self.col, self.what))


class SpecShapeError(VnnlibError):
    """The spec declares a different number of inputs/outputs than the model has."""
