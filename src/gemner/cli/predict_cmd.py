"""`gemner predict`: the GEM pipeline over posts (a JSONL, a benchmark split, or one `--text`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .app import app
from .console import err as console
from .console import out as out_console
from .errors import friendly_errors


def _pipeline_config(config: str | None, recognizer: Path | None, knowledge: Path | None, switches: dict[str, bool]):
    from ..pipeline.config import (
        GroundStage,
        KnowledgeStage,
        PipelineConfig,
        RecognizerStage,
        RerankStage,
        load_config,
        with_changes,
    )

    if recognizer is not None and config is None:
        # The recogniser alone (its own knowledge file, if any): what `train recognizer` is scored with.
        base = PipelineConfig(name="recognizer", knowledge=KnowledgeStage(file=str(knowledge) if knowledge else None),
                              recognizer=RecognizerStage(model=str(recognizer)),
                              rerank=RerankStage(enabled=False), ground=GroundStage(enabled=False))
    else:
        base = load_config(config or "lite")
    changes: dict[str, Any] = {}
    if recognizer is not None:
        changes["recognizer"] = {"model": str(recognizer)}
    if knowledge is not None:
        changes["knowledge"] = {"file": str(knowledge)}
    for stage, enabled in switches.items():
        if not enabled:
            changes.setdefault(stage, {})["enabled"] = False
    if not switches.get("filter", True):
        changes.setdefault("rerank", {})["sample_filter"] = False
        changes["rerank"].pop("enabled", None)
    return with_changes(base, changes) if changes else base


def _posts(dataset, split, input, text, image, images, max_posts):
    """(posts, log, rejected): `rejected` are the invalid input posts that name an id (`RejectedPost`)."""
    from ..data import IssueLog, Post, load_dataset
    from ..data.tokenize import tokenize_tweet
    from ..data.userio import iter_posts

    sources = [s for s in (dataset, input, text) if s is not None]
    if len(sources) != 1:
        raise typer.BadParameter("give exactly one of --input, --dataset (with --split) or --text")
    log, rejected = IssueLog(), []
    if text is not None:
        posts = [Post("post", tokenize_tweet(text), image=image)]
    elif dataset is not None:
        posts = load_dataset(dataset, split, images_dir=images).posts
    else:
        items = list(iter_posts(input, images_dir=images, log=log))[:max_posts]
        posts = [p for p in items if isinstance(p, Post)]
        rejected = [p for p in items if not isinstance(p, Post)]
    return posts[:max_posts], log, rejected


def _show(entities) -> None:
    table = Table(title="triples")
    for column in ("entity", "type", "coarse", "box", "P_T", "entropy"):
        table.add_column(column)
    for e in entities:
        box = "None" if e.box is None else "[" + ", ".join(f"{v:g}" for v in e.box) + "]"
        if e.box is None and e.box_status != "computed":
            box = "not computed"
        itm = e.scores.get("itm")
        table.add_row(e.text, e.type, e.coarse, box, f"{itm:.3f}" if itm is not None else "-",
                      f"{e.scores.get('entropy', float('nan')):.3f}")
    out_console.print(table)


@app.command("predict")
@friendly_errors
def predict(
    output: Annotated[Path | None, typer.Option(help="Prediction JSONL (one line per post).")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", help="Pipeline preset (lite, lite-gmner, paper) or YAML file (default lite; with "
        "--recognizer and no --config: that recogniser alone).")] = None,
    input: Annotated[Path | None, typer.Option("--input", help="Posts JSONL {id, text|tokens, image?}.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="fmnerg | gmner | gmner-v2")] = None,
    split: Annotated[str, typer.Option(help="train | dev | test (with --dataset)")] = "test",
    text: Annotated[str | None, typer.Option(help="One post's raw text.")] = None,
    image: Annotated[Path | None, typer.Option(help="The image of the --text post.")] = None,
    images: Annotated[Path | None, typer.Option(help="Folder of images (post id or relative paths).")] = None,
    recognizer: Annotated[Path | None, typer.Option(help="Recogniser checkpoint (overrides the config).")] = None,
    knowledge: Annotated[Path | None, typer.Option(help="Knowledge JSONL {id, knowledge} by post id.")] = None,
    use_knowledge: Annotated[bool, typer.Option("--knowledge-stage/--no-knowledge", help="w/o-KA")] = True,
    rerank: Annotated[bool, typer.Option("--rerank/--no-rerank", help="w/o-CR")] = True,
    sample_filter: Annotated[bool, typer.Option("--filter/--no-filter", help="w/o-SF: rerank all")] = True,
    ground: Annotated[bool, typer.Option("--ground/--no-ground", help="Grounding stage.")] = True,
    visualize: Annotated[Path | None, typer.Option(help="Write each image with boxes and heat maps here.")] = None,
    resume: Annotated[bool, typer.Option(help="Keep the posts already in OUTPUT; predict the rest.")] = True,
    batch_size: Annotated[int, typer.Option(help="Posts per batch.")] = 16,
    max_posts: Annotated[int | None, typer.Option(help="Only the first N posts (smoke runs).")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Knowledge -> recogniser -> sample filter + reranker -> grounder, written as triples JSONL."""
    from ..pipeline.gem import GEM
    from ..pipeline.predict import predict_to_file

    if threads:
        import torch

        torch.set_num_threads(threads)
    switches = {"knowledge": use_knowledge, "rerank": rerank, "ground": ground, "filter": sample_filter}
    pipeline = _pipeline_config(config, recognizer, knowledge, switches)
    posts, log, rejected = _posts(dataset, split, input, text, image, images, max_posts)
    if output is None and text is None:
        raise typer.BadParameter("--output is required (except for a single --text post)")
    gem = GEM(pipeline, notify=lambda message: console.print(f"[yellow]note:[/] {message}", highlight=False))
    console.print("stages: " + "; ".join(f"{k} {v}" for k, v in gem.stages().items()), highlight=False)
    if output is None:
        result = next(gem.predict_batch(posts, keep_heatmaps=visualize is not None))
        if result.error:
            console.print(f"[red]error:[/] {result.error}")
            raise typer.Exit(1)
        _show(result.entities)
        print(json.dumps(result.record(), ensure_ascii=False))
        if visualize is not None:
            from ..pipeline.predict import draw_result

            draw_result(result, visualize)
        return
    skipped = [(r.id, r.error) for r in rejected]
    for issue in log.issues:
        console.print(f"[yellow]warning:[/] {issue}", highlight=False)
    bar = _bar(len(posts), progress)
    counts = predict_to_file(gem, posts, output, resume=resume, batch_size=batch_size, visualize=visualize,
                             skipped=skipped, on_post=(lambda n: bar.update(1)) if bar else None)
    if bar is not None:
        bar.close()
    for issue in gem.log.issues:
        console.print(f"[yellow]warning:[/] {issue}", highlight=False)
    console.print(f"wrote {output}: {counts.written} posts ({counts.resumed} already there, {counts.errors} with an "
                  f"error{f', {counts.pictures} pictures in {visualize}' if visualize else ''})")


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="post", desc="predict")
