"""Predictions -> Label Studio tasks with pre-annotations (`predictions`), one task per post.

Format (Label Studio "Import pre-annotated data"): `{"data": {"text", "image", "post_id", "tokens",
"coarse_of"?}, "predictions": [{"model_version", "result": [...]}]}`. Each entity gives a `labels`
result on the text (`value`: `start`, `end` in characters, `text`, `labels: [type]`); each entity with
a box gives a `rectanglelabels` result on the image in percent of the image size (`original_width` /
`original_height`) and a `relation` result from the text span to its box, which `gemner import` reads
back. The image size comes from the image file's header; when it is unknown the box is left out (Label
Studio accepts no pixel boxes) and reported. `tokens` and `coarse_of` (each fine type's coarse label,
for two-level labels) let `gemner import` restore the post's tokens and both label levels.
`labeling_config` writes the matching Label Studio labeling configuration.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from ..images import ImageError, check_image
from ..issues import IssueLog
from .files import Counts
from .spans import post_text

TEXT, IMAGE, LABEL, BOX = "text", "image", "label", "box"  # the names the labeling configuration uses
MODEL_VERSION = "gemner"


def image_size(record: Mapping[str, Any], *, where: str, log: IssueLog) -> tuple[int, int] | None:
    """(width, height) of the record's image from its file header (or its `image_size`), else None."""
    size = record.get("image_size")
    if isinstance(size, list) and len(size) == 2:
        return int(size[0]), int(size[1])
    image = record.get("image")
    if not image:
        return None
    try:
        return check_image(image)
    except ImageError as err:
        log.report(f"{err}: box size unknown", "left out boxes", path=where, post_id=record["id"])
        return None


def percent_box(box: Sequence[float], size: tuple[int, int]) -> dict[str, float]:
    """A pixel box [x1, y1, x2, y2] as Label Studio's x, y, width, height in percent of the image."""
    width, height = size
    x1, y1, x2, y2 = (max(0.0, min(float(v), float(limit))) for v, limit in zip(box, (width, height) * 2,
                                                                                   strict=True))
    return {"x": 100 * x1 / width, "y": 100 * y1 / height, "width": 100 * (x2 - x1) / width,
            "height": 100 * (y2 - y1) / height}


def _score(entity: Mapping[str, Any]) -> float | None:
    topk = (entity.get("scores") or {}).get("topk")
    return float(topk[0][1]) if topk else None


def task_of(record: Mapping[str, Any], *, image_url: str, where: str, log: IssueLog, counts: Counts
            ) -> dict[str, Any]:
    """The Label Studio task of one predictions record."""
    post = post_text(record)
    image = record.get("image")
    size = image_size(record, where=where, log=log) if image else None
    results: list[dict[str, Any]] = []
    for number, entity in enumerate(record.get("entities", []), start=1):
        chars = post.entity_chars(entity)
        if chars is None:
            log.report(f"entity #{number} lies outside the post", "left out entity", path=where, post_id=record["id"])
            counts.skipped_entities += 1
            continue
        start, end = chars
        span_id = f"{record['id']}-e{number}"
        span = {"id": span_id, "type": "labels", "from_name": LABEL, "to_name": TEXT,
                "value": {"start": start, "end": end, "text": post.text[start:end], "labels": [entity["type"]]}}
        if (score := _score(entity)) is not None:
            span["score"] = score
        results.append(span)
        counts.entities += 1
        if entity.get("box") is None:
            continue
        if size is None:
            if not image:
                log.report(f"entity #{number} has a box but the post no image: its size is unknown", "left out box",
                           path=where, post_id=record["id"])
            counts.skipped_boxes += 1
            continue
        box_id = f"{span_id}-box"
        results.append({"id": box_id, "type": "rectanglelabels", "from_name": BOX, "to_name": IMAGE,
                        "original_width": size[0], "original_height": size[1], "image_rotation": 0,
                        "value": {**percent_box(entity["box"], size), "rotation": 0,
                                  "rectanglelabels": [entity["type"]]}})
        results.append({"type": "relation", "from_id": span_id, "to_id": box_id, "direction": "right"})
        counts.boxes += 1
    data: dict[str, Any] = {"post_id": record["id"], TEXT: post.text, "tokens": list(record["tokens"])}
    coarse_of = {e["type"]: e["coarse"] for e in record.get("entities", []) if e.get("coarse") not in (None, e["type"])}
    if coarse_of:
        data["coarse_of"] = coarse_of
    if image:
        data[IMAGE] = image_url + str(image) if image_url else str(image)
    counts.posts += 1
    return {"data": data, "predictions": [{"model_version": MODEL_VERSION, "result": results}]}


def json_array(items: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """A JSON array written item by item, so a long file never sits whole in memory."""
    yield "["
    for index, item in enumerate(items):
        yield ("\n" if index == 0 else ",\n") + json.dumps(item, ensure_ascii=False)
    yield "\n]\n"


def labeling_config(labels: Iterable[str], with_image: bool) -> str:
    """The Label Studio labeling configuration that shows these tasks (text spans, image boxes, links)."""
    values = "".join(f"\n    <Label value={quoteattr(label)}/>" for label in sorted(set(labels)))
    image = (f'\n  <Image name="{IMAGE}" value="${IMAGE}"/>'
             f'\n  <RectangleLabels name="{BOX}" toName="{IMAGE}">{values}\n  </RectangleLabels>'
             "\n  <Relations>\n    <Relation value=\"grounds\"/>\n  </Relations>") if with_image else ""
    return (f'<View>\n  <Labels name="{LABEL}" toName="{TEXT}">{values}\n  </Labels>\n'
            f'  <Text name="{TEXT}" value="${TEXT}"/>{image}\n</View>\n')


def config_path(output: str | Path) -> Path:
    """Where the labeling configuration of the tasks file `output` goes: `<output stem>.config.xml`."""
    output = Path(output)
    return output.with_name(output.stem + ".config.xml")
