"""User data: posts JSONL in, predictions JSONL out (resumable), gold JSONL for scoring.

Posts in, one per line: `{"id": "...", "text": "raw text"}` or `{"id": "...", "tokens": [...]}`, with an
optional `"image": "path"` (relative paths resolve against `images_dir`, else the JSONL's folder); read
by `userposts.py`, re-exported here.

Every line read is checked once, by the models of `records.py`; a bad line or entity is reported with
file and line and the rest goes on.

Predictions out, one per post: `{"id", "tokens", "image", "entities": [...], "error"?}` where each
entity is `PredictedEntity.to_json()`, written by `gemner.data.writer.PredictionWriter` (re-exported
here): locked, resumable, flushed line by line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .issues import IssueLog
from .jsonlines import read_json_lines, readable_id
from .records import (
    EntityRecord,
    FileRecord,
    GoldEntityRecord,
    KnowledgeRecord,
    check_entity,
    offsets_text,
    problem,
)
from .schema import LabelSchema
from .types import Post, PredictedEntity
from .userposts import RejectedPost, iter_posts, post_from_json, read_posts
from .writer import PredictionWriter, WriteCounts

__all__ = [
    "PredictionWriter", "RejectedPost", "WriteCounts", "gold_record", "iter_posts", "iter_prediction_records",
    "post_from_json", "prediction_record", "read_gold_jsonl", "read_knowledge", "read_posts",
    "read_prediction_records", "read_predictions",
]


def _json_lines(path: Path, log: IssueLog) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each usable line; every other non-blank line is reported."""
    for line in read_json_lines(path):
        if line.data is None:
            log.report(line.problem or "unusable line", "skipped line", path=path, line=line.number,
                       post_id=line.id)
            continue
        yield line.number, line.data


def prediction_record(post: Post | str, entities: Sequence[PredictedEntity], error: str | None = None,
                      **extra: Any) -> dict[str, Any]:
    """The predictions JSONL line of a post. Each entity is checked by the validator the readers use;
    an invalid one (a span past the tokens, a NaN score, an inverted box) is left out and named in
    `error`, so that every written line reads back whole. A bare post id (an input line that could not
    be read) gives a record with no tokens, meant to carry an `error`. Each entity carries its
    characters (`Post.locate`) in the post's raw text, written as `"text"` when the post has one,
    else in its tokens joined by single spaces."""
    if isinstance(post, str):
        post = Post(post, [])
    kept, problems = [], []
    for index, entity in enumerate(entities, start=1):
        locatable = entity.start_char is None and 0 <= entity.start < entity.end <= len(post.tokens)
        data = (post.locate(entity) if locatable else entity).to_json()  # a bad span: named by the check
        checked = check_entity(data, n_tokens=len(post.tokens), raw=post.raw)
        if isinstance(checked, str):
            problems.append(f"entity #{index} left out: {checked}")
        else:
            kept.append(data)
    record: dict[str, Any] = {
        "id": post.id,
        "tokens": post.tokens,
        **({"text": post.raw_text} if post.raw_text is not None else {}),
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
            log.report(problem(err), "skipped line", path=path, line=number, post_id=readable_id(data))
            continue
        yield number, data, record


def _checked_entities(path: Path, log: IssueLog, schema: LabelSchema | None
                      ) -> Iterator[tuple[int, dict[str, Any], FileRecord, list[tuple[Any, EntityRecord]]]]:
    for number, data, record in _checked_records(path, log):
        n_tokens = len(record.tokens) if record.tokens is not None else None
        text = offsets_text(record)
        entities = []
        for index, raw in enumerate(record.entities, start=1):
            checked = check_entity(raw, n_tokens=n_tokens, schema=schema, raw=text)
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
            log.report(problem(err), "skipped line", path=path, line=number, post_id=readable_id(data))
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
