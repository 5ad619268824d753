"""The durable answer cache: one SQLite file, safe to kill at any moment.

Answers are keyed by (backend, model, prompt hash); the prompt hash covers the chat messages and every
generation setting that shapes the answer, so a changed setting never reuses a stale answer. Each
answer is committed on its own (WAL journal), so `kill -9` loses at most the answers still being
generated. The `items` table maps each post of a job to its prompt, which is what `export` reads.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    backend TEXT NOT NULL, model TEXT NOT NULL, prompt_hash TEXT NOT NULL,
    raw TEXT NOT NULL, explanation TEXT NOT NULL, parsed INTEGER NOT NULL, truncated INTEGER NOT NULL,
    seconds REAL NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (backend, model, prompt_hash)
);
CREATE TABLE IF NOT EXISTS failures (
    backend TEXT NOT NULL, model TEXT NOT NULL, prompt_hash TEXT NOT NULL,
    error TEXT NOT NULL, attempts INTEGER NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (backend, model, prompt_hash)
);
CREATE TABLE IF NOT EXISTS items (
    source TEXT NOT NULL, backend TEXT NOT NULL, model TEXT NOT NULL, post_id TEXT NOT NULL,
    split TEXT NOT NULL, prompt_hash TEXT NOT NULL, caption TEXT NOT NULL,
    PRIMARY KEY (source, backend, model, post_id)
);
CREATE TABLE IF NOT EXISTS captions (
    captioner TEXT NOT NULL, image TEXT NOT NULL, caption TEXT NOT NULL,
    PRIMARY KEY (captioner, image)
);
"""


@dataclass(frozen=True)
class Item:
    """One post of a job: its id, where it comes from, and the prompt that asks for its knowledge."""

    post_id: str
    split: str
    prompt_hash: str
    caption: str


@dataclass(frozen=True)
class Answer:
    raw: str
    explanation: str
    parsed: bool
    truncated: bool
    seconds: float


@dataclass(frozen=True)
class ExportRow:
    post_id: str
    split: str
    caption: str
    answer: Answer | None


class KnowledgeCache:
    """SQLite store of answers, failures, job items and captions; used from one thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a committed answer survives the process being killed (not a power cut), at WAL speed
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> KnowledgeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self, sql: str, rows: Iterable[tuple]) -> None:
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(sql, rows)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---- job items -------------------------------------------------------------------------------
    def set_items(self, source: str, backend: str, model: str, items: Iterable[Item]) -> None:
        """Record (or update) which prompt each post of a job uses; one transaction."""
        self._transaction(
            "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((source, backend, model, i.post_id, i.split, i.prompt_hash, i.caption) for i in items),
        )

    def jobs(self) -> list[tuple[str, str, str, int]]:
        """(source, backend, model, number of posts) of every job in this file."""
        return self.conn.execute(
            "SELECT source, backend, model, COUNT(*) FROM items GROUP BY source, backend, model ORDER BY 1, 2, 3"
        ).fetchall()

    # ---- answers ---------------------------------------------------------------------------------
    def done_hashes(self, backend: str, model: str) -> set[str]:
        rows = self.conn.execute("SELECT prompt_hash FROM answers WHERE backend = ? AND model = ?", (backend, model))
        return {row[0] for row in rows}

    def put_answer(self, backend: str, model: str, prompt_hash: str, answer: Answer) -> None:
        """Store one answer and clear any earlier failure of the same prompt; committed on return."""
        self.conn.execute("BEGIN")
        try:
            self.conn.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (backend, model, prompt_hash, answer.raw, answer.explanation, int(answer.parsed),
                 int(answer.truncated), answer.seconds, time.time()),
            )
            self.conn.execute(
                "DELETE FROM failures WHERE backend = ? AND model = ? AND prompt_hash = ?",
                (backend, model, prompt_hash),
            )
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def put_failure(self, backend: str, model: str, prompt_hash: str, error: str, attempts: int) -> None:
        self._transaction(
            "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?)",
            [(backend, model, prompt_hash, error, attempts, time.time())],
        )

    def failures(self, backend: str, model: str) -> dict[str, tuple[str, int]]:
        rows = self.conn.execute(
            "SELECT prompt_hash, error, attempts FROM failures WHERE backend = ? AND model = ?", (backend, model)
        )
        return {h: (error, attempts) for h, error, attempts in rows}

    def answer_count(self, backend: str, model: str) -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM answers WHERE backend = ? AND model = ?", (backend, model)
        ).fetchone()[0]

    # ---- export ----------------------------------------------------------------------------------
    def export_rows(self, source: str, backend: str, model: str, split: str | None = None) -> Iterator[ExportRow]:
        """Every post of a job with its answer (None when not answered yet), in split and id order."""
        sql = (
            "SELECT i.post_id, i.split, i.caption, a.raw, a.explanation, a.parsed, a.truncated, a.seconds "
            "FROM items i LEFT JOIN answers a ON a.backend = i.backend AND a.model = i.model "
            "AND a.prompt_hash = i.prompt_hash WHERE i.source = ? AND i.backend = ? AND i.model = ?"
        )
        args: list[str] = [source, backend, model]
        if split is not None:
            sql += " AND i.split = ?"
            args.append(split)
        sql += " ORDER BY i.split, i.rowid"
        for post_id, item_split, caption, raw, explanation, parsed, truncated, seconds in self.conn.execute(sql, args):
            answer = None if raw is None else Answer(raw, explanation, bool(parsed), bool(truncated), seconds)
            yield ExportRow(post_id, item_split, caption, answer)

    # ---- captions --------------------------------------------------------------------------------
    def captions(self, captioner: str) -> dict[str, str]:
        rows = self.conn.execute("SELECT image, caption FROM captions WHERE captioner = ?", (captioner,))
        return dict(rows.fetchall())

    def put_captions(self, captioner: str, captions: dict[str, str]) -> None:
        self._transaction(
            "INSERT OR REPLACE INTO captions VALUES (?, ?, ?)",
            ((captioner, image, caption) for image, caption in captions.items()),
        )
