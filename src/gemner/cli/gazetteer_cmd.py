"""`gemner knowledge gazetteer`: hints from the training annotations as a knowledge JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .console import out as console
from .errors import friendly_errors
from .knowledge_cmd import knowledge_app


@knowledge_app.command("gazetteer")
@friendly_errors
def gazetteer(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="gmner | gmner-v2 | fmnerg")] = "fmnerg",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Knowledge JSONL(.gz) to write (default: DATASET-gazetteer.jsonl.gz here).")] = None,
    posts: Annotated[Path | None, typer.Option(help="Also give hints for these user posts (JSONL).")] = None,
    merge: Annotated[Path | None, typer.Option(
        help="A knowledge JSONL (e.g. the LLM's) whose text follows each hint.")] = None,
    min_link: Annotated[float, typer.Option(help="Least link probability of a gazetteer string.")] = 0.3,
    folds: Annotated[int, typer.Option(help="Train posts get hints from the other folds only.")] = 5,
) -> None:
    """Write gazetteer hints (train annotations; k-fold for train posts) for every split of DATASET."""
    from ..knowledge.gazetteer import write_gazetteer_knowledge

    output = output or Path(f"{dataset}-gazetteer.jsonl.gz")
    written = write_gazetteer_knowledge(dataset, output, posts=posts, merge=merge, min_link=min_link, folds=folds)
    console.print(f"wrote {written.written} posts to {output} ({written.with_hint} with a gazetteer hint)")
