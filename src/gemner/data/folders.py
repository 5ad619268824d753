"""A benchmark by name (`fmnerg`) or as an upstream folder on disk (`path/to/bench`), one way to load either.

An upstream folder holds `{train,dev,test}.txt[.gz]` in `txt/` (or at its top), and optionally `xml/`
(Pascal-VOC boxes) and `images/`, the layout of the NUSTM clones and of `gemner data synthetic`.
The schema is read from the txt: three columns (token, coarse, fine) is FMNERG, two is GMNER.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .benchmarks import DATASETS, Dataset, load_dataset, load_upstream
from .conll import IMGID_PREFIX, numbered_lines
from .issues import DataError
from .schema import FMNERG_SCHEMA, GMNER_SCHEMA, LabelSchema


@dataclass(frozen=True)
class UpstreamFolder:
    txt: Path
    xml: Path | None
    images: Path | None
    schema: LabelSchema


def is_folder_source(source: str | Path) -> bool:
    """Whether `source` names a folder rather than a shipped benchmark."""
    return str(source) not in DATASETS and Path(source).is_dir()


def _txt_dir(folder: Path) -> Path:
    for candidate in (folder / "txt", folder / "txt_fine", folder):
        if any((candidate / f"train.txt{gz}").is_file() for gz in ("", ".gz")):
            return candidate
    raise DataError(f"{folder}: no train.txt in it or in its txt/ folder (the upstream layout)")


def _schema_of(txt_dir: Path) -> LabelSchema:
    path = next(p for p in (txt_dir / "train.txt", txt_dir / "train.txt.gz") if p.is_file())
    for _, line in numbered_lines(path):
        if line and line.strip() and not line.startswith(IMGID_PREFIX):
            return FMNERG_SCHEMA if line.rstrip("\r\n").count("\t") >= 2 else GMNER_SCHEMA
    raise DataError(f"{path}: no token line to tell GMNER from FMNERG columns")


def upstream_folder(folder: str | Path) -> UpstreamFolder:
    folder = Path(folder)
    txt = _txt_dir(folder)
    xml = folder / "xml" if (folder / "xml").is_dir() else None
    images = folder / "images" if (folder / "images").is_dir() else None
    return UpstreamFolder(txt, xml, images, _schema_of(txt))


def load_split(source: str | Path, split: str, *, images_dir: str | Path | None = None,
               strict: bool = False) -> Dataset:
    """One split of a shipped benchmark or of an upstream folder (its `images/` unless `images_dir`)."""
    if not is_folder_source(source):
        return load_dataset(str(source), split, images_dir=images_dir, strict=strict)
    found = upstream_folder(source)
    dataset = load_upstream(found.txt, split, found.schema, found.xml, images_dir or found.images, strict=strict)
    dataset.name = Path(source).resolve().name
    return dataset
