"""Reading spec and counterexample files: plain or gzip-compressed UTF-8 text."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from vnnlib.errors import VnnlibError

_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str | Path) -> bytes:
    """The raw bytes of ``path``.

    Raises:
        VnnlibError: the file does not exist or cannot be read (message names the path).
    """
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise VnnlibError(str(path), None, None, "file not found") from None
    except IsADirectoryError:
        raise VnnlibError(str(path), None, None, "is a directory, not a file") from None
    except OSError as exc:
        raise VnnlibError(str(path), None, None, f"cannot read file: {exc.strerror}") from exc


def decode(data: bytes, source: str) -> str:
    """Text of a file's bytes: gunzipped when gzip-compressed, then UTF-8 decoded.

    Compression is detected from the content (gzip magic bytes), so ``.vnnlib.gz`` files
    and mislabelled files both work. A leading byte-order mark is dropped.

    Raises:
        VnnlibError: corrupt gzip data, or bytes that are not UTF-8 (located by line/col).
    """
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise VnnlibError(source, None, None, f"corrupt gzip data: {exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise VnnlibError(source, line, col, f"the file is not UTF-8 text ({exc.reason})") from None
    return text[1:] if text.startswith("\ufeff") else text


def read_text(path: str | Path) -> str:
    """``decode(read_bytes(path))``."""
    return decode(read_bytes(path), str(path))
