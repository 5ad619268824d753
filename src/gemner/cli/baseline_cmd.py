"""`gemner baseline`: the dictionary baseline, predicted and scored on a benchmark split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .console import out as console
from .errors import friendly_errors


@app.command("baseline")
@friendly_errors
def baseline(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="gmner | gmner-v2 | fmnerg")] = "gmner",
    split: Annotated[str, typer.Option(help="Split to predict and score.")] = "test",
    ignore_case: Annotated[bool, typer.Option(help="Match entity strings case-insensitively.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Predictions JSONL.")] = None,
) -> None:
    """Memorise train entity strings with their most frequent type; longest match; box None."""
    from ..baselines.dictionary import run_dictionary_baseline
    from ..evaluation.report import render

    run = run_dictionary_baseline(dataset, split, ignore_case=ignore_case, output=output)
    console.print(f"dictionary baseline: {run.entries} entity strings from {dataset} train")
    console.print(render(run.report))
    console.print(f"predictions: {run.predictions}\nscores: {run.scores}")
