"""Score a predictions file against a gold source: what `gemner evaluate` runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.issues import DataError, DataIssue, IssueLog
from ..data.userio import read_predictions
from .gold import load_gold
from .scorer import ScoreReport, score


@dataclass
class Evaluation:
    report: ScoreReport
    gold_issues: list[DataIssue]
    prediction_issues: list[DataIssue]  # each bad line or entity of the predictions, with file and line


def evaluate_files(gold: str, predictions: str | Path, *, schema: str | None = None,
                   boxes: str | Path | None = None, match: str = "span", strict: bool = False) -> Evaluation:
    """Score `predictions` against `gold` (`DATASET:SPLIT`, a gold JSONL or a CoNLL txt). Every
    prediction record and entity is checked against the gold's label schema; a bad one is reported and
    the rest scored, or, when `strict`, the first one raises a `DataError` naming file and line."""
    predictions = Path(predictions)
    if not predictions.is_file():
        raise DataError(f"{predictions}: no such predictions file")
    gold_log, prediction_log = IssueLog(), IssueLog(strict=strict)
    gold_posts, label_schema = load_gold(gold, schema, boxes, gold_log)
    predicted = read_predictions(predictions, prediction_log, schema=label_schema)
    report = score(gold_posts, predicted, label_schema, match=match)
    return Evaluation(report, gold_log.issues, prediction_log.issues)
