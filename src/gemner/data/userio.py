"""User data: posts JSONL in, predictions JSONL out (resumable), gold JSONL for scoring.

Posts in, one per line: `{"id": "...", "text": "raw text"}` or `{"id": "...", "tokens": [...]}`, with an
optional `"image": "path"` (relative paths resolve against `images_dir`, else the JSONL's folder).
Each line is checked once, by the models of `records.py`. A line that is not a JSON object, has a
field of the wrong type, or has neither text nor tokens is reported (file and line); when it names a
usable id it is yielded as a `RejectedPost`, so the output still gets a record with its error. The
first record of an id wins; a repeat is reported with both line numbers and skipped.

Predictions out, one per post: `{"id", "tokens", "image", "entities": [...], "error"?}` where each
entity is `PredictedEntity.to_json()`. `PredictionWriter` appends and flushes line by line, so a killed
run keeps every finished post and a rerun skips them (`done_ids`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .conll import raw_lines
from .issues import DataError, IssueLog
from .records import (
    EntityRecord,
    FileRecord,
    GoldEntityRecord,
    JsonLine,
    KnowledgeRecord,
    PostId,
    PostRecord,
    check_entity,
    parse_json_line,
    problem,
)
from .schema import LabelSchema
from .tokenize import tokenize_tweet
from .types import Post, PredictedEntity


def _lines(path: Path) -> Iterator[JsonLine]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    for number, raw in enumerate(raw_lines(path), start=1):
        line = parse_json_line(number, raw)
        if line is not None:
            yield line


def _json_lines(path: Path, log: IssueLog) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each usable line; every other non-blank line is reported."""
    for line in _lines(path):
        if line.data is None:
            log.report(line.problem or "unusable line", "skipped line", path=path, line=line.number,
                       post_id=line.id)
            continue
        yield line.number, line.data


_POST_ID = TypeAdapter(PostId)


def _readable_id(data: Mapping[str, Any]) -> str | None:
    try:
        return _POST_ID.validate_python(data.get("id"))
    except ValidationError:
        return None


