"""`gemner export` (predictions -> CoNLL, spaCy, Label Studio) and `gemner import` (Label Studio exports,
CoNLL files -> gold JSONL for `gemner train recognizer --train`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from ..data.issues import DataIssue
from .app import app
from .console import err as console
from .console import warnings
from .errors import friendly_errors

SHOWN_ISSUES = 20
LabelsOpt = Annotated[str | None, typer.Option(
    help="coarse | fine | FILE: one level (coarse), both levels (fine, the default when the data has two), "
         "or a fixed label set (YAML/JSON list, {coarse: [fine, ...]} or a labels.json).")]


def show_issues(issues: Sequence[DataIssue]) -> None:
    """The first problems found in the input, one line each, and how many more."""
    warnings(issues, SHOWN_ISSUES)


@app.command("export")
@friendly_errors
def export_cmd(
    predictions: Annotated[Path, typer.Argument(help="A predictions JSONL (what `gemner predict` writes).")],
    to: Annotated[str, typer.Option("--to", help="conll | spacy | label-studio")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write (.txt, .spacy, .json).")],
    image_url: Annotated[str, typer.Option(
        help="Label Studio: prefix for image paths (e.g. /data/local-files/?d=).")] = "",
) -> None:
    """Write predictions for other tools: CoNLL, a spaCy DocBin, or Label Studio tasks to review."""
    from ..data.interchange import EXPORT_FORMATS, export_predictions
    from ..data.interchange.labelstudio_out import config_path
    from ..data.issues import IssueLog

    if to not in EXPORT_FORMATS:
        raise typer.BadParameter(f"unknown format {to!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    log = IssueLog()
    counts = export_predictions(predictions, to, output, image_url=image_url, log=log)
    show_issues(log.issues)
    extra = f"; labeling configuration {config_path(output)}" if to == "label-studio" else ""
    console.print(f"wrote {output}: {counts.summary()}{extra}", highlight=False)


@app.command("import")
@friendly_errors
def import_cmd(
    source: Annotated[Path, typer.Argument(help="A Label Studio JSON export or a CoNLL file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The gold JSONL to write.")],
    source_format: Annotated[str | None, typer.Option(
        "--from", help="label-studio | conll | jsonl (default: from the file name: .json, .jsonl, else CoNLL)")] = None,
    labels: LabelsOpt = None,
    use_predictions: Annotated[bool, typer.Option(
        "--predictions", help="Label Studio: use a task's prediction when it has no annotation.")] = False,
) -> None:
    """Turn annotations into training data: `gemner train recognizer --train OUTPUT --dev ...` reads it."""
    from ..data.interchange import IMPORT_FORMATS, import_annotations
    from ..data.issues import IssueLog

    if source_format is not None and source_format not in IMPORT_FORMATS:
        raise typer.BadParameter(f"unknown format {source_format!r}; choose one of {', '.join(IMPORT_FORMATS)}")
    log = IssueLog()
    counts, schema = import_annotations(source, output, kind=source_format, labels=labels,
                                        use_predictions=use_predictions, log=log)
    show_issues(log.issues)
    levels = f"{len(schema['coarse_labels'])} coarse / {len(schema['labels'])} fine labels" \
        if schema["labels"] != schema["coarse_labels"] else f"{len(schema['labels'])} labels"
    console.print(f"wrote {output}: {counts.summary()}; {levels}", highlight=False)
