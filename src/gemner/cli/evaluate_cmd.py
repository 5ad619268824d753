"""`gemner evaluate GOLD PRED`: score predictions by the official rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .console import out as console
from .errors import friendly_errors


@app.command("evaluate")
@friendly_errors
def evaluate(
    gold: Annotated[str, typer.Argument(help="DATASET:SPLIT (fmnerg:test), a gold JSONL or a CoNLL txt.")],
    pred: Annotated[Path, typer.Argument(help="Predictions JSONL (one post per line).")],
    schema: Annotated[str | None, typer.Option(help="gmner | fmnerg, for gold files (default gmner).")] = (
        None
    ),
    boxes: Annotated[Path | None, typer.Option(help="xml folder or boxes JSONL for a CoNLL gold.")] = None,
    match: Annotated[str, typer.Option(help="span (H-Index) or string (TIGER) matching.")] = "span",
    per_type: Annotated[bool, typer.Option("--per-type", help="Also print the per-type table.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Scores JSON (default: by PRED).")] = None,
) -> None:
    """Print MNER / EEG / MNERG P, R, F1 (fine and coarse for FMNERG) and write them as JSON."""
    from ..data.issues import IssueLog
    from ..data.userio import read_predictions
    from ..evaluation import score
    from ..evaluation.gold import load_gold
    from ..evaluation.report import render

    log = IssueLog()
    gold_posts, label_schema = load_gold(gold, schema, boxes, log)
    predictions = read_predictions(pred, log)
    for issue in log.issues:
        console.print(f"[yellow]warning:[/] {issue}", highlight=False)
    report = score(gold_posts, predictions, label_schema, match=match)
    console.print(render(report, per_type=per_type))
    if report.missing_posts:
        console.print(f"[yellow]{len(report.missing_posts)} gold posts have no prediction "
                      "(scored as empty)[/]")
    if report.unknown_posts:
        console.print(f"[yellow]{len(report.unknown_posts)} predicted posts are not in the gold "
                      f"(ignored), e.g. {report.unknown_posts[0]}[/]")
    output = output or pred.with_name(pred.name.split(".")[0] + ".scores.json")
    output.write_text(json.dumps(report.to_dict(), indent=2))
    console.print(f"scores written to {output}")
