"""`gemner export` and `gemner import`: one call each, over the converters of this package."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..files import atomic_output
from ..issues import IssueLog
from ..userio import gold_record, iter_prediction_records
from .conll_out import has_two_levels, write_conll_post
from .files import Counts
from .labelstudio_out import config_path, json_array, labeling_config, task_of
from .spacy_out import write_docbin
from .training import LEVELS, choose_schema, coarse_only, posts_of, read_annotated

EXPORT_FORMATS = ("conll", "spacy", "label-studio")
IMPORT_FORMATS = ("label-studio", "conll", "jsonl")


def _records(path: Path, log: IssueLog) -> Iterator[dict[str, Any]]:
    for _, record in iter_prediction_records(path, log):
        yield record


def export_predictions(predictions: str | Path, to: str, output: str | Path, *, image_url: str = "",
                       log: IssueLog | None = None) -> Counts:
    """Write a predictions JSONL as CoNLL, a spaCy DocBin or Label Studio tasks (with, for Label Studio,
    the labeling configuration in `<output stem>.config.xml`). Bad records are reported in `log` and left
    out; everything else is written."""
    predictions, log = Path(predictions), (log if log is not None else IssueLog())
    where = str(predictions)
    if to == "spacy":
        return write_docbin(_records(predictions, log), str(output), where=where, log=log)
    counts = Counts()
    if to == "conll":
        two_levels = has_two_levels(_records(predictions, IssueLog()))  # a first pass only looks at labels
        with atomic_output(output) as handle:
            for record in _records(predictions, log):
                write_conll_post(handle, record, two_levels, where=where, log=log, counts=counts)
        return counts
    if to != "label-studio":
        raise ValueError(f"unknown export format {to!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    labels: set[str] = set()
    images = False

    def tasks() -> Iterator[dict[str, Any]]:
        nonlocal images
        for record in _records(predictions, log):
            labels.update(e["type"] for e in record.get("entities", []))
            images = images or bool(record.get("image"))
            yield task_of(record, image_url=image_url, where=where, log=log, counts=counts)

    with atomic_output(output) as handle:
        for piece in json_array(tasks()):
            handle.write(piece)
    with atomic_output(config_path(output)) as handle:
        handle.write(labeling_config(labels, images))
    return counts


def import_annotations(source: str | Path, output: str | Path, *, kind: str | None = None,
                       labels: str | None = None, use_predictions: bool = False,
                       log: IssueLog | None = None) -> tuple[Counts, Mapping[str, Any]]:
    """Write a Label Studio export or CoNLL file as a gold JSONL that `gemner train recognizer --train`
    reads; returns the counts and the label schema (as `LabelSchema.to_dict()`)."""
    log = log if log is not None else IssueLog()
    annotated = read_annotated(source, log, kind=kind, use_predictions=use_predictions)
    schema = choose_schema(labels, Path(source).name.split(".")[0], [annotated], log)
    posts = posts_of(annotated, schema, log)
    if labels == "coarse":
        schema, posts = coarse_only(schema, posts)
    counts = Counts(skipped_posts=len(annotated.conll or annotated.records) - len(posts))
    with atomic_output(output) as handle:
        for post in posts:
            record = {**gold_record(post), "image": str(post.image) if post.image is not None else None}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            counts.posts += 1
            counts.entities += len(post.entities)
            counts.boxes += sum(len(e.boxes or ()) for e in post.entities)
    return counts, schema.to_dict()


__all__ = ["EXPORT_FORMATS", "IMPORT_FORMATS", "LEVELS", "export_predictions", "import_annotations"]
