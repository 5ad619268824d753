"""The shipped benchmarks (the data folder, see `gemner.paths.data_dir`) and the upstream layout at any path.

Shipped layout (made by `gemner data convert`, see data/README.md)::

    data/gmner/{train,dev,test}.txt.gz     GMNER v1 (Twitter10000), the published GMNER split
    data/gmner/boxes.jsonl.gz              its boxes (the xml folder, one JSON line per image)
    data/gmner-v2/...                      GMNER v2.0 (Twitter10000_v2.0), same layout
    data/fmnerg/{train,dev,test}.txt.gz    FMNERG fine labels; boxes are gmner-v2's (unchanged upstream)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..paths import data_dir
from .conll import read_conll
from .issues import DataError, DataIssue, IssueLog
from .posts import build_posts
from .schema import FMNERG_SCHEMA, GMNER_SCHEMA, LabelSchema
from .types import Post
from .voc import ImageAnnotation, read_boxes

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str
    schema: LabelSchema
    label_columns: int
    boxes: str  # path of the boxes file, relative to the data folder
    description: str


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("gmner", "gmner", GMNER_SCHEMA, 1, "gmner/boxes.jsonl.gz",
                    "GMNER, Twitter10000 v1 (the split behind the published GMNER numbers)"),
        DatasetSpec("gmner-v2", "gmner-v2", GMNER_SCHEMA, 1, "gmner-v2/boxes.jsonl.gz",
                    "GMNER, Twitter10000 v2.0 (corrected labels and boxes)"),
        DatasetSpec("fmnerg", "fmnerg", FMNERG_SCHEMA, 2, "gmner-v2/boxes.jsonl.gz",
                    "FMNERG, Twitter10000 v2.0 with 8 coarse / 51 fine labels"),
    )
}


@dataclass
class Dataset:
    name: str
    split: str
    schema: LabelSchema
    posts: list[Post]
    issues: list[DataIssue] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.posts)

    def __iter__(self):
        return iter(self.posts)


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None


def load_dataset(
    name: str,
    split: str,
    *,
    data_root: str | Path | None = None,
    images_dir: str | Path | None = None,
    strict: bool = False,
) -> Dataset:
    """Load one split of a shipped benchmark (`gmner`, `gmner-v2`, `fmnerg`)."""
    spec = dataset_spec(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = data_dir(data_root)
    return load_conll_split(
        root / spec.folder / f"{split}.txt.gz",
        spec.schema,
        boxes=root / spec.boxes,
        images_dir=images_dir,
        strict=strict,
        name=name,
        split=split,
    )


def load_conll_split(
    txt_path: str | Path,
    schema: LabelSchema,
    *,
    boxes: str | Path | dict[str, ImageAnnotation] | None = None,
    images_dir: str | Path | None = None,
    strict: bool = False,
    name: str = "custom",
    split: str = "custom",
) -> Dataset:
    """Load a CoNLL txt file (upstream layout) with boxes from an xml folder or boxes JSONL."""
    txt_path = Path(txt_path)
    if not txt_path.is_file():
        raise DataError(f"{txt_path}: no such annotation file")
    log = IssueLog(strict=strict)
    label_columns = 2 if schema.hierarchical else 1
    records = read_conll(txt_path, label_columns, log)
    if boxes is None:
        annotations: dict[str, ImageAnnotation] = {}
    elif isinstance(boxes, dict):
        annotations = boxes
    else:
        if not Path(boxes).exists():
            raise DataError(f"{boxes}: no such box annotation folder or file")
        annotations = read_boxes(boxes, log)
    posts = build_posts(records, schema, annotations, str(txt_path), log, images_dir)
    return Dataset(name, split, schema, posts, log.issues)


def load_upstream(
    txt_dir: str | Path,
    split: str,
    schema: LabelSchema,
    xml_dir: str | Path | None = None,
    images_dir: str | Path | None = None,
    strict: bool = False,
) -> Dataset:
    """Load `<txt_dir>/<split>.txt` with boxes from `xml_dir` (as cloned from NUSTM/GMNER or FMNERG)."""
    txt_dir = Path(txt_dir)
    txt_path = next((p for p in (txt_dir / f"{split}.txt", txt_dir / f"{split}.txt.gz") if p.is_file()),
                    txt_dir / f"{split}.txt")
    return load_conll_split(txt_path, schema, boxes=xml_dir, images_dir=images_dir, strict=strict,
                            name=txt_dir.name, split=split)
