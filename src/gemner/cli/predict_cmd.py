"""`gemner predict`: run the recogniser over a benchmark split or a posts JSONL -> prediction JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .app import app
from .errors import friendly_errors

console = Console(stderr=True, soft_wrap=True)


@app.command("predict")
@friendly_errors
def predict(
    recognizer: Annotated[Path, typer.Option(help="Recogniser checkpoint folder.")],
    output: Annotated[Path, typer.Option(help="Prediction JSONL to write (one line per post).")],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="fmnerg | gmner | gmner-v2")] = None,
    split: Annotated[str, typer.Option(help="train | dev | test (with --dataset)")] = "test",
    input: Annotated[Path | None, typer.Option("--input", help="Posts JSONL {id, text|tokens, image?}.")] = None,
    knowledge: Annotated[Path | None, typer.Option(help="Knowledge JSONL {id, knowledge} (absent: none).")] = None,
    batch_size: Annotated[int, typer.Option(help="Posts per forward pass.")] = 32,
    resume: Annotated[bool, typer.Option(help="Keep the posts already in OUTPUT and add the rest.")] = False,
    max_posts: Annotated[int | None, typer.Option(help="Only the first N posts (smoke runs).")] = None,
    device: Annotated[str, typer.Option(help="torch device (cpu, cuda).")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Recognise entities (with eq. 10 entropy and top-K categories) and write the prediction JSONL."""
    from ..data import IssueLog, load_dataset
    from ..data.userio import read_posts
    from ..recognize.predict import predict_file

    if (dataset is None) == (input is None):
        raise typer.BadParameter("give exactly one of --dataset (with --split) or --input")
    if threads:
        import torch

        torch.set_num_threads(threads)
    if dataset is not None:
        posts, log = load_dataset(dataset, split).posts, IssueLog()
    else:
        posts, log = read_posts(input)
    posts = posts[:max_posts]
    counts = predict_file(recognizer, posts, output, knowledge, batch_size, resume, device, log, progress)
    for issue in log.issues:
        console.print(f"[yellow]warning:[/] {issue}", highlight=False)
    console.print(f"wrote {output}: {counts['written']} posts ({counts['skipped']} already there, "
                  f"{counts['errors']} failed)")
