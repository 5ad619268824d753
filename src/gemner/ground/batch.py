"""Batch grounding of a predictions JSONL (docs/ARCHITECTURE.md contract): fill in boxes and scores.

Each entity gets `box` (None when P_T < threshold), `box_status: "computed"`, `scores.itm` (P_T)
and, when traced, `scores.peak` ([x, y] in image pixels). A post whose image is missing or cannot be
read is reported by id, written with `"error"` and its entities left `not_computed`; the run goes on.

Resumable: posts already in the output file (by id) are skipped and the output is appended to, one
flushed line per post, so an interrupted run keeps its results and continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..data.images import ImageError, load_image, to_original
from ..data.issues import IssueLog
from ..data.posts import index_images
from ..data.types import Box, PredictedEntity
from ..data.userio import iter_prediction_records
from ..data.writer import PredictionWriter, WriteCounts
from .grounder import Grounder, Grounding, Query


@dataclass
class GroundStats:
    """What grounding found in a run (the posts are counted by the writer's `WriteCounts`)."""

    entities: int = 0
    boxed: int = 0

    def summary(self) -> str:
        return f"{self.entities} entities, {self.boxed} boxed"


def read_predictions(path: str | Path, log: IssueLog) -> Iterator[dict[str, Any]]:
    """Prediction records with their entities parsed; a malformed line or entity is reported with its
    line number and the line skipped."""
    for line_no, record in iter_prediction_records(path, log):
        try:
            record["entities"] = [PredictedEntity.from_json(e) for e in record.get("entities") or []]
        except (ValueError, KeyError, TypeError) as err:
            log.report(f"bad prediction record: {err}", "skipped line", path=path, line=line_no)
            continue
        yield record


class ImageFinder:
    """Where a post's image is: its `image` field (absolute, or relative to the images folder),
    else `<images>/<id>.<ext>` anywhere under the images folder."""

    def __init__(self, images_dir: str | Path | None):
        self.root = Path(images_dir) if images_dir is not None else None
        self._index: dict[str, Path] | None = None

    def find(self, record: dict[str, Any]) -> Path | None:
        named = record.get("image")
        if named:
            path = Path(named)
            if not path.is_absolute() and self.root is not None and (self.root / path).exists():
                return self.root / path
            if path.exists():
                return path
        if self.root is None:
            return Path(named) if named else None
        if self._index is None:
            self._index = index_images(self.root)
        return self._index.get(str(record["id"]), Path(named) if named else None)


def _open(path: Path | None, record_id: str, log: IssueLog) -> Image.Image | str:
    """The loaded image, or the reason there is none."""
    if path is None:
        reason = "no image for this post"
    else:
        try:
            return load_image(path)
        except ImageError as err:
            reason = str(err)
    log.report(reason, "boxes not computed", post_id=record_id)
    return reason


def _category(entity: PredictedEntity, field: str) -> str:
    return entity.coarse if field == "coarse" else entity.type


def ground_predictions(grounder: Grounder, predictions: str | Path, output: str | Path, *,
                       images_dir: str | Path | None = None, log: IssueLog | None = None,
                       retry_errors: bool = True) -> tuple[WriteCounts, GroundStats]:
    """Fill in boxes for every post of `predictions`, appending to `output` (resumable). At most
    `posts_per_batch` loaded images (each within `gemner.data.images` limits) are held at a time."""
    log = log if log is not None else IssueLog()
    finder = ImageFinder(images_dir)
    stats = GroundStats()
    pending: list[tuple[dict[str, Any], Image.Image | None]] = []  # kept in input order
    with PredictionWriter(output, inputs=[predictions], retry_errors=retry_errors) as sink:
        for record in sink.pending(read_predictions(predictions, log), key=lambda r: r["id"]):
            image = _open(finder.find(record), str(record["id"]), log) if record["entities"] else None
            if isinstance(image, str):
                record["error"] = image
                for entity in record["entities"]:
                    entity.box, entity.box_status = None, "not_computed"
                image = None
            pending.append((record, image))
            if sum(image is not None for _, image in pending) >= grounder.config.posts_per_batch:
                _flush(grounder, pending, sink, stats)
        _flush(grounder, pending, sink, stats)
    return sink.counts, stats


def _model_text(record: dict[str, Any], entity: PredictedEntity) -> str:
    """The entity as the models read it (its tokens joined by spaces, as the pipeline queries it), not the
    raw characters of `text` ("@Ted_Cruz"); `text` when the record has no tokens."""
    tokens = record.get("tokens")
    return " ".join(tokens[entity.start:entity.end]) if tokens else entity.text


def _flush(grounder: Grounder, pending: list, sink: PredictionWriter, stats: GroundStats) -> None:
    """Ground the pending posts that have an image in one batch; write all pending posts in order."""
    field = grounder.config.category_field
    ready = [(record, image) for record, image in pending if image is not None]
    queries = [[Query(_model_text(record, e), _category(e, field)) for e in record["entities"]]
               for record, _ in ready]
    results = grounder.ground([image for _, image in ready], queries) if ready else []
    for (record, image), groundings in zip(ready, results, strict=True):
        for entity, grounding in zip(record["entities"], groundings, strict=True):
            apply_grounding(entity, grounding, image)
            stats.boxed += entity.box is not None
    for record, _ in pending:
        sink.write({**record, "entities": [e.to_json() for e in record["entities"]]})
        stats.entities += len(record["entities"])
    pending.clear()


def apply_grounding(entity: PredictedEntity, grounding: Grounding, image: Image.Image) -> None:
    """Write a grounding into the entity, in the pixels of the image file (`image` may be downscaled)."""
    entity.box = Box(*to_original(image, grounding.box)) if grounding.relevant and grounding.box is not None \
        else None
    entity.box_status = "computed"
    entity.scores["itm"] = round(grounding.p_true, 6)
    if grounding.peak is not None:
        entity.scores["peak"] = [round(v) for v in to_original(image, grounding.peak)]
