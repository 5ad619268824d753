"""Knowledge JSONL out (what the recogniser's `--knowledge` reads) and back in; `.gz` either way; the
status of a job in the knowledge cache."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..data.files import atomic_output
from ..data.issues import DataError
from ..data.userio import read_knowledge  # noqa: F401  (re-exported: the knowledge file reader)
from .cache import ExportRow, KnowledgeCache
from .job import CacheStatus, job_status


@dataclass(frozen=True)
class ExportSummary:
    written: int
    missing: int  # posts without an answer (not written)
    parse_failures: int  # written with the raw reply as knowledge


def write_knowledge(rows: Iterable[ExportRow], output: str | Path) -> ExportSummary:
    """Write `{"id", "knowledge", "caption"}` per answered post; atomically (temp file, then rename)."""
    written = missing = parse_failures = 0
    with atomic_output(output) as handle:
        for row in rows:
            if row.answer is None:
                missing += 1
                continue
            record = {"id": row.post_id, "knowledge": row.answer.explanation, "caption": row.caption}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
            parse_failures += not row.answer.parsed
    return ExportSummary(written, missing, parse_failures)


def select_job(cache: KnowledgeCache, source: str | None, backend: str | None, model: str | None
               ) -> tuple[str, str, str]:
    """The one job of the cache matching what is given (source, backend, model); else a clear error."""
    jobs = [j for j in cache.jobs() if (source is None or j[0] == source) and (backend is None or j[1] == backend)
            and (model is None or j[2] == model)]
    if len(jobs) != 1:
        listed = "; ".join(f"{s} / {b} / {m} ({n} posts)" for s, b, m, n in cache.jobs()) or "none"
        raise DataError(f"{'no' if not jobs else 'several'} matching jobs in {cache.path}: choose with "
                        f"--dataset/--posts, --backend, --model. Jobs: {listed}")
    return jobs[0][0], jobs[0][1], jobs[0][2]


def open_cache(cache: str | Path | None) -> KnowledgeCache:
    """An existing knowledge cache (default: the shared one `gemner knowledge build` writes)."""
    from .builder import cache_path

    path = cache_path(cache)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such knowledge cache (run `gemner knowledge build` first)")
    return KnowledgeCache(path)


def knowledge_status(cache: str | Path | None, source: str | None = None, backend: str | None = None,
                     model: str | None = None) -> tuple[tuple[str, str, str], CacheStatus]:
    """(source, backend, model) of the matching job and how far it is."""
    with open_cache(cache) as store:
        job = select_job(store, source, backend, model)
        return job, job_status(store, *job)


def export_knowledge(output: str | Path, cache: str | Path | None, source: str | None = None,
                     backend: str | None = None, model: str | None = None, split: str | None = None,
                     partial: bool = False) -> ExportSummary:
    """Write the matching job's knowledge JSONL; refuses an unfinished job unless `partial` (or a split)."""
    with open_cache(cache) as store:
        job = select_job(store, source, backend, model)
        state = job_status(store, *job)
        if state.answered < state.posts and not partial and split is None:
            raise DataError(f"{state.posts - state.answered} of {state.posts} posts have no answer yet: resume "
                            f"`gemner knowledge build`, or pass --partial to export what is there")
        return write_knowledge(store.export_rows(*job, split), output)
