"""`gemner evaluate GOLD PRED`: score predictions by the official rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .console import out as console
from .console import warnings
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
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad prediction line or entity "
                                         "(default: report each one and score the rest).")] = False,
) -> None:
    """Print MNER / EEG / MNERG P, R, F1 (fine and coarse for FMNERG) and write them as JSON."""
    from ..evaluation.files import evaluate_files
    from ..evaluation.report import render

    evaluation = evaluate_files(gold, pred, schema=schema, boxes=boxes, match=match, strict=strict)
    warnings(evaluation.gold_issues + evaluation.prediction_issues)
    report = evaluation.report
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


