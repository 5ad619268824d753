"""A person's own annotated files as training data, with a label set taken from them.

`load_annotated(path)` reads one file by its name: `*.jsonl[.gz]` is a gold JSONL (what `gemner import`
writes: `{"id", "tokens", "entities": [{"start", "end", "type", "coarse"?, "boxes"?}]}`), `*.json` a
Label Studio export, anything else CoNLL (`conll_in.py`). `training_data` loads a train and a dev file
under one label schema:

* by default the schema is derived from both files: every label seen, sorted; when an entity's coarse
  label differs from its type anywhere (two CoNLL label columns, or `coarse` in JSONL) the schema has
  two levels (coarse + fine, the paper's MGP/MGA), else one;
* `labels="coarse"`: one level, the coarse labels (fine ones dropped); `labels="fine"`: the derived
  schema; `labels=FILE`: a fixed label set, YAML or JSON, as a list of labels, a mapping
  `{coarse: [fine, ...]}`, or a checkpoint's `labels.json`; entities outside it are reported and their
  posts left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..bio import split_tag
from ..conll import ConllRecord
from ..issues import DataError, DataIssue, IssueLog
from ..posts import record_to_post
from ..schema import LabelSchema, flat_schema
from ..types import Box, Entity, Post
from ..userio import iter_prediction_records, read_gold_jsonl
from .conll_in import read_user_conll
from .labelstudio_in import read_tasks, task_record

LEVELS = ("coarse", "fine")


@dataclass
class Annotated:
    """One file's posts before a schema is fixed: CoNLL records, or gold records (JSONL / Label Studio)."""

    path: Path
    kind: str  # "conll" | "jsonl" | "label-studio"
    conll: list[ConllRecord] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def label_pairs(self) -> Iterable[tuple[str, str]]:
        """(type, coarse) of every entity (for CoNLL: of every `B-` tag)."""
        for record in self.conll:
            main, coarse = record.columns[-1], record.columns[0]
            for tag, coarse_tag in zip(main, coarse, strict=True):
                try:
                    (prefix, label), (_, parent) = split_tag(tag), split_tag(coarse_tag)
                except ValueError:
                    continue  # reported when the post is built
                if prefix == "B" and label is not None:
                    yield label, parent or label
        for record in self.records:
            for entity in record.get("entities", []):
                yield entity["type"], entity.get("coarse") or entity["type"]


def file_kind(path: str | Path) -> str:
    name = Path(path).name.lower().removesuffix(".gz")
    return "jsonl" if name.endswith(".jsonl") else "label-studio" if name.endswith(".json") else "conll"


def read_annotated(path: str | Path, log: IssueLog, *, kind: str | None = None, use_predictions: bool = False
                   ) -> Annotated:
    """The annotated posts of a file, its format `kind` (`conll`, `jsonl`, `label-studio`) or its name's."""
    path, kind = Path(path), kind or file_kind(path)
    if kind == "conll":
        return Annotated(path, kind, conll=read_user_conll(path, log)[0])
    if kind == "jsonl":
        scratch = IssueLog()  # the records are read again, and reported, by `read_gold_jsonl`
        return Annotated(path, kind, records=[r for _, r in iter_prediction_records(path, scratch)])
    tasks = [task_record(task, number, path=str(path), log=log, use_predictions=use_predictions)
             for number, task in enumerate(read_tasks(path), start=1)]
    return Annotated(path, kind, records=[t for t in tasks if t is not None])


def derive_schema(name: str, pairs: Iterable[tuple[str, str]], log: IssueLog) -> LabelSchema:
    """The schema of the labels seen: one level unless some coarse label differs from its type."""
    coarse_of: dict[str, str] = {}
    conflicts: set[tuple[str, str]] = set()
    for label, parent in pairs:
        known = coarse_of.setdefault(label, parent)
        if known != parent and (label, parent) not in conflicts:
            conflicts.add((label, parent))
            log.report(f"label {label!r} appears under coarse {known!r} and {parent!r}",
                       f"{known!r} (seen first) used", path=name)
    if not coarse_of:
        raise DataError(f"{name}: no entities, so no labels to train on")
    if all(label == parent for label, parent in coarse_of.items()):
        return flat_schema(name, sorted(coarse_of))
    return LabelSchema(name, tuple(sorted(coarse_of)), tuple(sorted(set(coarse_of.values()))), coarse_of)


