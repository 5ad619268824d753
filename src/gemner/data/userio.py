"""User data: posts JSONL in, predictions JSONL out (resumable), gold JSONL for scoring.

Posts in, one per line: `{"id": "...", "text": "raw text"}` or `{"id": "...", "tokens": [...]}`, with an
optional `"image": "path"` (relative paths resolve against `images_dir`, else the JSONL's folder).
A line that is not a JSON object, lacks an id, repeats an id, or has neither text nor tokens is
reported (file and line) and skipped; every other post is kept.

Predictions out, one per post: `{"id", "tokens", "image", "entities": [...], "error"?}` where each
entity is `PredictedEntity.to_json()`, written by `gemner.data.writer.PredictionWriter` (re-exported
here): locked, resumable, flushed line by line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .conll import numbered_lines
from .issues import DataError, IssueLog
from .schema import LabelSchema
from .tokenize import tokenize_tweet
from .types import Box, Entity, Post, PredictedEntity
from .writer import PredictionWriter as PredictionWriter
from .writer import WriteCounts as WriteCounts


def _json_lines(path: Path, log: IssueLog) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    for number, line in numbered_lines(path):
        if line is None:
            log.report("not valid UTF-8", "skipped line", path=path, line=number)
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            log.report(f"not valid JSON ({err.msg})", "skipped line", path=path, line=number)
            continue
        if not isinstance(data, dict):
            log.report("not a JSON object", "skipped line", path=path, line=number)
            continue
        yield number, data


def post_from_json(data: Mapping[str, Any], *, path: Path, line: int, log: IssueLog,
                   images_dir: Path | None = None) -> Post | None:
    post_id = data.get("id")
    if post_id is None or str(post_id).strip() == "":
        log.report('missing "id"', "skipped post", path=path, line=line)
        return None
    post_id = str(post_id)
    tokens = data.get("tokens")
    if tokens is not None:
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t.strip() for t in tokens):
            log.report('"tokens" must be a list of non-empty strings', "skipped post", path=path,
                       line=line, post_id=post_id)
            return None
    else:
        text = data.get("text")
        tokens = tokenize_tweet(text) if isinstance(text, str) else []
    if not tokens:
        log.report('empty post: no "text" or "tokens"', "skipped post", path=path, line=line,
                   post_id=post_id)
        return None
    image = data.get("image")
    image_path = None
    if image:
        image_path = Path(image)
        if not image_path.is_absolute():
            image_path = (images_dir or path.parent) / image_path
    return Post(post_id, list(tokens), image=image_path)


def read_posts(path: str | Path, images_dir: str | Path | None = None,
               log: IssueLog | None = None) -> tuple[list[Post], IssueLog]:
    """Read a posts JSONL; bad lines are reported in the returned log and skipped."""
    path, log = Path(path), (log if log is not None else IssueLog())
    images = Path(images_dir) if images_dir is not None else None
    posts: list[Post] = []
    seen: set[str] = set()
    for number, data in _json_lines(path, log):
        post = post_from_json(data, path=path, line=number, log=log, images_dir=images)
        if post is None:
            continue
        if post.id in seen:
            log.report(f"duplicate id {post.id!r}", "skipped post", path=path, line=number, post_id=post.id)
            continue
        seen.add(post.id)
        posts.append(post)
    return posts, log


def prediction_record(post: Post | str, entities: Sequence[PredictedEntity], error: str | None = None,
                      **extra: Any) -> dict[str, Any]:
    """The predictions line of a post; a bare post id (an input line that could not be read) gives a
    record with no tokens, meant to carry an `error`."""
    if isinstance(post, str):
        post = Post(post, [])
    record: dict[str, Any] = {
        "id": post.id,
        "tokens": post.tokens,
        "image": str(post.image) if post.image is not None else None,
        "entities": [e.to_json() for e in entities],
    }
    if error is not None:
        record["error"] = error
    record.update(extra)
    return record


def iter_prediction_records(path: str | Path, log: IssueLog | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of a predictions JSONL; bad lines reported (file and line) and skipped."""
    log = log if log is not None else IssueLog()
    for number, data in _json_lines(Path(path), log):
        if "id" not in data or not isinstance(data.get("entities", []), list):
            log.report('a prediction needs "id" and a list "entities"', "skipped line", path=path,
                       line=number)
            continue
        yield number, data


def read_prediction_records(path: str | Path, log: IssueLog | None = None) -> list[dict[str, Any]]:
    """Raw prediction records (dicts), bad lines reported and skipped."""
    return [record for _, record in iter_prediction_records(path, log)]


def read_predictions(path: str | Path, log: IssueLog | None = None) -> dict[str, list[PredictedEntity]]:
    """Predicted entities by post id. A malformed entity is reported (file and line) and skipped."""
    log = log if log is not None else IssueLog()
    predictions: dict[str, list[PredictedEntity]] = {}
    for number, record in iter_prediction_records(path, log):
        entities = []
        for data in record.get("entities", []):
            try:
                entities.append(PredictedEntity.from_json(data))
            except (KeyError, TypeError, ValueError) as err:
                log.report(f"malformed entity {data!r} ({err})", "skipped entity", path=path,
                           line=number, post_id=str(record["id"]))
        predictions.setdefault(str(record["id"]), []).extend(entities)
    return predictions


def read_gold_jsonl(path: str | Path, schema: LabelSchema, log: IssueLog | None = None) -> list[Post]:
    """Gold posts from a JSONL like the predictions, with `"boxes": [[x1, y1, x2, y2], ...] | null` per
    entity and an optional `"image_size": [width, height]` per post."""
    log = log if log is not None else IssueLog()
    posts = []
    for number, record in iter_prediction_records(path, log):
        entities = []
        for data in record.get("entities", []):
            try:
                label = schema.canonical(str(data["type"]))
                if label is None:
                    raise ValueError(f"unknown label {data['type']!r} (schema {schema.name})")
                boxes = data.get("boxes")
                entities.append(Entity(
                    int(data["start"]), int(data["end"]), str(data.get("text", "")), label,
                    schema.coarse_of[label],
                    tuple(Box.from_sequence(b) for b in boxes) if boxes else None,
                ))
            except (KeyError, TypeError, ValueError) as err:
                log.report(f"malformed gold entity ({err})", "skipped entity", path=path,
                           line=number, post_id=str(record["id"]))
        size = record.get("image_size")
        posts.append(Post(str(record["id"]), list(record.get("tokens", [])), entities,
                          image_size=tuple(size) if size else None))
    return posts


def read_knowledge(path: str | Path, log: IssueLog | None = None) -> dict[str, tuple[str, str]]:
    """Post id -> (knowledge, caption) from a knowledge JSONL(.gz) `{"id", "knowledge", "caption"}`.
    A line without an id is reported (file and line) and skipped."""
    path, log = Path(path), (log if log is not None else IssueLog())
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such knowledge file")
    knowledge: dict[str, tuple[str, str]] = {}
    for number, data in _json_lines(path, log):
        if "id" not in data:
            log.report('a knowledge record needs an "id"', "skipped line", path=path, line=number)
            continue
        knowledge[str(data["id"])] = (str(data.get("knowledge") or ""), str(data.get("caption") or ""))
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
