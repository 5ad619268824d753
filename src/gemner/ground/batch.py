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

from ..data.issues import DataError, IssueLog
from ..data.posts import index_images
from ..data.types import PredictedEntity
from ..data.userio import PredictionWriter, iter_prediction_records
from .grounder import Grounder, Query
from .train import load_image


@dataclass
class BatchReport:
    posts: int = 0
    entities: int = 0
    boxed: int = 0
    resumed: int = 0
    failed: int = 0


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


def _open(path: Path | None, record_id: str, log: IssueLog) -> Image.Image | None:
    if path is None:
        log.report("no image for this post", "boxes not computed", post_id=record_id)
        return None
    try:
        return load_image(path)
    except (OSError, SyntaxError) as err:
        log.report(f"unreadable image {path}: {err}", "boxes not computed", post_id=record_id)
        return None


def _category(entity: PredictedEntity, field: str) -> str:
    return entity.coarse if field == "coarse" else entity.type


def ground_predictions(grounder: Grounder, predictions: str | Path, output: str | Path, *,
                       images_dir: str | Path | None = None, log: IssueLog | None = None) -> BatchReport:
    """Fill in boxes for every post of `predictions`, appending to `output` (resumable)."""
    log = log if log is not None else IssueLog()
    output = Path(output)
    if Path(predictions).resolve() == output.resolve():
        raise DataError("the output file must differ from the predictions file")
    finder = ImageFinder(images_dir)
    report = BatchReport()
    pending: list[tuple[dict[str, Any], Image.Image | None]] = []  # kept in input order
    with PredictionWriter(output, resume=True) as sink:  # cuts a line torn by a crash, knows the done ids
        finished = set(sink.done_ids)
        for record in read_predictions(predictions, log):
            if str(record["id"]) in finished:
                report.resumed += 1
                continue
            image = _open(finder.find(record), str(record["id"]), log) if record["entities"] else None
            if record["entities"] and image is None:
                record["error"] = log.issues[-1].message if log.issues else "image unavailable"
                for entity in record["entities"]:
                    entity.box, entity.box_status = None, "not_computed"
                report.failed += 1
            pending.append((record, image))
            if sum(image is not None for _, image in pending) >= grounder.config.posts_per_batch:
                _flush(grounder, pending, sink, report)
        _flush(grounder, pending, sink, report)
    return report


def _flush(grounder: Grounder, pending: list, sink: PredictionWriter, report: BatchReport) -> None:
    """Ground the pending posts that have an image in one batch; write all pending posts in order."""
    field = grounder.config.category_field
    ready = [(record, image) for record, image in pending if image is not None]
    queries = [[Query(e.text, _category(e, field)) for e in record["entities"]] for record, _ in ready]
    results = grounder.ground([image for _, image in ready], queries) if ready else []
    for (record, _), groundings in zip(ready, results, strict=True):
        for entity, grounding in zip(record["entities"], groundings, strict=True):
            entity.box = grounding.box if grounding.relevant else None
            entity.box_status = "computed"
            entity.scores["itm"] = round(grounding.p_true, 6)
            if grounding.peak is not None:
                entity.scores["peak"] = list(grounding.peak)
            report.boxed += entity.box is not None
    for record, _ in pending:
        _write(sink, record, report)
    pending.clear()


def _write(sink: PredictionWriter, record: dict[str, Any], report: BatchReport) -> None:
    sink.write({**record, "entities": [e.to_json() for e in record["entities"]]})
    report.posts += 1
    report.entities += len(record["entities"])
