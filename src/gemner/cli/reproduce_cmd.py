"""`gemner reproduce`: train/evaluate what this machine can and print the paper's tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..rerank.config import PAPER_GAMMA, PAPER_K
from .app import app
from .console import out as console
from .errors import friendly_errors


@app.command("reproduce")
@friendly_errors
def reproduce(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="fmnerg | gmner")] = "fmnerg",
    quick: Annotated[bool, typer.Option(help="Smoke run: 300 train posts, 1 epoch, 100 test posts.")] = False,
    runs: Annotated[Path | None, typer.Option(help="Where runs live (default runs/reproduce, quick: "
                                              "runs/reproduce-quick); finished steps are reused.")] = None,
    variants: Annotated[str | None, typer.Option(help="Comma-separated recogniser variants (default: all).")] = None,
    encoder: Annotated[str | None, typer.Option(help="Recogniser encoder (default: the lite preset's).")] = None,
    reranker_model: Annotated[str | None, typer.Option(help="Reranker base model (default: lite's).")] = None,
    gamma: Annotated[float, typer.Option(help="Sample-filter threshold (paper 0.2).")] = PAPER_GAMMA,
    k: Annotated[int, typer.Option(help="Reranker candidates (paper 5).")] = PAPER_K,
    threads: Annotated[int, typer.Option(help="CPU threads per step.")] = 1,
    recognizers_only: Annotated[bool, typer.Option(
        help="Only train and predict the recogniser variants (split a long reproduction).")] = False,
    report_only: Annotated[bool, typer.Option(
        help="Run nothing: print the tables from the finished steps; the other cells say 'not run'.")] = False,
) -> None:
    """Each cell of Table 1 (our rows), Table 2 and Fig. 3 is measured here or says what it needs.
    Steps run one by one in this process; plan.txt lists the equivalent `gemner` commands."""
    from ..pipeline.reproduce import NEEDS_IMAGES_NOTE, Settings
    from ..pipeline.tables import run_reproduction

    settings = Settings(dataset=dataset, runs=runs or Path("runs/reproduce-quick" if quick else "runs/reproduce"),
                        quick=quick, encoder=encoder, reranker_model=reranker_model,
                        variants=tuple(variants.split(",")) if variants else None, gamma=gamma, k=k, threads=threads,
                        recognizers_only=recognizers_only, report_only=report_only)
    results = run_reproduction(settings, log=lambda message: console.print(message, highlight=False))
    for table in results.tables:
        console.print(table.render())
    console.print(NEEDS_IMAGES_NOTE)
    console.print(f"results: {results.results_file}; plan: {results.plan_file}")
    for figure in results.figures:
        console.print(f"figure: {figure}")
