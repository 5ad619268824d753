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
    output: Annotated[Path, typer.Option("--output", "-o", help="Knowledge JSONL(.gz) to write.")] = Path(
        "data/knowledge/fmnerg-gazetteer.jsonl.gz"),
    posts: Annotated[Path | None, typer.Option(help="Also give hints for these user posts (JSONL).")] = None,
    merge: Annotated[Path | None, typer.Option(
        help="A knowledge JSONL (e.g. the LLM's) whose text follows each hint.")] = None,
    min_link: Annotated[float, typer.Option(help="Least link probability of a gazetteer string.")] = 0.3,
    folds: Annotated[int, typer.Option(help="Train posts get hints from the other folds only.")] = 5,
) -> None:
    """Write gazetteer hints (train annotations; k-fold for train posts) for every split of DATASET."""
    from ..data import SPLITS, load_dataset
    from ..data.userio import read_posts
    from ..knowledge.cache import Answer, ExportRow
    from ..knowledge.export import read_knowledge, write_knowledge
    from ..knowledge.gazetteer import gazetteer_knowledge

    splits = {split: load_dataset(dataset, split).posts for split in SPLITS}
    others = splits["dev"] + splits["test"] + (read_posts(posts)[0] if posts else [])
    hints = gazetteer_knowledge(splits["train"], others, folds=folds, min_link=min_link)
    extra = read_knowledge(merge) if merge else {}
    rows = []
    for post_id, hint in hints.items():
        text = " ".join(t for t in (hint, extra.get(post_id, ("", ""))[0]) if t)
        caption = extra.get(post_id, ("", ""))[1]
        rows.append(ExportRow(post_id, "", caption, Answer(text, text, parsed=True, truncated=False, seconds=0.0)))
    summary = write_knowledge(rows, output)
    with_hint = sum(1 for h in hints.values() if h)
    console.print(f"wrote {summary.written} posts to {output} ({with_hint} with a gazetteer hint)")
