"""Whole-file outputs written atomically (a temporary file, then a rename) and plain-or-gzipped text handles.

Line-by-line, resumable outputs (predictions) go through `gemner.data.writer` instead; this is for files that
are written in one go (converted datasets, knowledge exports), where a crash must leave the old file or the
new one, never half of either.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .issues import DataError


def open_text(path: str | Path, mode: str = "r", *, gzipped: bool | None = None) -> IO[str]:
    """A UTF-8 text handle on a plain or gzipped file (by default chosen by the `.gz` suffix)."""
    path = Path(path)
    if path.suffix == ".gz" if gzipped is None else gzipped:
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


@contextmanager
def atomic_output(path: str | Path, *, binary: bool = False) -> Iterator[IO]:
    """Open `<path>.part` for writing and move it onto `path` only when the block ends without an error,
    so a failed run never leaves a half-written file in place of a good one. Text outputs named `*.gz`
    are gzipped."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an output file")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    try:
        with (open(temporary, "wb") if binary else open_text(temporary, "w", gzipped=path.suffix == ".gz")) as handle:
            yield handle
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
