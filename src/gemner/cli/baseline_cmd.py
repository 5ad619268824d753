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
    import json

    from ..baselines.dictionary import DictionaryTagger
    from ..data import load_dataset
    from ..data.userio import PredictionWriter, prediction_record
    from ..evaluation import score
    from ..evaluation.report import render

    train = load_dataset(dataset, "train")
    gold = load_dataset(dataset, split)
    tagger = DictionaryTagger.fit(train.posts, train.schema, ignore_case=ignore_case)
    predictions = {post.id: tagger.predict(post.tokens) for post in gold.posts}
    output = output or Path("runs") / "baseline" / f"{dataset}-{split}.jsonl"
    with PredictionWriter(output, resume=False) as writer:
        for post in gold.posts:
            writer.write(prediction_record(post, predictions[post.id]))
    report = score(gold.posts, predictions, gold.schema)
    console.print(f"dictionary baseline: {len(tagger.entries)} entity strings from {dataset} train")
    console.print(render(report))
    scores_path = output.with_name(output.name.split(".")[0] + ".scores.json")
    scores_path.write_text(json.dumps(report.to_dict(), indent=2))
    console.print(f"predictions: {output}\nscores: {scores_path}")