@dataclass(frozen=True)
class RejectedPost:
    """An input post that cannot be predicted but names a usable id: it still gets its output record,
    carrying `error`, so the output keeps one record per input id."""

    id: str
    message: str
    path: str
    line: int

    @property
    def error(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def post_from_json(line: JsonLine, *, path: Path, images_dir: Path | None = None) -> Post | RejectedPost | str:
    """The post of one line; a `RejectedPost` when it is invalid but names an id; else the problem."""
    if line.data is None:
        message = line.problem or "unusable line"
        return RejectedPost(line.id, message, str(path), line.number) if line.id is not None else message
    try:
        record = PostRecord.model_validate(line.data)
    except ValidationError as err:
        post_id = _readable_id(line.data)
        return RejectedPost(post_id, problem(err), str(path), line.number) if post_id is not None else problem(err)
    tokens = record.tokens if record.tokens is not None else tokenize_tweet(record.text or "")
    if not tokens:
        return RejectedPost(record.id, 'empty post: no "text" or "tokens"', str(path), line.number)
    image_path = None
    if record.image:
        image_path = Path(record.image)
        if not image_path.is_absolute():
            image_path = (images_dir or path.parent) / image_path
    return Post(record.id, list(tokens), image=image_path)


def iter_posts(path: str | Path, images_dir: str | Path | None = None,
               log: IssueLog | None = None) -> Iterator[Post | RejectedPost]:
    """The posts of a posts JSONL in file order, each valid one as a `Post` and each invalid one that
    names an id as a `RejectedPost`; every problem is reported in `log` with file and line. The first
    record of an id wins: a later one with the same id is reported (both lines named) and skipped."""
    path, log = Path(path), (log if log is not None else IssueLog())
    images = Path(images_dir) if images_dir is not None else None
    first_line: dict[str, int] = {}
    for line in _lines(path):
        item = post_from_json(line, path=path, images_dir=images)
        if isinstance(item, str):
            log.report(item, "skipped line", path=path, line=line.number)
            continue
        if item.id in first_line:
            log.report(f"duplicate id {item.id!r} (first on line {first_line[item.id]})", "skipped post",
                       path=path, line=line.number, post_id=item.id)
            continue
        first_line[item.id] = line.number
        if isinstance(item, RejectedPost):
            log.report(item.message, "error record", path=path, line=line.number, post_id=item.id)
        yield item


def read_posts(path: str | Path, images_dir: str | Path | None = None,
               log: IssueLog | None = None) -> tuple[list[Post], IssueLog]:
    """The valid posts of a posts JSONL; every other line is reported in the returned log (`iter_posts`
    also yields the invalid posts that name an id)."""
    log = log if log is not None else IssueLog()
    return [p for p in iter_posts(path, images_dir, log) if isinstance(p, Post)], log


def prediction_record(post: Post, entities: Sequence[PredictedEntity], error: str | None = None,
                      **extra: Any) -> dict[str, Any]:
    """The predictions JSONL line of a post. Each entity is checked by the validator the readers use;
    an invalid one (a span past the tokens, a NaN score, an inverted box) is left out and named in
    `error`, so that every written line reads back whole."""
    kept, problems = [], []
    for index, entity in enumerate(entities, start=1):
        data = entity.to_json()
        checked = check_entity(data, n_tokens=len(post.tokens))
        if isinstance(checked, str):
            problems.append(f"entity #{index} left out: {checked}")
        else:
            kept.append(data)
    record: dict[str, Any] = {
        "id": post.id,
        "tokens": post.tokens,
        "image": str(post.image) if post.image is not None else None,
        "entities": kept,
    }
    error = "; ".join(m for m in (error, *problems) if m) or None
    if error is not None:
        record["error"] = error
    record.update(extra)
    return record


def _checked_records(path: Path, log: IssueLog) -> Iterator[tuple[int, dict[str, Any], FileRecord]]:
    for number, data in _json_lines(path, log):
        try:
            record = FileRecord.model_validate(data)
        except ValidationError as err:
            log.report(problem(err), "skipped line", path=path, line=number, post_id=_readable_id(data))
            continue
        yield number, data, record


def _checked_entities(path: Path, log: IssueLog, schema: LabelSchema | None
                      ) -> Iterator[tuple[int, dict[str, Any], FileRecord, list[tuple[Any, EntityRecord]]]]:
    for number, data, record in _checked_records(path, log):
        n_tokens = len(record.tokens) if record.tokens is not None else None
        entities = []
        for index, raw in enumerate(record.entities, start=1):
            checked = check_entity(raw, n_tokens=n_tokens, schema=schema)
            if isinstance(checked, str):
                log.report(f"entity #{index}: {checked}", "skipped entity", path=path, line=number,
                           post_id=record.id)
            else:
                entities.append((raw, checked))
        yield number, data, record, entities


def iter_prediction_records(path: str | Path, log: IssueLog | None = None,
                            schema: LabelSchema | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of a predictions JSONL, each checked: its `id` a string and its `entities`
    the valid ones. A bad line or entity is reported (file and line) and skipped. With a `schema`, an
    entity of a type the schema does not know is one."""
    log = log if log is not None else IssueLog()
    for number, data, record, entities in _checked_entities(Path(path), log, schema):
        yield number, {**data, "id": record.id, "entities": [raw for raw, _ in entities]}


def read_prediction_records(path: str | Path, log: IssueLog | None = None) -> list[dict[str, Any]]:
    """Checked prediction records (dicts), bad lines and entities reported and skipped."""
    return [record for _, record in iter_prediction_records(path, log)]


def read_predictions(path: str | Path, log: IssueLog | None = None,
                     schema: LabelSchema | None = None) -> dict[str, list[PredictedEntity]]:
    """Predicted entities by post id. A malformed line or entity is reported (file and line) and skipped."""
    log = log if log is not None else IssueLog()
    predictions: dict[str, list[PredictedEntity]] = {}
    for _, _, record, entities in _checked_entities(Path(path), log, schema):
        predictions.setdefault(record.id, []).extend(checked.to_entity() for _, checked in entities)
    return predictions


def read_gold_jsonl(path: str | Path, schema: LabelSchema, log: IssueLog | None = None) -> list[Post]:
    """Gold posts from a JSONL like the predictions, with `"boxes": [[x1, y1, x2, y2], ...] | null` per
    entity and an optional `"image_size": [width, height]` per post."""
    path, log = Path(path), (log if log is not None else IssueLog())
    posts = []
    for number, _, record in _checked_records(path, log):
        tokens = list(record.tokens or [])
        entities = []
        for index, raw in enumerate(record.entities, start=1):
            try:
                if not isinstance(raw, dict):
                    raise ValueError(f"an entity must be a JSON object, got {type(raw).__name__}")
                gold = GoldEntityRecord.model_validate(raw, context={"n_tokens": len(tokens), "schema": schema})
            except ValidationError as err:
                message = problem(err)
            except ValueError as err:
                message = str(err)
            else:
                entities.append(gold.to_entity(schema))
                continue
            log.report(f"malformed gold entity #{index}: {message}", "skipped entity", path=path,
                       line=number, post_id=record.id)
        size = record.image_size
        posts.append(Post(record.id, tokens, entities, image_size=(size[0], size[1]) if size else None))
    return posts


def read_knowledge(path: str | Path, log: IssueLog | None = None) -> dict[str, tuple[str, str]]:
    """Post id -> (knowledge, caption) from a knowledge JSONL(.gz) `{"id", "knowledge", "caption"}`.
    A line without a usable id or with a non-text field is reported (file and line) and skipped."""
    path, log = Path(path), (log if log is not None else IssueLog())
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such knowledge file")
    knowledge: dict[str, tuple[str, str]] = {}
    for number, data in _json_lines(path, log):
        try:
            record = KnowledgeRecord.model_validate(data)
        except ValidationError as err:
            log.report(problem(err), "skipped line", path=path, line=number, post_id=_readable_id(data))
            continue
        knowledge[record.id] = (record.knowledge or "", record.caption or "")
    return knowledge


def gold_record(post: Post) -> dict[str, Any]:
    """The gold JSONL line of a post (inverse of `read_gold_jsonl`)."""
    return {
        "id": post.id,
        "tokens": post.tokens,
        "image_size": list(post.image_size) if post.image_size else None,
        "entities": [
            {"start": e.start, "end": e.end, "text": e.text, "type": e.type, "coarse": e.coarse,
             "boxes": [b.to_list() for b in e.boxes] if e.boxes else None}
            for e in post.entities
        ],
    }


class PredictionWriter:
    """Append prediction records to a JSONL file, one flushed line per post; resumable.

    On open, a trailing partial line (left by a crash mid-write) is cut off and the ids already
    written are collected in `done_ids`, so callers skip finished posts.
    """

    def __init__(self, path: str | Path, resume: bool = True, fsync_every: int = 50):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done_ids: set[str] = set()
        if resume and self.path.exists():
            self._recover()
        elif self.path.exists():
            self.path.unlink()
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._fsync_every = fsync_every
        self._since_sync = 0

    def _recover(self) -> None:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            self.path.write_bytes(complete)
        for line in complete.decode("utf-8").splitlines():
            try:
                self.done_ids.add(str(json.loads(line)["id"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue

    def write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.done_ids.add(str(record["id"]))
        self._since_sync += 1
        if self._since_sync >= self._fsync_every:
            os.fsync(self._handle.fileno())
            self._since_sync = 0

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.write(record)

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
