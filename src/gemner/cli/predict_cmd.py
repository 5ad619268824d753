"""`gemner predict`: the GEM pipeline over posts (a JSONL, a benchmark split, or one `--text`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..pipeline.preset_names import PRESET_LIST
from .app import TrustRemoteCodeOpt, app
from .console import STDIO, error, note, print_json_line, result_format, warnings
from .console import err as console
from .console import out as out_console
from .errors import friendly_errors
from .options import BatchSizeOpt, FormatOpt, MaxPostsOpt, ResultFormat, RetryOpt, ThreadsOpt


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
    output: Annotated[str | None, typer.Option(
        help="Prediction JSONL (one line per post); `-`: standard output. --engine ray: a folder, or a URI "
        "(s3://bucket/run/, gs://..., file://...; docs/scale.md).")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", help=f"Pipeline preset ({PRESET_LIST}) or YAML file (default lite; with "
        "--recognizer and no --config: that recogniser alone).")] = None,
    input: Annotated[str | None, typer.Option(
        "--input", help="Posts JSONL {id, text|tokens, image?}; `-`: standard input; or a URI "
        "(s3://bucket/posts.jsonl, gs://..., file://...; credentials from the environment).")] = None,
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
    ground: Annotated[bool, typer.Option("--ground/--no-ground", help="w/o-grounding")] = True,
    centre_box: Annotated[bool, typer.Option("--centre-box", help="Baseline: the centred box of half the image "
                                             "side for every entity the ITM puts in the image.")] = False,
    visualize: Annotated[Path | None, typer.Option(help="Write each image with boxes and heat maps here.")] = None,
    resume: Annotated[bool, typer.Option(help="Keep the posts already in OUTPUT; predict the rest.")] = True,
    batch_size: BatchSizeOpt = 16,
    max_posts: MaxPostsOpt = None,
    threads: ThreadsOpt = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars (--no-progress: none, the libraries' too).")
                        ] = True,
    format: FormatOpt = ResultFormat.auto,
    retry_errors: RetryOpt = True,
    trust_remote_code: TrustRemoteCodeOpt = False,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N: every stage there; auto keeps the "
                                        "config's devices (presets: CUDA when present, else CPU).")] = "auto",
    engine: Annotated[str, typer.Option(help="local (this process) | ray (Ray Data actors; OUTPUT is a folder of "
                                        "shards, see docs/scale.md)")] = "local",
    actors: Annotated[int, typer.Option(min=1, help="Ray actors, one pipeline each (--engine ray).")] = 1,
    gpus_per_actor: Annotated[float, typer.Option(min=0, help="GPUs per Ray actor (--engine ray).")] = 0.0,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to join, e.g. auto (--engine ray; "
                                                    "default: a local one).")] = None,
) -> None:
    """Knowledge -> recogniser -> sample filter + reranker -> grounder, written as triples JSONL."""
    from ..data.remote import is_uri
    from ..pipeline.config import SWITCH_ABLATIONS, predict_config
    from ..pipeline.gem import GEM
    from ..pipeline.inputs import input_posts
    from ..pipeline.predict import predict_to_file
    from ..progress import silenced_progress_bars

    if threads:
        import torch

        torch.set_num_threads(threads)
    switched_off = {"no-knowledge": not use_knowledge, "no-filter": not sample_filter, "no-rerank": not rerank,
                    "no-ground": not ground, "centre-box": centre_box}
    pipeline = predict_config(config, recognizer=recognizer, knowledge=knowledge,
                              ablations=[SWITCH_ABLATIONS[name] for name, off in switched_off.items() if off],
                              device=device)
    given = input_posts(dataset=dataset, split=split, posts_file=input, text=text, image=image, images=images,
                        max_posts=max_posts)
    posts, rejected = given.posts, [(r.id, r.error) for r in given.rejected]
    warnings(given.log.issues)
    if output is None and text is None:
        raise typer.BadParameter("--output is required (except for a single --text post)")
    if engine == "ray":
        from ..pipeline.ray_engine import predict_with_ray

        if output is None:
            raise typer.BadParameter("--engine ray needs --output (a folder of prediction shards)")
        counts = predict_with_ray(pipeline, posts, output, rejected=rejected,
                                  actors=actors, gpus_per_actor=gpus_per_actor, threads_per_actor=threads,
                                  batch_size=batch_size, shard_size=batch_size * 16, resume=resume,
                                  retry_errors=retry_errors, trust_remote_code=trust_remote_code,
                                  address=ray_address)
        console.print(f"wrote {output}: {counts.summary()}", highlight=False)
        return
    if engine != "local":
        raise typer.BadParameter(f"--engine {engine!r}: choose local or ray")
    if output is not None and is_uri(output):
        raise typer.BadParameter("an --output URI needs --engine ray (the local engine writes one local file)")
    with silenced_progress_bars(not progress):  # from model loading on: the libraries draw bars too
        gem = GEM(pipeline, notify=note, trust_remote_code=trust_remote_code)
        console.print(f"stages: {gem.stage_summary()}", highlight=False)
        if output is None:
            _predict_one(gem, posts, result_format(format), visualize)
            return
        counts, pictures = predict_to_file(gem, posts, Path(output), resume=resume, batch_size=batch_size,
                                           visualize=visualize, rejected=rejected, inputs=[input],
                                           progress=progress, retry_errors=retry_errors)
    warnings(gem.log.issues)
    written = "standard output" if str(output) == STDIO else output
    console.print(f"wrote {written}: {counts.summary()}{f', {pictures} pictures in {visualize}' if visualize else ''}",
                  highlight=False)


def _predict_one(gem, posts, shown_as: str, visualize: Path | None) -> None:
    """The single `--text` post: its triples on stdout as one JSON line or as a table (`--format`)."""
    result = next(gem.predict_batch(posts, keep_heatmaps=visualize is not None))
    if result.error:
        error(result.error)
        raise typer.Exit(1)
    if shown_as == "table":
        _show(result.entities)
    else:
        print_json_line(result.record())
    if visualize is not None:
        from ..pipeline.predict import draw_result

        draw_result(result, visualize)
