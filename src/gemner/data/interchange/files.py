"""Whole-file outputs of the converters, written atomically (a temporary file, then a rename), and
the counts every converter reports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..issues import DataError


@dataclass
class Counts:
    """What one conversion wrote; every item left out is also named in the run's `IssueLog`."""

    posts: int = 0
    entities: int = 0
    boxes: int = 0
    skipped_posts: int = 0
    skipped_entities: int = 0
    skipped_boxes: int = 0

    def summary(self) -> str:
        left_out = [f"{n} {what}" for n, what in ((self.skipped_posts, "posts"), (self.skipped_entities, "entities"),
                                                   (self.skipped_boxes, "boxes")) if n]
        text = f"{self.posts} posts, {self.entities} entities, {self.boxes} boxes"
        return text + (f" ({', '.join(left_out)} left out)" if left_out else "")


@contextmanager
def atomic_output(path: str | Path, *, binary: bool = False) -> Iterator[IO]:
    """Open `<path>.part` for writing and move it onto `path` only when the block ends without an error,
    so a failed conversion never leaves a half-written file in place of a good one."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an output file")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    try:
        with open(temporary, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
            yield handle
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