def schema_from_file(path: str | Path) -> LabelSchema:
    """A label set from a YAML/JSON file: a list, a `{coarse: [fine, ...]}` mapping or a `labels.json`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DataError(f"{path}: not a readable label file ({err})") from None
    if isinstance(data, Mapping) and "labels" in data and "coarse_of" in data:
        return LabelSchema.from_dict(data)
    if isinstance(data, list) and data and all(isinstance(x, str) for x in data):
        return flat_schema(path.stem, list(dict.fromkeys(data)))
    if isinstance(data, Mapping) and data and all(isinstance(v, list) and all(isinstance(x, str) for x in v)
                                                  for v in data.values()):
        coarse_of = {fine: str(coarse) for coarse, fines in data.items() for fine in fines}
        return LabelSchema(path.stem, tuple(coarse_of), tuple(str(c) for c in data), coarse_of)
    raise DataError(f"{path}: expected a list of labels, a mapping {{coarse: [fine, ...]}} or a labels.json")


def posts_of(annotated: Annotated, schema: LabelSchema, log: IssueLog) -> list[Post]:
    """The file's posts under `schema`; a post with a label the schema lacks is reported and left out."""
    if annotated.kind == "conll":
        posts = (record_to_post(r, schema, str(annotated.path), log) for r in annotated.conll)
        return [p for p in posts if p is not None]
    if annotated.kind == "jsonl":
        return read_gold_jsonl(annotated.path, schema, log)
    posts = []
    for record in annotated.records:
        unknown = [e["type"] for e in record["entities"] if schema.canonical(e["type"]) is None]
        if unknown:
            log.report(f"unknown label {unknown[0]!r} (schema {schema.name})", "dropped post",
                       path=annotated.path, post_id=record["id"])
            continue
        entities = []
        for e in record["entities"]:
            label = schema.canonical(e["type"])
            boxes = tuple(Box.from_sequence(b) for b in e["boxes"]) if e.get("boxes") else None
            entities.append(Entity(e["start"], e["end"], e["text"], label, schema.coarse_of[label], boxes))
        image = Path(record["image"]) if record.get("image") else None
        posts.append(Post(record["id"], record["tokens"], entities, image=image))
    return posts


def coarse_only(schema: LabelSchema, posts: Sequence[Post]) -> tuple[LabelSchema, list[Post]]:
    """One level: every entity labelled with its coarse label."""
    flat = flat_schema(f"{schema.name}-coarse", schema.coarse_labels)
    return flat, [replace(p, entities=[replace(e, type=e.coarse) for e in p.entities]) for p in posts]


def choose_schema(labels: str | None, name: str, files: Sequence[Annotated], log: IssueLog) -> LabelSchema:
    if labels is not None and labels not in LEVELS:
        return schema_from_file(labels)
    return derive_schema(name, (pair for f in files for pair in f.label_pairs()), log)


@dataclass
class TrainingData:
    schema: LabelSchema
    train: list[Post]
    dev: list[Post]
    issues: list[DataIssue] = field(default_factory=list)
    name: str = "custom"


def load_training_files(train: str | Path, dev: str | Path, labels: str | None = None, *,
                        strict: bool = False) -> TrainingData:
    """Train and dev posts of a person's own files under one schema (see the module docstring)."""
    log = IssueLog(strict=strict)
    files = [read_annotated(train, log), read_annotated(dev, log)]
    name = Path(train).name.split(".")[0]
    schema = choose_schema(labels, name, files, log)
    train_posts, dev_posts = (posts_of(f, schema, log) for f in files)
    if labels == "coarse":
        (schema, train_posts), (_, dev_posts) = coarse_only(schema, train_posts), coarse_only(schema, dev_posts)
    if not train_posts:
        raise DataError(f"{train}: no usable posts ({log.summary()})")
    return TrainingData(schema, train_posts, dev_posts, log.issues, name)


def training_data(dataset: str, train: str | Path | None = None, dev: str | Path | None = None,
                  labels: str | None = None, *, max_train: int | None = None,
                  max_dev: int | None = None) -> TrainingData:
    """What `gemner train recognizer` trains on: the person's `train` and `dev` files when given (both
    are needed), else the benchmark `dataset` (a shipped name or an upstream folder, `data.folders`); each
    cut to its first `max_*` posts."""
    if (train is None) != (dev is None):
        raise DataError("--train and --dev go together: give both files, or neither (then --dataset is used)")
    if train is not None and dev is not None:
        data = load_training_files(train, dev, labels)
    else:
        from ..folders import load_split

        if labels is not None:
            raise DataError("--labels applies to --train/--dev files; the benchmarks have their own label sets")
        train_split, dev_split = load_split(dataset, "train"), load_split(dataset, "dev")
        data = TrainingData(dev_split.schema, train_split.posts, dev_split.posts,
                            train_split.issues + dev_split.issues, dataset)
    return replace(data, train=data.train[:max_train], dev=data.dev[:max_dev])
