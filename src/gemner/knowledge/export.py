"""Knowledge JSONL out (what the recogniser's `--knowledge` reads) and back in; `.gz` either way."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..data.userio import read_knowledge  # noqa: F401  (re-exported: the knowledge file reader)
from .cache import ExportRow


def open_text(path: str | Path, mode: str = "r", *, gzipped: bool | None = None) -> IO[str]:
    """A text handle on a plain or gzipped file (by default chosen by the `.gz` suffix)."""
    path = Path(path)
    if path.suffix == ".gz" if gzipped is None else gzipped:
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


@dataclass(frozen=True)
class ExportSummary:
    written: int
    missing: int  # posts without an answer (not written)
    parse_failures: int  # written with the raw reply as knowledge


def write_knowledge(rows: Iterable[ExportRow], output: str | Path) -> ExportSummary:
    """Write `{"id", "knowledge", "caption"}` per answered post; atomically (temp file, then rename)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".part")
    written = missing = parse_failures = 0
    with open_text(temporary, "w", gzipped=output.suffix == ".gz") as handle:
        for row in rows:
            if row.answer is None:
                missing += 1
                continue
            record = {"id": row.post_id, "knowledge": row.answer.explanation, "caption": row.caption}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
            parse_failures += not row.answer.parsed
    os.replace(temporary, output)
    return ExportSummary(written, missing, parse_failures)
