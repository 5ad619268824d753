"""Box annotations: the upstream Pascal-VOC xml folder and the project's compact `boxes.jsonl.gz`.

The compact format holds one JSON object per image that has at least one box, exactly the content
of its xml file that matters::

    {"id": "O_4862", "width": 600, "height": 398, "depth": 3,
     "objects": [["Taylor Swift", [32, 1, 275, 398]], ...]}

Rules for bad xml (reported with the file): an unparsable file is ignored (its post then has no
boxes); an object without a name or a complete `bndbox` is skipped.
"""

from __future__ import annotations

import gzip
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from .conll import raw_lines
from .issues import IssueLog
from .jsonlines import parse_json_line
from .records import BoxesRecord, problem
from .types import Box


@dataclass
class ImageAnnotation:
    id: str
    width: int | None
    height: int | None
    depth: int | None = None
    objects: list[tuple[str, Box]] = field(default_factory=list)
    source: str | None = None  # file (and line) the annotation came from, for messages

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "width": self.width,
            "height": self.height,
            "depth": self.depth,
            "objects": [[name, box.to_list()] for name, box in self.objects],
        }


def _int_or_none(node: ET.Element | None) -> int | None:
    if node is None or node.text is None:
        return None
    try:
        return int(float(node.text))
    except (ValueError, OverflowError):  # "abc", "nan", "1e400"
        return None


def read_voc_xml(path: str | Path, log: IssueLog) -> ImageAnnotation | None:
    path = Path(path)
    post_id = path.stem
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        log.report(f"unreadable xml ({err})", "ignored file", path=path, post_id=post_id)
        return None
    size = root.find("size")
    annotation = ImageAnnotation(
        id=post_id,
        width=_int_or_none(size.find("width")) if size is not None else None,
        height=_int_or_none(size.find("height")) if size is not None else None,
        depth=_int_or_none(size.find("depth")) if size is not None else None,
        source=str(path),
    )
    for index, obj in enumerate(root.findall("object"), start=1):
        # Not stripped: the official loaders compare the raw name, so "X\n" matches no entity "X".
        name = obj.findtext("name") or ""
        bndbox = obj.find("bndbox")
        keys = ("xmin", "ymin", "xmax", "ymax")
        coords = [] if bndbox is None else [_int_or_none(bndbox.find(k)) for k in keys]
        if not name.strip() or len(coords) != 4 or any(c is None for c in coords):
            log.report(f"object #{index} lacks a name or a complete bndbox", "skipped object",
                       path=path, post_id=post_id)
            continue
        annotation.objects.append((name, Box(*coords)))  # type: ignore[arg-type]
    return annotation


def read_voc_folder(folder: str | Path, log: IssueLog) -> dict[str, ImageAnnotation]:
    annotations = {}
    for path in sorted(Path(folder).glob("*.xml")):
        annotation = read_voc_xml(path, log)
        if annotation is not None:
            annotations[annotation.id] = annotation
    return annotations


def read_boxes_jsonl(path: str | Path, log: IssueLog) -> dict[str, ImageAnnotation]:
    """Annotations by post id; a line that is not a valid record (`records.BoxesRecord`) is reported
    with file and line and ignored."""
    annotations = {}
    for number, raw in enumerate(raw_lines(path), start=1):
        line = parse_json_line(number, raw)
        if line is None:
            continue
        if line.data is None:
            log.report(line.problem or "unusable line", "ignored line", path=path, line=number, post_id=line.id)
            continue
        try:
            record = BoxesRecord.model_validate(line.data)
        except ValidationError as err:
            log.report(f"malformed box record: {problem(err)}", "ignored line", path=path, line=number)
            continue
        annotations[record.id] = ImageAnnotation(
            id=record.id, width=record.width, height=record.height, depth=record.depth,
            objects=[(name, Box(*values)) for name, values in record.objects], source=f"{path}:{number}",
        )
    return annotations


def write_boxes_jsonl(path: str | Path, annotations: Iterable[ImageAnnotation]) -> None:
    path = Path(path)
    lines = "".join(json.dumps(a.to_json(), ensure_ascii=False) + "\n" for a in annotations)
    if path.suffix == ".gz":
        # mtime=0 keeps the compressed file byte-identical across conversions.
        with gzip.GzipFile(path, "wb", mtime=0) as out:
            out.write(lines.encode("utf-8"))
    else:
        path.write_text(lines, encoding="utf-8")


def read_boxes(source: str | Path, log: IssueLog) -> dict[str, ImageAnnotation]:
    """Boxes from an xml folder or a boxes JSONL (optionally gzipped) file."""
    source = Path(source)
    return read_voc_folder(source, log) if source.is_dir() else read_boxes_jsonl(source, log)
