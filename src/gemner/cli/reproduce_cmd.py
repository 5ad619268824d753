"""`gemner reproduce`: train/evaluate what this machine can and print the paper's tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..rerank.config import PAPER_GAMMA, PAPER_K
from .app import app
from .console import err
from .console import out as console
from .errors import friendly_errors


@app.command("reproduce")
@friendly_errors
def reproduce(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="fmnerg | gmner | an upstream folder "
                                         "(`gemner data synthetic`; paper-tiny and paper)")] = "fmnerg",
    config: Annotated[str, typer.Option("--config", "-c", help="lite: the text path (recognisers, rerank, "
                                        "tables) | paper-tiny: the whole GEM with images, tiny models on a CPU | "
                                        "paper: the paper's models")] = "lite",
    images: Annotated[Path | None, typer.Option(help="The posts' images (paper-tiny/paper; default: the "
                                                "folder's images/).")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda[:N] (paper-tiny/paper).")] = "auto",
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the rows, targets and CPU seconds "
                                                   "here (paper-tiny/paper).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the plan (steps, outputs, commands, models); run "
                                          "nothing (paper-tiny/paper).")] = False,
    quick: Annotated[bool, typer.Option(help="Smoke run: lite: 300 train posts, 1 epoch, 100 test posts; "
                                        "paper-tiny: 210/45/45 posts, fewer epochs.")] = False,
    runs: Annotated[Path | None, typer.Option(help="Where runs live (default runs/reproduce, quick: "
                                              "runs/reproduce-quick); finished steps are reused.")] = None,
    variants: Annotated[str | None, typer.Option(help="Comma-separated recogniser variants (default: all).")] = None,
    encoder: Annotated[str | None, typer.Option(help="Recogniser encoder (default: the lite preset's).")] = None,
    reranker_model: Annotated[str | None, typer.Option(help="Reranker base model (default: lite's).")] = None,
    gamma: Annotated[float, typer.Option(help="Sample-filter threshold (paper 0.2).")] = PAPER_GAMMA,
    k: Annotated[int, typer.Option(help="Reranker candidates (paper 5).")] = PAPER_K,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads per step.")] = 1,
    jobs: Annotated[int, typer.Option(min=1, help="paper-tiny/paper: run independent steps (the recognisers; the "
                                      "reranker and ITM; the test rows) side by side in this many processes, "
                                      "sharing --threads.")] = 1,
    recognizers_only: Annotated[bool, typer.Option(
        help="Only train and predict the recogniser variants (split a long reproduction).")] = False,
    report_only: Annotated[bool, typer.Option(
        help="Run nothing: print the tables from the finished steps; the other cells say 'not run'.")] = False,
) -> None:
    """Each cell of Table 1 (our rows), Table 2 and Fig. 3 is measured here or says what it needs.
    Steps run one by one in this process; plan.txt lists the equivalent `gemner` commands."""
    if config != "lite":
        _reproduce_gem(dataset, config, runs, images, device, quick, threads, jobs, json_file, dry_run)
        return
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


def _reproduce_gem(dataset: str, config: str, runs: Path | None, images: Path | None, device: str, quick: bool,
                   threads: int, jobs: int, json_file: Path | None, dry_run: bool) -> None:
    """paper-tiny / paper: `pipeline.reproduce_gem_report.run_gem_reproduction` (or its plan)."""
    from ..pipeline.reproduce_gem import GemSettings
    from ..pipeline.reproduce_gem_profiles import GEM_CONFIGS
    from ..pipeline.reproduce_gem_report import gem_plan, run_gem_reproduction

    if config not in GEM_CONFIGS:
        raise typer.BadParameter(f"--config is lite, {', '.join(GEM_CONFIGS)}; not {config!r}")
    settings = GemSettings(dataset, config, runs=runs or Path("runs/reproduce-quick" if quick else "runs/reproduce"),
                           images=images, device=device, quick=quick, threads=threads, jobs=jobs)
    if dry_run:
        for line in gem_plan(settings):
            console.print(line.rstrip("\n"), markup=False, highlight=False)
        return
    results = run_gem_reproduction(settings, log=lambda message: err.print(message, markup=False, highlight=False),
                                   json_file=json_file)
    for table in results.tables():
        console.print(table.render())
    for step, seconds in results.run.cpu_seconds.items():
        err.print(f"CPU seconds, {step}: {seconds:.0f}", markup=False, highlight=False)
    console.print(f"pipeline folder: {results.pipeline or 'not written'}; plan: {settings.folder / 'plan.txt'}",
                  markup=False, highlight=False)
