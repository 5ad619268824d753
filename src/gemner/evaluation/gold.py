"""Resolve what a user names as gold: `fmnerg:test`, a gold JSONL, or a CoNLL txt (+ boxes)."""

from __future__ import annotations

from pathlib import Path

from ..data.benchmarks import DATASETS, load_conll_split, load_dataset
from ..data.issues import DataError, IssueLog
from ..data.schema import SCHEMAS, LabelSchema
from ..data.types import Post
from ..data.userio import read_gold_jsonl


def schema_named(name: str) -> LabelSchema:
    if name in SCHEMAS:
        return SCHEMAS[name]
    if name in DATASETS:
        return DATASETS[name].schema
    raise DataError(f"unknown schema {name!r}; choose one of {', '.join(SCHEMAS)}")


def load_gold(spec: str, schema: str | None = None, boxes: str | Path | None = None,
              log: IssueLog | None = None) -> tuple[list[Post], LabelSchema]:
    """`DATASET:SPLIT` (e.g. `fmnerg:test`), or a path to a gold JSONL / CoNLL txt file."""
    name, _, split = spec.partition(":")
    if name in DATASETS and split:
        dataset = load_dataset(name, split)
        return dataset.posts, dataset.schema
    path = Path(spec)
    if not path.exists():
        raise DataError(f"gold {spec!r} is neither DATASET:SPLIT ({', '.join(DATASETS)}) nor a file")
    label_schema = schema_named(schema or "gmner")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return read_gold_jsonl(path, label_schema, log), label_schema
    return load_conll_split(path, label_schema, boxes=boxes).posts, label_schema
